"""Tracking at the command line: an MLflow server that does not answer stops `train` before anything starts
(one line naming the URI, exit 2); `ui` refuses bad arguments the same way."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mixsize_ray.cli import main
from tests.integration.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
PRESET = str(ROOT / "search_spaces/cifar_s28_dplus.yaml")


def _train(tmp_path, *sets: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    env.pop("RAY_ADDRESS", None)
    argv = [sys.executable, "-m", "mixsize_ray.cli", "train", PRESET, "--smoke", "--set",
            f"train.output_dir={tmp_path}"]
    for s in sets:
        argv += ["--set", s]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)


@pytest.mark.parametrize("via_env", [False, True])
def test_unreachable_tracking_server_exits_2_naming_the_uri(tmp_path, via_env):
    uri = f"http://127.0.0.1:{free_port()}"
    if via_env:
        proc = _train(tmp_path, env_extra={"MLFLOW_TRACKING_URI": uri})
    else:
        proc = _train(tmp_path, f"tracking.uri={uri}", "tracking.timeout_s=3")
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mixsize-ray: error: tracking.uri") and f"got '{uri}'" in lines[0]
    assert "reachable MLflow tracking server" in lines[0]
    assert "Ray" not in proc.stdout and not list(tmp_path.glob("*/checkpoint_*"))  # nothing launched
    assert not (tmp_path / "mlflow.db").exists()  # (a hang is caught by _train's 180 s timeout)


def test_file_store_uri_is_refused(tmp_path):
    proc = _train(tmp_path, "tracking.uri=file:///tmp/mlruns")
    assert proc.returncode == 2
    assert "tracking.uri: expected null or a URI with a scheme in" in proc.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["ui", "--backend-store-uri", "http://127.0.0.1:5000"], "--backend-store-uri: expected a database store"),
        (["ui", "--backend-store-uri", "./mlruns"], "tracking.uri: expected null or a URI"),
        (["ui", "--port", "0"], "--port: expected an integer in 1..65535"),
        (["ui", "--workers", "0"], "--workers: expected >= 1"),
    ],
)
def test_ui_bad_arguments(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err


def test_ui_help_states_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["ui", "--help"])
    out = capsys.readouterr().out
    assert "default: 5000" in out and "default: 127.0.0.1" in out
