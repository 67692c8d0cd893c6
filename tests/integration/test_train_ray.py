"""Real Ray Train (TorchTrainer, 2 CPU workers, gloo): same sizes on every rank, loss falls, checkpoints,
end-of-run sweep, and resume continuing the exact sequence of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mixsize_ray.config import config_from_dict, load_config
from mixsize_ray.errors import ConfigError
from mixsize_ray.train.checkpoint import load_checkpoint
from mixsize_ray.train.launch import apply_smoke, launch

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


SMOKE_SETS = [
    "train.epochs=3", "ray.num_workers=2", "train.max_steps_per_epoch=8", "data.train_size=1024",
    "train.num_to_keep=5", "train.sweep_sizes=[16,32,48]", "train.calibrate_batches=2", "tracking.enabled=false",
]


def smoke_cfg(out: Path, name: str):
    cfg = apply_smoke(load_config(ROOT / "search_spaces/cifar_s28_dplus.yaml"))
    return config_from_dict(cfg.to_dict(), [*SMOKE_SETS, f"train.output_dir={out}", f"train.name={name}"])


def epoch_states(run_dir: Path) -> dict[int, dict]:
    out = {}
    for ckpt in (p for p in run_dir.glob("checkpoint_*") if p.is_dir()):
        state = load_checkpoint(ckpt)
        if state.get("step", 0) == 0:  # epoch ends only (mid-epoch checkpoints hold the steps done so far)
            out[state["epoch"]] = state
    return out


@pytest.fixture(scope="module")
def uninterrupted(ray_local, shapes_cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    summary = launch(smoke_cfg(out, "full"))
    return out, summary


def test_two_worker_run(uninterrupted):
    out, summary = uninterrupted
    states = epoch_states(out / "full")
    assert sorted(states) == [0, 1, 2]
    for st in states.values():
        m = st["metrics"]
        # every epoch's (S, views) sequence was all-gathered across both ranks and compared
        assert m["ranks_agree"] == 1 and m["steps"] == 8 and m["size_digest"] > 0
        assert abs(m["realised_budget"] - 1) < 0.1
    assert states[2]["metrics"]["loss"] < states[0]["metrics"]["loss"]  # it learns
    assert states[0]["metrics"]["size_digest"] != states[1]["metrics"]["size_digest"]
    # end-of-run sweep next to the last checkpoint, calibrated and not, with GFLOPs
    doc = json.loads(Path(summary.sweep_json).read_text())
    assert [r["size"] for r in doc["sizes"]] == [16, 32, 48]
    for r in doc["sizes"]:
        assert 0 <= r["top1"] <= 1 and 0 <= r["top1_calibrated"] <= 1 and r["gflops"] > 0
    assert (Path(summary.checkpoint) / "sweep.png").stat().st_size > 1000
    assert sorted(states[2]["bn_cache"]["sizes"] if "sizes" in states[2]["bn_cache"] else
                  states[2]["bn_cache"]) is not None
    assert states[2]["config"]["regime"]["mode"] == "D+"


def test_killed_run_resumes_with_the_same_sequence(uninterrupted, tmp_path, shapes_cache):
    """SIGKILL the whole `mixsize-ray train` process group after its first checkpoint, re-run the same
    name: it continues at the next epoch and reproduces the uninterrupted run's sizes and losses."""
    out, _ = uninterrupted
    full = epoch_states(out / "full")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MIXSIZE_RAY_DATA_DIR": str(shapes_cache)}
    env.pop("RAY_ADDRESS", None)
    argv = [sys.executable, "-m", "mixsize_ray.cli", "train", str(ROOT / "search_spaces/cifar_s28_dplus.yaml"),
            "--smoke"]
    for s in [*SMOKE_SETS, f"train.output_dir={tmp_path}", "train.name=resumed"]:
        argv += ["--set", s]
    proc = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not list((tmp_path / "resumed").glob("checkpoint_*/state.pt")):
            assert proc.poll() is None, "training exited before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = epoch_states(tmp_path / "resumed")
    assert before and max(before) < 2, "the kill came too late to test a resume"
    launch(smoke_cfg(tmp_path, "resumed"))  # same name: resumes after the last complete checkpoint
    resumed = epoch_states(tmp_path / "resumed")
    assert sorted(resumed) == [0, 1, 2]
    for e in (0, 1, 2):
        assert resumed[e]["metrics"]["size_digest"] == full[e]["metrics"]["size_digest"], e
        assert resumed[e]["metrics"]["loss"] == pytest.approx(full[e]["metrics"]["loss"], rel=1e-4), e
    assert resumed[2]["global_step"] == full[2]["global_step"] == 24


