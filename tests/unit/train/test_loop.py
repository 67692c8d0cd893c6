"""The per-rank training loop without Ray: learning, exact resume from a checkpoint, rank agreement."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mixsize_ray.config import load_config
from mixsize_ray.train.checkpoint import load_checkpoint, save_checkpoint
from mixsize_ray.train.loop import TrainingLoop

ROOT = Path(__file__).resolve().parents[3]

SETS = ["regime.sizes=[16,32]", "regime.probs=[0.5,0.5]", "regime.mode=B+", "regime.base_batch=32",
        "data.train_size=512", "data.test_size=64", "data.num_workers=0", "train.epochs=2",
        "train.max_steps_per_epoch=4", "optim.smoothing_alpha=0.9", "optim.lr_scaling=sqrt",
        "train.calibrate_batches=2", "train.sweep_sizes=[16,32]", "tracking.enabled=false"]


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXSIZE_RAY_DATA_DIR", str(tmp_path / "data"))
    return load_config(None, SETS)


def test_epoch_metrics_and_sizes(cfg):
    loop = TrainingLoop(cfg)
    m = loop.train_epoch()
    assert m["steps"] == 4 and m["epoch"] == 0 and loop.global_step == 4
    assert abs(m["realised_budget"] - 1) < 0.1
    assert {k for k in m if k.startswith("step_time_")} <= {"step_time_16", "step_time_32"}
    # the reported norms are the smoother's state after the last step (their EMA arithmetic is checked
    # number by number in test_loop_numbers.py); after 4 steps the smoothed norm has left the raw one
    assert m["grad_norm"] == float(loop.smoother.last_norm) and m["grad_norm_smoothed"] == float(loop.smoother.smoothed_norm)
    assert loop.smoother.num_steps == 4 and abs(m["grad_norm_smoothed"] - m["grad_norm"]) > 1e-6
    assert 0 <= m["train_top1"] <= 1 and m["loss"] > 0


def test_resume_from_checkpoint_is_exact(cfg, tmp_path):
    full = TrainingLoop(cfg)
    full.train_epoch()
    expected = full.train_epoch()

    first = TrainingLoop(cfg)
    first.train_epoch()
    save_checkpoint(tmp_path / "ckpt", first.state_dict(), config_yaml=cfg.to_yaml())
    del first
    second = TrainingLoop(cfg)  # a new process would start from scratch like this
    second.load_state_dict(load_checkpoint(tmp_path / "ckpt"))
    assert second.epoch == 1 and second.global_step == 4
    got = second.train_epoch()
    assert got["size_digest"] == expected["size_digest"]
    assert got["loss"] == pytest.approx(expected["loss"], rel=1e-6)
    assert got["grad_norm_smoothed"] == pytest.approx(expected["grad_norm_smoothed"], rel=1e-6)
    for a, b in zip(second.model.parameters(), full.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_calibrate_and_sweep_fill_the_cache(cfg):
    loop = TrainingLoop(cfg)
    loop.train_epoch()
    cache = loop.calibrate()
    assert cache.sizes == [16, 32]
    doc = loop.sweep(progress=False).to_dict()
    assert [r["size"] for r in doc["sizes"]] == [16, 32]
    assert doc["mode"] == "B+" and doc["train_sizes"] == [16, 32]
    assert loop.state_dict()["bn_cache"]
    # one pass over the calibration images gives each size what calibrating it alone on its source gives
    from mixsize_ray.core.calibration import calibrate_sizes

    alone = calibrate_sizes(loop.model, [16, 32], lambda s: loop.data.calibration_source(s), num_batches=2)
    assert all(torch.equal(cache[s][k], alone[s][k]) for s in (16, 32) for k in alone[s])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _agree_worker(rank: int, port: int, skew: bool, q) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    loop = TrainingLoop.__new__(TrainingLoop)  # only the agreement check is exercised
    loop.world_size, loop.epoch = 2, 0
    shapes = [(32, 64), (16, 256)] if not (skew and rank == 1) else [(32, 64), (24, 128)]
    try:
        q.put((rank, "ok", loop.check_ranks_agree(shapes)))
    except RuntimeError as e:
        q.put((rank, "error", str(e)))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("skew", [False, True])
def test_ranks_must_train_on_the_same_sizes(skew):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_agree_worker, args=(r, port, skew, q)) for r in range(2)]
    for p in procs:
        p.start()
    results = sorted(q.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    if skew:
        assert all(kind == "error" and "different size sequences" in msg for _, kind, msg in results)
    else:
        assert results[0][1] == results[1][1] == "ok" and results[0][2] == results[1][2]


def test_the_drivers_table_is_used_not_solved_again(cfg, monkeypatch):
    import mixsize_ray.train.loop as loop_mod
    from mixsize_ray.train.preflight import solve_table

    table = solve_table(cfg)  # what the driver sends
    monkeypatch.setattr(loop_mod, "regime_from_config", lambda *a, **k: pytest.fail("solved again"))
    assert TrainingLoop(cfg, table=table).table is table
    with pytest.raises(RuntimeError, match="world size 1 and 512 images; this worker has 2 and 512"):
        TrainingLoop(cfg, world_size=2, table=table)


@pytest.mark.parametrize("preset", ["cifar_official_bplus", "cifar_s28_dplus"])
def test_warmup_covers_every_shape_an_epoch_produces(preset, tmp_path, monkeypatch):
    """The shapes warmed up (before training, on GPU) equal the (S, rows) of every batch the loader yields:
    image-fraction sampling's short last batches included; D+ entries (equal S^2 x B x D) ordered by S."""
    monkeypatch.setenv("MIXSIZE_RAY_DATA_DIR", str(tmp_path))
    cfg = load_config(ROOT / f"search_spaces/{preset}.yaml",
                      ["data.train_size=300", "data.test_size=32", "data.num_workers=0", "train.epochs=2"])
    loop = TrainingLoop(cfg)
    warmed = loop.warmup_shapes()
    produced = set()
    for epoch in range(2):
        loop.schedule.set_epoch(epoch)
        produced |= {(int(b.images.shape[-1]), int(b.images.shape[0])) for b in loop.loader}
    assert set(warmed) == produced and len(warmed) == len(produced)
    cost = [s * s * n for s, n in warmed]
    assert cost == sorted(cost, reverse=True)
    ties = [s for (s, n), c in zip(warmed, cost, strict=True) if cost.count(c) > 1]
    assert ties == sorted(ties, reverse=True)
