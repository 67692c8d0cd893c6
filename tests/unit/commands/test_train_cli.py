"""`mixsize-ray train` refuses bad input with one line and exit 2 before any worker starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
PRESET = str(ROOT / "search_spaces/cifar_s28_dplus.yaml")


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "mixsize_ray.cli", "train", PRESET, "--smoke", *args],
                          env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.parametrize(
    "args, env_extra, needle",
    [
        (["--set", "ray.num_workers=0"], None, "ray.num_workers"),
        (["--set", "ray.num_workers=3"], None, "regime.base_batch: expected a multiple of the world size 3"),
        (["--set", "ray.storage_path=/proc/mixsize-no-write"], None, "ray.storage_path: expected a writable"),
        ([], {"RAY_ADDRESS": f"127.0.0.1:{free_port()}"}, "ray.address: expected a reachable Ray cluster"),
        (["--set", "ray.address=nonsense"], None, "ray.address"),
        (["--set", "data.name=cifar10", "--set", "data.root=/nonexistent/cifar"], None, "data.root"),
    ],
)
def test_bad_input_exits_2_before_launch(args, env_extra, needle, tmp_path):
    proc = run_cli(*args, "--set", f"train.output_dir={tmp_path}", env_extra=env_extra)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not list(tmp_path.glob("*/checkpoint_*"))  # nothing launched


def test_use_gpu_without_gpus_is_refused(tmp_path):
    # a local cluster would have this machine's GPUs only (none): refused before Ray starts, nothing created
    proc = run_cli("--set", "ray.use_gpu=true", "--set", f"train.output_dir={tmp_path}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "ray.use_gpu: expected a machine with >= 1 GPUs" in proc.stderr.strip().splitlines()[-1]
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
