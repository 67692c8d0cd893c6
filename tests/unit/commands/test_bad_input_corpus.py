"""Every case of ``tests/cli_corpus/bad_inputs.yaml`` through the real CLI: exit 2, one line on stderr
naming the expected fragment, no traceback, nothing created in the working folder, no process left, under
10 s. The cases run two at a time (module fixture); each case is its own test."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
CORPUS = yaml.safe_load((ROOT / "tests/cli_corpus/bad_inputs.yaml").read_text())
CASES = {c["id"]: c for c in CORPUS["cases"]}


def _write(folder: Path, files: dict) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            path.write_bytes(bytes.fromhex(content["hex"]))
        else:
            path.write_text(content)


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _processes_in(folder: Path) -> list[int]:
    """Processes (not zombies) whose working folder is ``folder``."""
    out = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "cwd") == str(folder) and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                out.append(int(proc.name))
        except OSError:
            continue
    return out


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A valid (untrained) checkpoint folder of the corpus' good.yaml."""
    from mixsize_ray.config import config_from_dict
    from mixsize_ray.train.checkpoint import save_checkpoint
    from mixsize_ray.train.loop import TrainingLoop

    root = tmp_path_factory.mktemp("corpus-ckpt")
    os.environ["MIXSIZE_RAY_DATA_DIR"] = str(root / "data")
    cfg = config_from_dict(yaml.safe_load(CORPUS["files"]["good.yaml"]))
    return save_checkpoint(root / "ckpt", TrainingLoop(cfg).state_dict(), config_yaml=cfg.to_yaml())


def _run(case: dict, folder: Path, checkpoint: Path) -> dict:
    _write(folder, {**CORPUS["files"], **case.get("files", {})})
    if case.get("checkpoint"):
        shutil.copytree(checkpoint, folder / "ckpt")
    before = _tree(folder)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MIXSIZE_RAY_DATA_DIR": str(checkpoint.parent / "data")}
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "mixsize_ray.cli", *map(str, case["args"])], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # accepted by mistake and running: stop it and all it started
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err = f"still running after 30 s (accepted?)\n{err}"
    return {"rc": proc.returncode, "stderr": err, "stdout": out, "s": time.monotonic() - t0,
            "created": sorted(_tree(folder) - before), "left": _processes_in(folder)}


@pytest.fixture(scope="module")
def results(checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {cid: pool.submit(_run, case, (root / cid).resolve(), checkpoint)
                   for cid, case in CASES.items() if not (root / cid).mkdir()}
        return {cid: f.result() for cid, f in futures.items()}


def test_the_corpus_is_large_and_covers_every_subcommand():
    from mixsize_ray.cli import build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # every subcommand the CLI has
    covered = {c["args"][0] for c in CASES.values() if c["args"]}
    assert len(CASES) >= 60 and commands <= covered, sorted(commands - covered)


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input_is_refused_in_one_line(results, case_id):
    r, want = results[case_id], CASES[case_id]["expect"]
    lines = r["stderr"].strip().splitlines()
    assert r["rc"] == 2, r["stderr"][-2000:]
    assert len(lines) == 1 and want in lines[0], lines
    assert "Traceback" not in r["stderr"] + r["stdout"]
    assert r["created"] == [], r["created"]
    assert r["left"] == []
    assert r["s"] < 10, f"took {r['s']:.1f} s"
