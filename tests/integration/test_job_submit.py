"""A real `ray start --head` on loopback ports with its own temp dir and auth token, a real
`ray job submit` of a smoke training that must SUCCEED, then a stop of that cluster only."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.ray_head import BIN, ray_head

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture
def head(tmp_path, shapes_cache):
    with ray_head(tmp_path, shapes_cache) as h:
        yield h


def test_ray_job_submit_smoke_train_succeeds(head, tmp_path):
    address, env, temp_dir = head.address, head.env, head.temp_dir
    out = tmp_path / "runs"
    proc = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", str(ROOT), "--",
         "mixsize-ray", "train", "search_spaces/cifar_s28_dplus.yaml", "--smoke",
         "--set", "ray.num_workers=2", "--set", "tracking.enabled=false", "--set", f"train.output_dir={out}",
         "--set", "train.name=job"],
        env=env, capture_output=True, text=True, timeout=540,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "succeeded" in log
    listing = subprocess.run([str(BIN / "ray"), "job", "list", "--address", address], env=env,
                             capture_output=True, text=True).stdout
    assert "SUCCEEDED" in listing
    # the job ran on this cluster (its temp dir) and wrote the checkpoint + sweep
    ckpts = sorted((out / "job").glob("checkpoint_*/sweep.json"))
    assert ckpts, log[-3000:]
    assert any(temp_dir.glob("session_*/logs/job-driver-*.log"))
