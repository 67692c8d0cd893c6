"""One small real checkpoint for the serve tests: a CIFAR ResNet-20 trained a few steps on the embedded
shapes data in this process (no Ray), BN calibrated at the sweep sizes, with its end-of-run ``sweep.json``,
laid out as a Ray Train run folder (``<run>/checkpoint_*/``)."""

from __future__ import annotations

import json

import pytest

from mixsize_ray.config import load_config
from mixsize_ray.train.checkpoint import save_checkpoint
from mixsize_ray.train.loop import TrainingLoop

SETS = ["regime.sizes=[16,32]", "regime.probs=[0.5,0.5]", "regime.mode=B+", "regime.base_batch=32",
        "data.train_size=256", "data.test_size=64", "data.num_workers=0", "train.epochs=1",
        "train.max_steps_per_epoch=4", "train.calibrate_batches=2", "train.sweep_sizes=[16,24,32]",
        "tracking.enabled=false"]


@pytest.fixture(scope="session")
def serve_run(tmp_path_factory):
    """``(run folder, checkpoint folder, config)``; MIXSIZE_RAY_DATA_DIR points at a session folder."""
    root = tmp_path_factory.mktemp("serve")
    mp = pytest.MonkeyPatch()
    mp.setenv("MIXSIZE_RAY_DATA_DIR", str(root / "data"))
    cfg = load_config(None, SETS)
    loop = TrainingLoop(cfg)
    loop.train_epoch()
    loop.calibrate()
    folder = save_checkpoint(root / "run" / "checkpoint_2026-01-01_00-00-01.000000", loop.state_dict(),
                             config_yaml=cfg.to_yaml())
    (folder / "sweep.json").write_text(json.dumps(loop.sweep(progress=False).to_dict()))
    yield root / "run", folder, cfg
    mp.undo()
