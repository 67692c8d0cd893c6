"""BN calibration: context manager restores state, cumulative statistics, cache, sizes, DDP averaging."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from mixsize_ray.core.calibration import (
    BNStatsCache,
    SizeAwareModel,
    bn_calibration,
    bn_layers,
    bn_stats_kept,
    calibrate_bn,
    calibrate_sizes,
    calibrate_sizes_together,
    check_num_batches,
    model_device,
    resize_batches,
    unwrap,
    use_size,
)
from mixsize_ray.errors import ConfigError


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4, momentum=0.3), nn.ReLU()
        )
        self.block = nn.Sequential(
            nn.Conv2d(4, 6, 3, stride=2, bias=False), nn.BatchNorm2d(6), nn.Dropout(0.0)
        )
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(6, momentum=None), nn.Linear(6, 3)
        )

    def forward(self, x):
        return self.head(self.block(self.stem(x)))


def make_net(seed=0):
    torch.manual_seed(seed)
    net = Net()
    with torch.no_grad():  # non-default statistics, so that a reset is visible
        for _, m in bn_layers(net):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.num_batches_tracked.fill_(7)
    return net


def batches(size, n=4, b=8, seed=0, shift=0.0):
    g = torch.Generator().manual_seed(seed + size)
    return [torch.randn(b, 3, size, size, generator=g) * (1 + size / 16) + shift for _ in range(n)]


def bn_state(net):
    return {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "num_batches" in k}


def flags(net):
    return [(name, m.training) for name, m in net.named_modules()]


def momenta(net):
    return [m.momentum for _, m in bn_layers(net)]


def mixed_mode_net():
    net = make_net()
    net.train()
    net.block.eval()  # a mix of train and eval flags that model.train() would overwrite
    net.head[2].eval()
    return net


def test_context_manager_restores_modes_and_momentum_on_normal_exit():
    net = mixed_mode_net()
    before_flags, before_momenta = flags(net), momenta(net)
    assert before_momenta == [0.3, 0.1, None]
    with bn_calibration(net) as layers, torch.no_grad():
        assert len(layers) == 3
        assert all(m.momentum is None for _, m in layers)
        assert all(m.training for m in net.modules())
        assert all(int(m.num_batches_tracked) == 0 for _, m in layers)
        net(torch.randn(4, 3, 8, 8))
    assert flags(net) == before_flags
    assert momenta(net) == before_momenta
    assert all(int(m.num_batches_tracked) == 1 for _, m in bn_layers(net))  # new statistics kept


def test_context_manager_restores_everything_on_exception():
    net = mixed_mode_net()
    before_flags, before_momenta, before_stats = flags(net), momenta(net), bn_state(net)
    with pytest.raises(RuntimeError, match="boom"), bn_calibration(net), torch.no_grad():
        net(torch.randn(4, 3, 8, 8))
        raise RuntimeError("boom")
    assert flags(net) == before_flags
    assert momenta(net) == before_momenta
    after = bn_state(net)
    for k, v in before_stats.items():
        assert torch.equal(after[k], v), k


def test_calibrate_bn_restores_modes_and_momentum():
    net = mixed_mode_net().eval()
    before_flags, before_momenta = flags(net), momenta(net)
    assert calibrate_bn(net, batches(8), num_batches=3) == 3
    assert flags(net) == before_flags and momenta(net) == before_momenta
    assert all(int(m.num_batches_tracked) == 3 for _, m in bn_layers(net))


def test_running_stats_equal_cumulative_average_of_data():
    torch.manual_seed(0)
    bn = nn.BatchNorm2d(3)
    model = nn.Sequential(bn).eval()
    g = torch.Generator().manual_seed(1)
    data = [torch.randn(b, 3, 5, 5, generator=g) * (i + 1) + i for i, b in enumerate([4, 7, 2, 9, 5])]
    calibrate_bn(model, iter(data), num_batches=200)
    # PyTorch BN with momentum None: plain average over batches of each batch's mean and unbiased variance
    means = torch.stack([x.mean(dim=(0, 2, 3)) for x in data])
    vars_ = torch.stack([x.transpose(0, 1).reshape(3, -1).var(dim=1, unbiased=True) for x in data])
    torch.testing.assert_close(bn.running_mean, means.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bn.running_var, vars_.mean(0), rtol=1e-5, atol=1e-5)
    assert int(bn.num_batches_tracked) == 5
    assert bn.momentum == 0.1 and not model.training


def test_equal_batches_give_the_data_mean():
    bn = nn.BatchNorm2d(2)
    x = torch.randn(40, 2, 3, 3)
    calibrate_bn(nn.Sequential(bn), [x[i : i + 8] for i in range(0, 40, 8)])
    torch.testing.assert_close(bn.running_mean, x.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-5)


def test_num_batches_limits_and_accepts_tuples():
    net = make_net()
    data = ((x, torch.zeros(8)) for x in batches(8, n=10))
    assert calibrate_bn(net, data, num_batches=4) == 4
    assert int(net.stem[1].num_batches_tracked) == 4


def test_empty_batches_is_an_error_and_keeps_stats():
    net = make_net()
    before = bn_state(net)
    with pytest.raises(ValueError, match="empty"):
        calibrate_bn(net, [], num_batches=5)
    after = bn_state(net)
    assert all(torch.equal(after[k], v) for k, v in before.items())


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_invalid_num_batches(n):
    with pytest.raises(ConfigError, match="integer >= 1"):
        calibrate_bn(make_net(), batches(8), num_batches=n)


def test_model_without_bn_is_a_clear_error():
    model = nn.Sequential(nn.Conv2d(3, 3, 3), nn.GroupNorm(1, 3))
    for call in (
        lambda: bn_calibration(model).__enter__(),
        lambda: calibrate_bn(model, batches(8)),
        lambda: calibrate_sizes(model, [8], lambda s: batches(s)),
        lambda: BNStatsCache().capture(model, 8),
    ):
        with pytest.raises(ConfigError, match="BatchNorm.*got 'Sequential'"):
            call()
    # BN without running statistics counts as none
    with pytest.raises(ConfigError, match="BatchNorm"):
        calibrate_bn(nn.Sequential(nn.BatchNorm2d(3, track_running_stats=False)), batches(8))


def test_sync_batchnorm_is_calibrated():
    net = nn.SyncBatchNorm.convert_sync_batchnorm(make_net())
    assert len(bn_layers(net)) == 3 and isinstance(bn_layers(net)[0][1], nn.SyncBatchNorm)
    assert calibrate_bn(net, batches(8), num_batches=2) == 2
    assert int(bn_layers(net)[0][1].num_batches_tracked) == 2


def test_all_reduce_callback_averages_running_stats():
    net = make_net()
    other = make_net()
    calibrate_bn(other, batches(8, seed=99), num_batches=4)
    local = make_net()
    calibrate_bn(local, batches(8), num_batches=4)
    other_flat = torch.cat(
        [t.reshape(-1) for _, m in bn_layers(other) for t in (m.running_mean, m.running_var)]
    )
    calls = []

    def fake_all_reduce(flat):  # a 2-rank average with `other` as the second rank
        calls.append(flat.numel())
        flat.add_(other_flat).div_(2)

    calibrate_bn(net, batches(8), num_batches=4, all_reduce=fake_all_reduce)
    assert calls == [other_flat.numel()]  # one collective for all layers
    for (_, m), (_, lo), (_, ot) in zip(bn_layers(net), bn_layers(local), bn_layers(other), strict=True):
        torch.testing.assert_close(m.running_mean, (lo.running_mean + ot.running_mean) / 2)
        torch.testing.assert_close(m.running_var, (lo.running_var + ot.running_var) / 2)


def _ddp_worker(rank, world, init_file, out_file):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        net = make_net()
        calibrate_bn(net, batches(8, seed=rank * 1000), num_batches=3)  # default: averages across ranks
        if rank == 0:
            torch.save(bn_state(net), out_file)
    finally:
        dist.destroy_process_group()


def test_distributed_average_across_two_gloo_ranks(tmp_path):
    out = tmp_path / "rank0.pt"
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    got = torch.load(out, weights_only=True)
    per_rank = []
    for rank in range(2):
        net = make_net()
        calibrate_bn(net, batches(8, seed=rank * 1000), num_batches=3)
        per_rank.append(bn_state(net))
    for k in got:
        if "running_mean" in k or "running_var" in k:
            torch.testing.assert_close(got[k], (per_rank[0][k] + per_rank[1][k]) / 2, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(per_rank[0]["stem.1.running_mean"], per_rank[1]["stem.1.running_mean"])


def test_cache_capture_apply_nearest_and_exact():
    net = make_net()
    cache = BNStatsCache()
    for size in (16, 32):
        calibrate_bn(net, batches(size), num_batches=2)
        cache.capture(net, size)
    s16, s32 = cache[16], cache[32]
    assert not torch.allclose(s16["stem.1.running_var"], s32["stem.1.running_var"])
    assert set(s16) == {
        f"{n}.{b}"
        for n in ("stem.1", "block.1", "head.2")
        for b in ("running_mean", "running_var", "num_batches_tracked")
    }
    assert cache.apply(net, 16) == 16
    assert torch.equal(net.stem[1].running_var, s16["stem.1.running_var"])
    assert cache.apply(net, 30) == 32
    assert torch.equal(net.stem[1].running_var, s32["stem.1.running_var"])
    assert cache.apply(net, 20) == 16
    assert cache.apply(net, 24) == 32  # tie goes to the larger size
    assert cache.apply(net, 8) == 16 and cache.apply(net, 100) == 32
    with pytest.raises(ConfigError, match=r"size: expected one of the calibrated sizes \[16, 32\], got 24"):
        cache.apply(net, 24, exact=True)
    assert cache.sizes == [16, 32] and 16 in cache and len(cache) == 2


def test_cache_is_a_copy_not_a_view():
    net = make_net()
    cache = BNStatsCache()
    cache.capture(net, 8)
    saved = cache[8]["stem.1.running_mean"].clone()
    calibrate_bn(net, batches(8), num_batches=1)
    assert torch.equal(cache[8]["stem.1.running_mean"], saved)


def test_cache_apply_rejects_other_architecture():
    cache = BNStatsCache()
    cache.capture(make_net(), 8)
    with pytest.raises(ConfigError, match="bn_cache"):
        cache.apply(nn.Sequential(nn.BatchNorm2d(4)), 8)
    with pytest.raises(ConfigError, match="empty"):
        BNStatsCache().apply(make_net(), 8)


def test_cache_roundtrips_through_torch_save_weights_only(tmp_path):
    net = make_net()
    cache = calibrate_sizes(net, [8, 12, 16], batches, num_batches=2)
    path = tmp_path / "ckpt.pt"
    torch.save({"model": net.state_dict(), "bn_cache": cache.state_dict()}, path)
    loaded = torch.load(path, weights_only=True)
    restored = BNStatsCache.from_state_dict(loaded["bn_cache"])
    assert restored.sizes == [8, 12, 16]
    fresh = make_net(seed=5)
    fresh.load_state_dict(loaded["model"])
    for size in restored.sizes:
        restored.apply(fresh, size, exact=True)
        for k, v in cache[size].items():
            assert torch.equal(fresh.state_dict()[k], v), (size, k)


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"format": "other"},
        {"format": "mixsize_ray.BNStatsCache", "version": 99},
        {"format": "mixsize_ray.BNStatsCache", "version": 1, "sizes": {8: {"a": 1}}},
        [1],
    ],
)
def test_from_state_dict_rejects_foreign_data(state):
    with pytest.raises(ValueError):
        BNStatsCache.from_state_dict(state)


def test_calibrate_sizes_matches_single_calibrations_and_restores_model():
    net = mixed_mode_net()
    before_stats, before_flags, before_momenta = bn_state(net), flags(net), momenta(net)
    seen = []
    cache = calibrate_sizes(net, [8, 16], batches, num_batches=3, progress=seen.append)
    assert seen == [8, 16] and cache.sizes == [8, 16]
    after = bn_state(net)
    assert all(torch.equal(after[k], v) for k, v in before_stats.items())
    assert flags(net) == before_flags and momenta(net) == before_momenta
    for size in (8, 16):
        single = make_net()
        calibrate_bn(single, batches(size), num_batches=3)
        for k, v in bn_state(single).items():
            torch.testing.assert_close(cache[size][k], v)


def test_calibrate_sizes_restores_model_on_error():
    net = make_net()
    before = bn_state(net)

    def data(size):
        if size == 16:
            raise OSError("disk gone")
        return batches(size)

    with pytest.raises(OSError):
        calibrate_sizes(net, [8, 16], data, num_batches=2)
    after = bn_state(net)
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_calibrate_sizes_together_equals_each_size_alone_bit_for_bit():
    """One pass over {S: batch} items gives every size exactly the statistics of calibrating it alone
    (a real ResNet: 19 BN layers, cumulative averages over 3 batches), and leaves the model as it was."""
    from mixsize_ray.models import build_model

    torch.manual_seed(0)
    net = build_model("resnet20", 10)
    for m in net.modules():  # statistics that are not the reset values, so "restored" means something
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    before, before_flags = bn_state(net), flags(net)
    base = [torch.rand(4, 3, 32, 32) for _ in range(4)]
    items = [{s: next(resize_batches([x], s)) for s in (16, 24, 32)} for x in base]
    together = calibrate_sizes_together(net, iter(items), num_batches=3)
    alone = calibrate_sizes(net, [16, 24, 32], lambda s: resize_batches(base, s), num_batches=3)
    assert together.sizes == alone.sizes == [16, 24, 32]
    for s in (16, 24, 32):
        assert all(torch.equal(together[s][k], alone[s][k]) for k in alone[s])
        assert int(together[s]["bn1.num_batches_tracked"]) == 3  # the 4th item was not read
    assert all(torch.equal(bn_state(net)[k], v) for k, v in before.items()) and flags(net) == before_flags


def test_calibrate_sizes_together_averages_each_size_and_refuses_nothing():
    net = make_net()
    items = [{8: x8, 16: x16} for x8, x16 in zip(batches(8), batches(16), strict=False)]
    plain = calibrate_sizes_together(net, items, num_batches=2)
    doubled = calibrate_sizes_together(net, items, num_batches=2, all_reduce=lambda t: t.mul_(2))
    for s in (8, 16):
        key = next(k for k in plain[s] if k.endswith("running_var"))
        torch.testing.assert_close(doubled[s][key], 2 * plain[s][key])
    before = bn_state(net)
    with pytest.raises(ValueError, match="empty"):
        calibrate_sizes_together(net, [], num_batches=2)
    assert all(torch.equal(bn_state(net)[k], v) for k, v in before.items())


@pytest.mark.parametrize("sizes", [[], [0], [8, -1], [8.5]])
def test_calibrate_sizes_invalid_sizes(sizes):
    with pytest.raises(ConfigError, match="--sizes"):
        calibrate_sizes(make_net(), sizes, batches)


def test_resize_batches_reuses_one_set_of_batches():
    base = [torch.rand(2, 3, 32, 32), (torch.rand(2, 3, 32, 32), torch.zeros(2))]
    out = list(resize_batches(base, 16))
    assert [tuple(x.shape) for x in out] == [(2, 3, 16, 16)] * 2
    assert list(resize_batches(base[:1], 32))[0] is base[0]


def test_use_size_and_size_aware_model(tmp_path):
    net = make_net()
    cache = calibrate_sizes(net, [8, 16], batches, num_batches=2)
    assert use_size(net, cache, 9) == 8
    torch.testing.assert_close(net.stem[1].running_mean, cache[8]["stem.1.running_mean"])

    wrapped = SizeAwareModel(make_net(), cache).eval()
    x16 = batches(16, n=1)[0]
    out = wrapped(x16)
    assert wrapped.current_size == 16
    reference = make_net()
    use_size(reference, cache, 16)
    torch.testing.assert_close(out, reference.eval()(x16))
    wrapped(batches(8, n=1)[0][:, :, :, :7])  # 8x7 -> size round(sqrt(56)) = 7 -> nearest 8
    assert wrapped.current_size == 8
    # the cache travels in the wrapper's state_dict
    path = tmp_path / "wrapped.pt"
    torch.save(wrapped.state_dict(), path)
    again = SizeAwareModel(make_net(seed=3), BNStatsCache())
    again.load_state_dict(torch.load(path, weights_only=True))
    assert again.cache.sizes == [8, 16]
    torch.testing.assert_close(again.eval()(x16), out)
    # exact mode refuses an uncalibrated size
    with pytest.raises(ConfigError, match="calibrated sizes"):
        SizeAwareModel(make_net(), cache, exact=True).eval()(batches(12, n=1)[0])
    # train mode does not touch the statistics
    trainer = SizeAwareModel(make_net(), cache).train()
    trainer(x16)
    assert trainer.current_size is None


def test_bn_stats_kept_restores_on_demand_at_exit_and_on_error():
    net = make_net()
    calibrate_bn(net, batches(16), num_batches=2)
    own = bn_state(net)
    with bn_stats_kept(net) as restore:
        calibrate_bn(net, batches(8), num_batches=2)
        at_8 = bn_state(net)
        assert not all(torch.equal(at_8[k], v) for k, v in own.items())
        restore()
        assert all(torch.equal(bn_state(net)[k], v) for k, v in own.items())
        calibrate_bn(net, batches(8), num_batches=2)
    assert all(torch.equal(bn_state(net)[k], v) for k, v in own.items())
    with pytest.raises(OSError), bn_stats_kept(net):
        calibrate_bn(net, batches(12), num_batches=1)
        raise OSError("disk gone")
    assert all(torch.equal(bn_state(net)[k], v) for k, v in own.items())
    with pytest.raises(ConfigError, match="BatchNorm"), bn_stats_kept(nn.Linear(2, 2)):
        pass


def test_small_shared_helpers():
    net = make_net()
    assert unwrap(nn.DataParallel(net)) is net and model_device(net) == torch.device("cpu")
    assert model_device(nn.ReLU()) == torch.device("cpu")
    assert check_num_batches(3) == 3
    for bad in (0, -1, 2.5, True, None):
        with pytest.raises(ConfigError, match="train.calibrate_batches: expected an integer >= 1"):
            check_num_batches(bad, "train.calibrate_batches")
