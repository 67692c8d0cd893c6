"""`mixsize-ray demo` end to end, shrunk: regime table, loader preview PNG, a 2-worker run, the curve."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_smoke(tmp_path, shapes_cache):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MIXSIZE_RAY_DATA_DIR": str(shapes_cache)}
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    shrink = ["train.epochs=1", "train.max_steps_per_epoch=3", "data.train_size=1024", "data.test_size=128",
              "train.calibrate_batches=1", "train.sweep_sizes=[16,32]"]
    argv = [sys.executable, "-m", "mixsize_ray.cli", "demo", "--out", str(tmp_path / "runs")]
    for s in shrink:
        argv += ["--set", s]
    proc = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "mode=D+" in out and "top1_calibrated" in out
    assert (tmp_path / "runs" / "loader_preview.png").read_bytes()[:4] == b"\x89PNG"
    assert list((tmp_path / "runs" / "demo").glob("checkpoint_*/sweep.png"))
    assert (tmp_path / "mlflow.db").is_file()  # tracked in the default local store of the working dir
