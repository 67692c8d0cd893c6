"""The numbers the training loop applies, checked step by step: LR, smoothing, weight decay, mid-epoch resume,
calibration rule. Each test fails on the behaviour it replaced (sqrt-per-step LR, smoothing skipped or
misplaced, decay on BN/bias, resume from the epoch start, two calibration rules)."""

from __future__ import annotations

import math

import pytest
import torch

from mixsize_ray.config import load_config
from mixsize_ray.train.checkpoint import load_checkpoint, save_checkpoint
from mixsize_ray.train.evaluate import evaluate_checkpoint
from mixsize_ray.train.loop import TrainingLoop

BASE = ["regime.sizes=[16,32]", "regime.probs=[0.5,0.5]", "regime.mode=B+", "regime.base_batch=32",
        "data.train_size=512", "data.test_size=64", "data.num_workers=0", "train.epochs=2",
        "train.max_steps_per_epoch=6", "optim.smoothing_alpha=0.9", "train.calibrate_batches=2",
        "train.sweep_sizes=[16,32]", "tracking.enabled=false"]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXSIZE_RAY_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


class Recorder:
    """Wraps a loop's smoother and optimizer: raw (pre-smoothing) and applied gradients, LR, batch per step."""

    def __init__(self, loop: TrainingLoop):
        self.raw, self.seen, self.lr, self.batch = [], [], [], []
        smoother_step, opt_step = loop.smoother.step if loop.smoother else None, loop.optimizer.step
        params = [p for g in loop.optimizer.param_groups for p in g["params"]]

        def record_raw(target):
            self.raw.append([p.grad.detach().clone() for p in params])
            return smoother_step(target)

        def record_seen(*a, **k):
            self.seen.append([p.grad.detach().clone() for p in params])
            self.lr.append([g["lr"] for g in loop.optimizer.param_groups])
            return opt_step(*a, **k)

        if loop.smoother:
            loop.smoother.step = record_raw
        loop.optimizer.step = record_seen


def _norm(grads):
    return math.sqrt(sum(float(g.double().pow(2).sum()) for g in grads))


def test_lr_applied_each_step_is_base_times_mean_batch_over_b0_times_cosine(data_dir):
    cfg = load_config(None, [*BASE, "optim.lr=0.05", "optim.lr_scaling=linear", "optim.schedule=cosine"])
    loop = TrainingLoop(cfg)
    rec = Recorder(loop)
    loop.train_epoch()
    mean_batch = loop.table.mean_batch  # B+ 16/32 px at B0=32: 128 and 32 -> 80
    assert mean_batch == pytest.approx(80.0)
    total = loop.steps_per_epoch * cfg.train.epochs
    for k, lrs in enumerate(rec.lr):
        want = 0.05 * 80.0 / 32 * 0.5 * (1 + math.cos(math.pi * k / total))
        assert lrs == pytest.approx([want, want], rel=1e-12), f"step {k}"  # one LR, whatever the step's batch


def test_per_step_scaling_is_the_named_option(data_dir):
    cfg = load_config(None, [*BASE, "optim.lr=0.05", "optim.lr_scaling=sqrt", "optim.lr_scaling_by=step",
                             "optim.schedule=constant"])
    loop = TrainingLoop(cfg)
    rec = Recorder(loop)
    sizes = [s.size for s in loop.schedule.epoch_steps(0)]
    loop.train_epoch()
    for size, lrs in zip(sizes, rec.lr, strict=True):
        batch = {16: 128, 32: 32}[size]
        assert lrs[0] == pytest.approx(0.05 * math.sqrt(batch / 32))


def test_smoothing_at_step_2_scales_the_raw_gradient_by_gbar_over_g(data_dir):
    cfg = load_config(None, [*BASE, "optim.smoothing_alpha=0.8"])
    loop = TrainingLoop(cfg)
    rec = Recorder(loop)
    loop.train_epoch()
    g = [_norm(r) for r in rec.raw]
    gbar = [g[0]]
    for t in range(1, len(g)):
        gbar.append(0.8 * gbar[-1] + 0.2 * g[t])
    # step 0 unscaled (gbar_0 = g_0); step 2: applied = raw * gbar_2 / g_2, by hand
    for a, b in zip(rec.seen[0], rec.raw[0], strict=True):
        torch.testing.assert_close(a, b)
    factor = gbar[2] / g[2]
    assert abs(factor - 1) > 1e-3  # the check below would also pass with smoothing off otherwise
    for a, b in zip(rec.seen[2], rec.raw[2], strict=True):
        torch.testing.assert_close(a, b * factor, rtol=1e-5, atol=1e-8)
    assert float(loop.smoother.smoothed_norm) == pytest.approx(gbar[-1], rel=1e-5)


