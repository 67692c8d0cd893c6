"""Run one case of ``bad_inputs.yaml`` through the real CLI in its own folder: what the suite checks
(tests/unit/commands/test_bad_input_corpus.py) and what `make bench` times (benchmarks/bench_refusals.py).

Example:
    >>> CASES["config-missing"]["args"], len(CASES) >= 60
    (['regime', 'nope.yaml'], True)
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

CORPUS = yaml.safe_load((Path(__file__).parent / "bad_inputs.yaml").read_text())
CASES: dict[str, dict] = {c["id"]: c for c in CORPUS["cases"]}
HANG_S = 90  # a guard against hangs only (a slow day takes 13 s per case, a fast one 3 s)


def _write(folder: Path, files: dict) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, dict):
            path.write_bytes(bytes.fromhex(content["hex"]))
        else:
            path.write_text(content)


def tree(folder: Path) -> set[str]:
    """Every path under ``folder``, relative to it."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def processes_in(folder: Path) -> list[int]:
    """Processes (not zombies) whose working folder is ``folder``."""
    out = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "cwd") == str(folder) and (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                out.append(int(proc.name))
        except OSError:
            continue
    return out


def make_checkpoint(root: Path) -> Path:
    """A valid (untrained) checkpoint folder of the corpus' ``good.yaml`` under ``root`` (its data cache in
    ``root/data``, which :func:`run_case` points the CLI at)."""
    from mixsize_ray.config import config_from_dict
    from mixsize_ray.train.checkpoint import save_checkpoint
    from mixsize_ray.train.loop import TrainingLoop

    os.environ["MIXSIZE_RAY_DATA_DIR"] = str(root / "data")
    cfg = config_from_dict(yaml.safe_load(CORPUS["files"]["good.yaml"]))
    return save_checkpoint(root / "ckpt", TrainingLoop(cfg).state_dict(), config_yaml=cfg.to_yaml())


def run_case(case: dict, folder: Path, checkpoint: Path) -> dict:
    """Lay out ``case``'s files in the empty ``folder``, run the CLI there and return ``rc``, ``stderr``,
    ``stdout``, ``s`` (wall seconds: for the benchmark; the suite never asserts it), ``created`` (paths that
    were not there before) and ``left`` (processes still in the folder)."""
    _write(folder, {**CORPUS["files"], **case.get("files", {})})
    if case.get("checkpoint"):
        shutil.copytree(checkpoint, folder / "ckpt")
    before = tree(folder)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MIXSIZE_RAY_DATA_DIR": str(checkpoint.parent / "data")}
    env.pop("RAY_ADDRESS", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "mixsize_ray.cli", *map(str, case["args"])], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=HANG_S)
    except subprocess.TimeoutExpired:  # accepted by mistake and running: stop it and all it started
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        err = f"still running after {HANG_S} s (accepted?)\n{err}"
    return {"rc": proc.returncode, "stderr": err, "stdout": out, "s": time.monotonic() - t0,
            "created": sorted(tree(folder) - before), "left": processes_in(folder)}