def test_same_name_with_other_regime_is_refused(uninterrupted):
    out, _ = uninterrupted
    cfg = config_from_dict(smoke_cfg(out, "full").to_dict(), ["regime.base_batch=32"])
    with pytest.raises(ConfigError, match=r"train.name.*regime.base_batch: 64 -> 32"):
        launch(cfg)


def test_mid_epoch_checkpoints_leave_training_unchanged(uninterrupted, tmp_path):
    """``train.checkpoint_every_steps``: every rank reports a checkpoint after steps 3 and 6 of each epoch (rank
    0 writes it at that exact point), and the run ends where the uninterrupted one does, loss for loss. (The
    resume from such a checkpoint is checked step for step in tests/unit/train/test_loop_numbers.py.)"""
    out, _ = uninterrupted
    full = epoch_states(out / "full")
    cfg = config_from_dict(smoke_cfg(tmp_path, "mid").to_dict(), ["train.checkpoint_every_steps=3",
                                                                  "train.num_to_keep=9"])
    launch(cfg)
    states = [load_checkpoint(p) for p in (tmp_path / "mid").glob("checkpoint_*") if p.is_dir()]
    mid = sorted((s["epoch"] + 1, s["step"], s["global_step"]) for s in states if s["step"])
    assert mid == [(0, 3, 3), (0, 6, 6), (1, 3, 11), (1, 6, 14), (2, 3, 19), (2, 6, 22)]
    ends = epoch_states(tmp_path / "mid")
    for e in (0, 1, 2):
        assert ends[e]["metrics"]["loss"] == pytest.approx(full[e]["metrics"]["loss"], rel=1e-4), e


def test_eval_through_launch_on_the_cluster_matches_the_local_sweep(uninterrupted):
    """`mixsize-ray eval` takes launch's path: naming a cluster it runs on one Ray Train worker, and the curve
    it brings back is the one this process computes; its result folder is removed once read."""
    import ray

    from mixsize_ray.train.evaluate import Evaluation, checkpoint_config, evaluate_checkpoint

    _, summary = uninterrupted
    job = Evaluation(summary.checkpoint, sizes=[16, 32], calibrate_batches=2, progress=False)
    address = ray.get_runtime_context().gcs_address  # the cluster the run names (as RAY_ADDRESS would)
    remote = launch(checkpoint_config(summary.checkpoint, [f"ray.address={address}"]), job=job)
    local = evaluate_checkpoint(summary.checkpoint, sizes=[16, 32], calibrate_batches=2, progress=False)
    # the same images and statistics; a worker's thread count may move a float's last bits, never a count
    for got, want in zip(remote.sweep.to_dict()["sizes"], local.to_dict()["sizes"], strict=True):
        assert got["size"] == want["size"] and got["gflops"] == pytest.approx(want["gflops"])
        for key in ("top1", "top1_calibrated"):
            assert got[key] == pytest.approx(want[key], abs=0.01), (got["size"], key)
    assert remote.metrics["sweep_top1_calibrated_32"] == remote.sweep.rows[1].top1_calibrated
    assert not any("-eval-" in p.name for p in Path(summary.run_dir).parent.iterdir())  # its folder is removed