def test_smoothing_sees_unscaled_gradients_under_a_grad_scaler(data_dir):
    """With AMP's GradScaler the smoother must run after ``unscale_``: its norm equals the plain run's."""
    cfg = load_config(None, [*BASE, "train.max_steps_per_epoch=1"])
    plain = TrainingLoop(cfg)
    rec_plain = Recorder(plain)
    plain.train_epoch()
    scaled = TrainingLoop(cfg)
    scaled.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    scaled.smoother.check_finite = False
    rec_scaled = Recorder(scaled)
    scaled.train_epoch()
    assert _norm(rec_scaled.raw[0]) == pytest.approx(_norm(rec_plain.raw[0]), rel=1e-4)
    assert float(scaled.smoother.last_norm) == pytest.approx(float(plain.smoother.last_norm), rel=1e-4)


def test_weight_decay_only_on_conv_and_linear_weights(data_dir):
    loop = TrainingLoop(load_config(None, [*BASE, "optim.weight_decay=1e-4"]))
    names = {id(p): n for n, p in loop.model.named_parameters()}
    decayed = {names[id(p)] for g in loop.optimizer.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    free = {names[id(p)] for g in loop.optimizer.param_groups if g["weight_decay"] == 0 for p in g["params"]}
    assert decayed and free and decayed.isdisjoint(free) and len(decayed | free) == len(names)
    modules = dict(loop.model.named_modules())
    for n in decayed:
        mod = modules[n.rsplit(".", 1)[0]]
        assert n.endswith(".weight") and isinstance(mod, torch.nn.Conv2d | torch.nn.Linear), n
    for n in free:
        mod = modules[n.rsplit(".", 1)[0]]
        assert isinstance(mod, torch.nn.BatchNorm2d) or n.endswith(".bias"), n
    assert {g["weight_decay"] for g in loop.optimizer.param_groups} == {1e-4, 0.0}
    everything = TrainingLoop(load_config(None, [*BASE, "optim.weight_decay=1e-4", "optim.weight_decay_on=all"]))
    assert [g["weight_decay"] for g in everything.optimizer.param_groups] == [1e-4]


def test_bn_weight_with_zero_gradient_is_not_decayed(data_dir):
    loop = TrainingLoop(load_config(None, [*BASE, "optim.weight_decay=0.5", "optim.momentum=0.0",
                                          "optim.smoothing_alpha=null"]))
    bn = next(m for m in loop.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    conv = next(m for m in loop.model.modules() if isinstance(m, torch.nn.Conv2d))
    for p in loop.model.parameters():
        p.grad = torch.zeros_like(p)
    before_bn, before_conv = bn.weight.detach().clone(), conv.weight.detach().clone()
    for g in loop.optimizer.param_groups:
        g["lr"] = 0.1
    loop.optimizer.step()
    torch.testing.assert_close(bn.weight.detach(), before_bn)  # no decay on BatchNorm
    torch.testing.assert_close(conv.weight.detach(), before_conv * (1 - 0.1 * 0.5))  # decay on conv weights


class Stop(Exception):
    pass


def _killed_after(cfg, k_stop: int, folder) -> dict:
    """A run's first epoch, checkpointed after step ``k_stop`` and stopped there: the checkpoint's state."""
    first = TrainingLoop(cfg)

    def kill(k: int) -> None:
        if k == k_stop:
            save_checkpoint(folder, first.state_dict(), config_yaml=cfg.to_yaml())
            raise Stop

    with pytest.raises(Stop):
        first.train_epoch(on_step=kill)
    return load_checkpoint(folder)


def test_resume_mid_epoch_matches_uninterrupted_step_for_step(data_dir, tmp_path):
    cfg = load_config(None, BASE)
    full = TrainingLoop(cfg)
    rec_full = Recorder(full)
    full.train_epoch()
    full.train_epoch()

    state = _killed_after(cfg, 3, tmp_path / "mid")
    assert (state["epoch"], state["step"], state["global_step"]) == (-1, 3, 3)
    resumed = TrainingLoop(cfg)
    resumed.load_state_dict(state)
    rec = Recorder(resumed)
    resumed.train_epoch()
    resumed.train_epoch()
    assert resumed.global_step == full.global_step == len(rec_full.seen)
    # steps 3.. of the uninterrupted run, gradient for gradient (augmentation seeded per step)
    assert len(rec.seen) == len(rec_full.seen) - 3
    for k, (a, b) in enumerate(zip(rec.seen, rec_full.seen[3:], strict=True)):
        for ga, gb in zip(a, b, strict=True):
            torch.testing.assert_close(ga, gb, msg=lambda m, k=k: f"step {k + 3}: {m}")
    for a, b in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)


def test_training_and_eval_calibrate_by_one_rule(data_dir, tmp_path):
    cfg = load_config(None, BASE)
    loop = TrainingLoop(cfg)
    loop.train_epoch()
    loop.calibrate([16, 32])
    ours = {r["size"]: r for r in loop.sweep([16, 32], progress=False).to_dict()["sizes"]}
    save_checkpoint(tmp_path / "ck", loop.state_dict(), config_yaml=cfg.to_yaml())
    # eval recalibrates every size itself (explicit batch count) and must land on the same statistics
    theirs = evaluate_checkpoint(tmp_path / "ck", sizes=[16, 32], calibrate_batches=cfg.train.calibrate_batches,
                                 progress=False).to_dict()["sizes"]
    for row in theirs:
        for key in ("top1_calibrated", "top5_calibrated"):
            assert row[key] == pytest.approx(ours[row["size"]][key], abs=1e-9), (row["size"], key)


def test_lr_at_each_step_of_a_b_plus_s144_run_is_linear_once_with_decays_at_30_60_80():
    from mixsize_ray.core.regime import regime_from_config
    from mixsize_ray.train.loop import lr_schedule_for

    cfg = load_config("search_spaces/imagenet_s144_bplus.yaml")
    table = regime_from_config(cfg, world_size=4, num_images=1281167).solve()
    spe = round(table.steps_per_epoch)  # 1281167 / 794 -> 1614 steps per epoch (5005 for the fixed baseline)
    assert spe == 1614 and round(table.baseline_steps_per_epoch) == 5005
    s = lr_schedule_for(cfg, table, spe)
    peak = 0.1 * 794.0 / 256  # 0.31: linear, once, by the mean batch (paper 5.2); no warm-up
    for k, want in [(0, peak), (1, peak), (30 * spe - 1, peak), (30 * spe, peak / 10), (60 * spe - 1, peak / 10),
                    (60 * spe, peak / 100), (80 * spe, peak / 1000), (90 * spe - 1, peak / 1000)]:
        for batch in (196, 256, 784, 1392):  # the step's own batch does not move the LR
            assert s.lr(k, batch) == pytest.approx(want, rel=1e-12), (k, batch)


def test_global_rng_is_seeded_per_epoch_and_rank_and_left_to_the_model(data_dir):
    """Augmentation has per-step seeds of its own; torch's global RNG is seeded per (seed, epoch, rank) for the
    model's own randomness (dropout, stochastic depth), and the loader does not draw from it."""
    cfg = load_config(None, [*BASE, "train.seed=3"])
    loop = TrainingLoop(cfg)
    draws: list[float] = []
    loop.model.register_forward_pre_hook(lambda m, a: draws.append(float(torch.rand(()))))  # a dropout's draw
    loop.train_epoch()
    torch.rand(100)  # whatever runs between epochs
    loop.train_epoch()
    n = loop.steps_per_epoch
    for epoch in (0, 1):
        g = torch.Generator().manual_seed((3 * 1_000_003 + epoch) * 1009 + 0)
        want = [float(torch.rand((), generator=g)) for _ in range(n)]
        assert draws[epoch * n:(epoch + 1) * n] == want, epoch


def test_resume_mid_epoch_of_a_model_with_dropout_matches_step_for_step(data_dir, tmp_path):
    """efficientnet_b0 (dropout and stochastic depth) at 32 px: the model's own randomness continues from the
    checkpoint's RNG state, not from the epoch's seed (which a mid-epoch resume used to re-apply)."""
    cfg = load_config(None, [*BASE, "model.name=efficientnet_b0", "regime.sizes=[32,40]", "regime.base_size=32",
                             "regime.base_batch=8", "train.max_steps_per_epoch=4", "optim.smoothing_alpha=null"])
    full = TrainingLoop(cfg)
    rec_full = Recorder(full)
    full.train_epoch()
    state = _killed_after(cfg, 2, tmp_path / "mid")
    resumed = TrainingLoop(cfg)
    resumed.load_state_dict(state)
    torch.manual_seed(12345)  # whatever ran in between (the worker's setup) must not matter
    rec = Recorder(resumed)
    resumed.train_epoch()
    assert len(rec.seen) == len(rec_full.seen) - 2 == 2
    for k, (a, b) in enumerate(zip(rec.seen, rec_full.seen[2:], strict=True)):
        for ga, gb in zip(a, b, strict=True):
            torch.testing.assert_close(ga, gb, msg=lambda m, k=k: f"step {k + 2}: {m}")


def test_each_rank_resumes_from_its_own_rng_state(data_dir):
    """A mid-epoch checkpoint holds every rank's RNG state (``rng_by_rank``); rank r restores entry r, and a
    checkpoint of another world size falls back to rank 0's ``rng``."""
    cfg = load_config(None, BASE)
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        states.append({"cpu": torch.get_rng_state(), "cuda": None})
    loop = TrainingLoop(cfg, rank=1, world_size=2)
    state = {**loop.state_dict(), "step": 3, "rng_by_rank": states, "rng": states[0]["cpu"]}
    loop.load_state_dict(state)
    assert torch.equal(torch.get_rng_state(), states[1]["cpu"]) and torch.equal(loop._resume_rng["cpu"],
                                                                                 states[1]["cpu"])
    single = TrainingLoop(cfg, rank=1, world_size=2)
    single.load_state_dict({**state, "rng_by_rank": states[:1]})  # saved by a 1-rank run
    assert torch.equal(single._resume_rng["cpu"], states[0]["cpu"])
