"""Per-size BN statistics selected in-graph: same outputs as SizeAwareModel, and kept by torch.export."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mixsize_ray.core.calibration import BNStatsCache, SizeAwareModel, calibrate_sizes
from mixsize_ray.core.size_indexed_bn import SizeIndexedBatchNorm, size_indexed_model
from mixsize_ray.errors import ConfigError
from mixsize_ray.models import build_model

SIZES = [16, 32, 48]


@pytest.fixture(scope="module")
def net_and_cache():
    torch.manual_seed(0)
    net = build_model("resnet20", 10)
    # statistics that differ strongly by size, so using the wrong size's shows in the logits
    cache = calibrate_sizes(net, SIZES, lambda s: [torch.randn(8, 3, s, s) * (s / 16) + s / 32], num_batches=1)
    return net.eval(), cache


@pytest.mark.parametrize("hw", [(16, 16), (24, 24), (40, 40), (48, 48), (64, 64), (8, 8), (24, 40)])
def test_matches_size_aware_model(net_and_cache, hw):
    net, cache = net_and_cache
    ref = SizeAwareModel(copy.deepcopy(net), cache).eval()
    m = size_indexed_model(net, cache)
    x = torch.randn(3, 3, *hw)
    with torch.no_grad():
        assert torch.allclose(m(x), ref(x), atol=1e-5), (hw, ref.current_size)


def test_ties_go_to_the_larger_size():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))
    cache = calibrate_sizes(net, [16, 32], lambda s: [torch.randn(4, 3, s, s) * s], num_batches=1)
    m = size_indexed_model(net, cache)
    x = torch.randn(2, 3, 24, 24)
    assert cache.nearest(24) == 32
    cache.apply(net, 32)
    with torch.no_grad():
        assert torch.allclose(m(x), net.eval()(x), atol=1e-5)


def test_original_model_is_untouched_and_layers_replaced(net_and_cache):
    net, cache = net_and_cache
    before = {k: v.clone() for k, v in net.state_dict().items()}
    m = size_indexed_model(net, cache)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    layers = [x for x in m.modules() if isinstance(x, SizeIndexedBatchNorm)]
    assert layers and not any(isinstance(x, nn.BatchNorm2d) for x in m.modules())
    assert layers[0].means.shape[0] == len(SIZES)


def test_wrong_size_statistics_change_the_output(net_and_cache):
    net, cache = net_and_cache
    m = size_indexed_model(net, cache)
    x = torch.randn(2, 3, 16, 16)
    plain = copy.deepcopy(net)
    cache.apply(plain, 48)
    with torch.no_grad():
        assert not torch.allclose(m(x), plain.eval()(x), atol=1e-3)


def test_export_keeps_the_switch(net_and_cache):
    net, cache = net_and_cache
    m = size_indexed_model(net, cache)
    dim = torch.export.Dim.AUTO
    ep = torch.export.export(m, (torch.randn(2, 3, 32, 32),), dynamic_shapes=({0: dim, 2: dim, 3: dim},))
    g = ep.module()
    for s in (16, 24, 48):
        x = torch.randn(3, 3, s, s)
        with torch.no_grad():
            assert torch.allclose(g(x), m(x), atol=1e-5), s


def test_empty_cache_is_refused():
    with pytest.raises(ConfigError, match="bn_cache"):
        size_indexed_model(nn.Sequential(nn.BatchNorm2d(3)), BNStatsCache())
