"""A paper-scale dry run: `mixsize-ray train` with the ImageNet S(144) D+ preset, shrunk by `--set`s only, on an
ImageFolder of real JPEG files of mixed resolutions (and one PNG and one greyscale JPEG, which take the full
decode), 2 Ray Train workers (gloo) and a loader worker each: the data path (lazy JPEGs, reduced-scale
decode), the transforms, validation sharded over both ranks and the one-pass sweep a cluster runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mixsize_ray.train.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration
CLASSES, TRAIN_PER_CLASS, TEST_PER_CLASS = 3, 8, 5
SHAPES = [(500, 375), (375, 500), (640, 480), (1024, 683), (300, 300), (260, 190)]  # (w, h), ImageNet-like
SWEEP = [96, 128, 224]


def _photo(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    field = Image.fromarray(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
    noise = rng.normal(0, 10, (h, w, 3))
    return Image.fromarray((np.asarray(field, dtype=np.float64) + noise).clip(0, 255).astype(np.uint8))


def write_folder(root: Path) -> int:
    """Train and val class folders of JPEGs at the :data:`SHAPES`; one PNG and one greyscale JPEG in val.
    Returns the number of val images (odd, so the two ranks' shards differ in size)."""
    rng = np.random.default_rng(0)
    for split, per in (("train", TRAIN_PER_CLASS), ("val", TEST_PER_CLASS)):
        for c in range(CLASSES):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(per):
                w, h = SHAPES[(c + i) % len(SHAPES)]
                _photo(rng, w, h).save(folder / f"{split}_{c}_{i}.JPEG", quality=90)
    _photo(rng, 320, 240).save(root / "val" / "n00000000" / "extra.png")
    _photo(rng, 400, 300).convert("L").save(root / "val" / "n00000001" / "grey.JPEG", quality=90)
    return CLASSES * TEST_PER_CLASS + 2


def test_imagenet_preset_trains_on_two_workers_and_sweeps_every_val_image_once(tmp_path):
    n_val = write_folder(tmp_path / "imagenet")
    assert n_val % 2 == 1
    sets = [f"data.root={tmp_path / 'imagenet'}", "data.num_workers=1", "model.name=resnet18",
            "regime.base_batch=8", "ray.num_workers=2", "ray.use_gpu=false", "ray.cpus_per_worker=1",
            "train.epochs=2", "optim.milestone_epochs=[1]", "train.max_steps_per_epoch=3", "train.eval_every=1", "train.eval_batch_size=8",
            f"train.sweep_sizes={SWEEP}", "train.calibrate_batches=1", "tracking.enabled=false",
            f"train.output_dir={tmp_path / 'runs'}", "train.name=dry"]
    argv = [sys.executable, "-m", "mixsize_ray.cli", "train", str(ROOT / "search_spaces/imagenet_s144_dplus.yaml"),
            "--smoke"]
    for s in sets:
        argv += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("RAY_ADDRESS", None)
    run = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)  # hang guard
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]

    checkpoints = sorted(p for p in (tmp_path / "runs" / "dry").glob("checkpoint_*") if p.is_dir())
    last = checkpoints[-1]
    state = load_checkpoint(last)
    m = state["metrics"]
    assert state["epoch"] == 1 and m["ranks_agree"] == 1 and m["steps"] == 3
    assert 0.0 <= m["val_top1"] <= 1.0
    sweep = json.loads((last / "sweep.json").read_text())
    assert sweep["eval_images_per_size"] == {str(s): n_val for s in SWEEP}  # both shards, each image once
    assert [r["size"] for r in sweep["sizes"]] == SWEEP
    for r in sweep["sizes"]:
        assert 0.0 <= r["top1"] <= 1.0 and 0.0 <= r["top1_calibrated"] <= 1.0 and r["gflops"] > 0
    assert sweep["train_sizes"] == [256, 224, 128, 96] and sweep["mode"] == "D+" and sweep["dataset"] == "imagefolder"
