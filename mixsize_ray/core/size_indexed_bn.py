"""Per-size BN statistics inside the graph, for models exported with ``torch.export``.

:class:`~mixsize_ray.core.calibration.SizeAwareModel` switches BN statistics in Python before each forward,
which a traced graph cannot capture. :func:`size_indexed_model` instead returns an inference copy of a
model whose BatchNorm layers hold the statistics of every calibrated size stacked in buffers and pick
the row of the input's size (the nearest calibrated size, ties to the larger, as ``BNStatsCache.nearest``)
with tensor ops from the network's input, so ``torch.export`` with dynamic H and W keeps the switch.

Example:
    >>> from torch import nn
    >>> from mixsize_ray.core.calibration import calibrate_sizes
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    >>> cache = calibrate_sizes(net, [16, 32], lambda s: [torch.randn(4, 3, s, s)], num_batches=1)
    >>> m = size_indexed_model(net, cache)
    >>> m(torch.randn(2, 3, 30, 30)).shape
    torch.Size([2, 4, 28, 28])
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mixsize_ray.core.calibration import BNStatsCache, bn_layers
from mixsize_ray.errors import ConfigError


def nearest_index(sizes: Tensor, x: Tensor) -> Tensor:
    """Index ``[1]`` of the calibrated size nearest to the size of image batch ``x`` (``[N, C, H, W]``; size
    ``round(sqrt(H * W))``, = H when square); ties go to the larger size, as ``BNStatsCache.nearest``."""
    size = torch.round(torch.sqrt(sizes.new_ones(()) * (x.shape[-2] * x.shape[-1])))
    score = (sizes - size).abs() * 2 + (sizes < size).float()  # |s - size| twice, +1 when s < size
    return score.argmin().reshape(1)


class SizeIndexedBatchNorm(nn.Module):
    """Inference-only BatchNorm with one (mean, var) row per calibrated size; uses row ``self.index``
    (a ``[1]`` tensor set by :class:`SizeIndexedModel` from the network's input before each forward).

    Args:
        bn: the layer whose affine weight, bias and eps are kept.
        means, variances: ``[K, C]`` running statistics, row k for the k-th calibrated size.
    """

    def __init__(self, bn: _BatchNorm, means: Tensor, variances: Tensor):
        super().__init__()
        self.weight = bn.weight
        self.bias = bn.bias
        self.eps = float(bn.eps)
        self.register_buffer("means", means.detach().clone().float())
        self.register_buffer("variances", variances.detach().clone().float())
        self.index: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        if self.index is None:
            raise RuntimeError("SizeIndexedBatchNorm runs inside SizeIndexedModel, which sets its size index")
        mean = torch.index_select(self.means, 0, self.index).reshape(-1).to(x.dtype)
        var = torch.index_select(self.variances, 0, self.index).reshape(-1).to(x.dtype)
        return F.batch_norm(x, mean, var, self.weight, self.bias, False, 0.0, self.eps)


class SizeIndexedModel(nn.Module):
    """Inference wrapper: picks the calibrated size nearest to the input image's size and makes every
    :class:`SizeIndexedBatchNorm` inside use that size's statistics for this forward.

    Args:
        model: network whose BN layers were replaced by :class:`SizeIndexedBatchNorm`.
        sizes: calibrated sizes, ascending (``[K]``), matching the rows of every layer's statistics.
    """

    def __init__(self, model: nn.Module, sizes: list[int]):
        super().__init__()
        self.model = model
        self.register_buffer("sizes", torch.tensor(sizes, dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        k = nearest_index(self.sizes, x)
        layers = [m for m in self.model.modules() if isinstance(m, SizeIndexedBatchNorm)]
        for m in layers:
            m.index = k
        try:
            return self.model(x)
        finally:
            for m in layers:
                m.index = None


def size_indexed_model(model: nn.Module, cache: BNStatsCache) -> SizeIndexedModel:
    """A deep copy of ``model`` (eval mode) with every BN layer replaced by :class:`SizeIndexedBatchNorm`
    holding the statistics of all ``cache`` sizes, wrapped in :class:`SizeIndexedModel`. ``model`` itself is
    not changed."""
    if not len(cache):
        raise ConfigError("bn_cache", "at least one calibrated size", cache.sizes)
    out = copy.deepcopy(model).eval()
    sizes = cache.sizes
    for name, layer in bn_layers(out):
        try:
            means = torch.stack([cache[s][f"{name}.running_mean"] for s in sizes])
            variances = torch.stack([cache[s][f"{name}.running_var"] for s in sizes])
        except KeyError:
            raise ConfigError("bn_cache", "statistics for every BN layer of the model", name) from None
        parent_name, _, child = name.rpartition(".")
        parent = out.get_submodule(parent_name) if parent_name else out
        setattr(parent, child, SizeIndexedBatchNorm(layer, means, variances))
    return SizeIndexedModel(out, sizes).eval()
