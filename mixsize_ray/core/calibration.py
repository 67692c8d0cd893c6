"""BatchNorm calibration per image size, and a per-size cache of BN statistics.

A network trained at mixed sizes has one set of BN running statistics, an exponential average over the
sizes it saw last. Activation statistics depend on the image size, so at a size it was not trained on (or
trained on rarely) those statistics are off. Calibration (Hoffer et al., 2019, sec. 5) re-estimates them:

    reset running stats; momentum = None (cumulative average); model.train();
    forward N batches of training images at size S under no_grad; restore momentum and modes.

With ``momentum=None`` PyTorch's BN keeps the plain average over batches of each batch's mean and of each
batch's unbiased variance (every batch weighs the same, whatever its size).

* :func:`bn_calibration` — the context manager that prepares the model and restores it (nothing leaks on
  error: momentum, every module's train/eval flag, and on an exception the running statistics too).
* :func:`bn_stats_kept` — the context manager that gives the model back its own BN statistics (on exit, or
  earlier through the ``restore`` it yields): what a sweep over sizes wraps around its calibrations.
* :func:`calibrate_bn` — calibrate at one size (averages statistics across ranks under torch.distributed).
* :class:`BNStatsCache` — ``{size: {buffer_name: tensor}}``; capture, apply (exact or nearest), save/load.
* :func:`calibrate_sizes` — every size of a sweep in one call; leaves the model's own statistics as they were.
* :func:`calibrate_sizes_together` — the same in one pass over the data (``{S: batch}`` per item).
* :func:`use_size` / :class:`SizeAwareModel` — switch statistics by input size at inference.
* :func:`resize_batches` — reuse one set of loaded batches for every size (CIFAR-style: resize to S).
* :func:`unwrap`, :func:`model_device`, :func:`check_num_batches` — the small helpers the evaluation shares.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mixsize_ray.errors import ConfigError

__all__ = [
    "bn_layers",
    "bn_calibration",
    "bn_stats_kept",
    "check_num_batches",
    "model_device",
    "unwrap",
    "calibrate_bn",
    "BNStatsCache",
    "calibrate_sizes",
    "calibrate_sizes_together",
    "use_size",
    "SizeAwareModel",
    "resize_batches",
]

_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")
CACHE_FORMAT = "mixsize_ray.BNStatsCache"
CACHE_VERSION = 1


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside DistributedDataParallel / DataParallel (DDP would re-broadcast rank 0's
    buffers) and ``torch.compile`` wrappers.

    Example:
        >>> net = nn.BatchNorm2d(3)
        >>> unwrap(nn.DataParallel(net)) is net, unwrap(net) is net
        (True, True)
    """
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
        else:
            return model


def bn_layers(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    """``(qualified_name, layer)`` of every BatchNorm layer (1d/2d/3d, SyncBatchNorm, subclasses) that keeps
    running statistics (``track_running_stats=True``), in ``named_modules`` order."""
    return [
        (name, m)
        for name, m in unwrap(model).named_modules()
        if isinstance(m, _BatchNorm) and m.track_running_stats and m.running_mean is not None
    ]


def _require_bn(model: nn.Module) -> list[tuple[str, _BatchNorm]]:
    layers = bn_layers(model)
    if not layers:
        raise ConfigError(
            "model",
            "a model with BatchNorm layers that track running statistics (BN calibration has nothing to calibrate)",
            type(unwrap(model)).__name__,
        )
    return layers


def _snapshot(layers: Sequence[tuple[str, _BatchNorm]]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for name, m in layers:
        for b in _BUFFERS:
            t = getattr(m, b, None)
            if t is not None:
                out[f"{name}.{b}" if name else b] = t.detach().clone()
    return out


def _restore(layers: Sequence[tuple[str, _BatchNorm]], snap: dict[str, Tensor]) -> None:
    with torch.no_grad():
        for name, m in layers:
            for b in _BUFFERS:
                key = f"{name}.{b}" if name else b
                t = getattr(m, b, None)
                if t is not None and key in snap:
                    t.copy_(snap[key])


@contextlib.contextmanager
def bn_calibration(model: nn.Module) -> Iterator[list[tuple[str, _BatchNorm]]]:
    """Prepare ``model`` for BN calibration; restore it on exit.

    On entry, for every BN layer with running statistics: save momentum, reset running stats, set
    ``momentum=None`` (cumulative average); then ``model.train()``. On exit (normal or exception) every BN
    layer's momentum and EVERY module's ``training`` flag are restored exactly as they were. On an exception
    the running statistics are restored too; on a normal exit the new statistics stay.

    Yields the list of ``(name, layer)`` BN layers. Raises :class:`ConfigError` if there are none.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)).eval()
        >>> with bn_calibration(model), torch.no_grad():
        ...     _ = model(torch.randn(8, 3, 16, 16))
        >>> model.training, model[1].momentum, int(model[1].num_batches_tracked)
        (False, 0.1, 1)
    """
    model = unwrap(model)
    layers = _require_bn(model)
    modes = [(m, m.training) for m in model.modules()]
    momenta = [(m, m.momentum) for _, m in layers]
    saved = _snapshot(layers)
    ok = False
    try:
        for _, m in layers:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        yield layers
        ok = True
    finally:
        if not ok:
            _restore(layers, saved)
        for m, momentum in momenta:
            m.momentum = momentum
        for m, training in modes:
            m.training = training


@contextlib.contextmanager
def bn_stats_kept(model: nn.Module) -> Iterator[Callable[[], None]]:
    """Keep the model's own BN running statistics across a block that changes them (calibrations, cached
    statistics loaded for one size).

    Yields ``restore()``, which puts the statistics saved on entry back at once (e.g. after each size of a
    sweep); on exit, normal or not, they are put back too. Raises :class:`ConfigError` on entry if the model
    has no BN layer with running statistics.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        >>> with bn_stats_kept(model) as restore:
        ...     _ = calibrate_bn(model, [torch.randn(8, 3, 16, 16)], num_batches=1)
        ...     changed = float(model[1].running_var.sum()) != 4.0
        ...     restore()
        ...     back = float(model[1].running_var.sum()) == 4.0
        >>> changed, back
        (True, True)
    """
    layers = _require_bn(model)
    saved = _snapshot(layers)
    try:
        yield lambda: _restore(layers, saved)
    finally:
        _restore(layers, saved)


def _default_all_reduce() -> Callable[[Tensor], None] | None:
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    world = dist.get_world_size()

    def average(t: Tensor) -> None:  # SUM / world works on every backend (gloo has no AVG)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(world)

    return average


def _average_stats(layers: Sequence[tuple[str, _BatchNorm]], all_reduce: Callable[[Tensor], Any]) -> None:
    """Average running_mean/running_var across ranks with ONE collective per dtype (flattened)."""
    tensors = [t for _, m in layers for t in (m.running_mean, m.running_var) if t is not None]
    by_key: dict[tuple[torch.dtype, torch.device], list[Tensor]] = {}
    for t in tensors:
        by_key.setdefault((t.dtype, t.device), []).append(t)
    with torch.no_grad():
        for group in by_key.values():
            flat = torch.cat([t.reshape(-1) for t in group])
            out = all_reduce(flat)
            if isinstance(out, Tensor):
                flat = out
            offset = 0
            for t in group:
                t.copy_(flat[offset : offset + t.numel()].view_as(t))
                offset += t.numel()


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a model with neither).

    Example:
        >>> model_device(nn.Linear(2, 2)), model_device(nn.ReLU())
        (device(type='cpu'), device(type='cpu'))
    """
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device("cpu")


def check_num_batches(num_batches: Any, field: str = "--calibrate-batches") -> int:
    """``num_batches`` if it is an int >= 1, else :class:`ConfigError` naming ``field``.

    Example:
        >>> check_num_batches(200)
        200
        >>> check_num_batches(0, "train.calibrate_batches")
        Traceback (most recent call last):
        ...
        mixsize_ray.errors.ConfigError: train.calibrate_batches: expected an integer >= 1, got 0
    """
    if isinstance(num_batches, bool) or not isinstance(num_batches, int) or num_batches < 1:
        raise ConfigError(field, "an integer >= 1", num_batches)
    return num_batches


def calibrate_bn(
    model: nn.Module,
    batches: Iterable[Tensor | Sequence[Any]],
    num_batches: int = 200,
    device: torch.device | str | None = None,
    all_reduce: Callable[[Tensor], Any] | None = None,
) -> int:
    """Re-estimate every BN layer's running statistics from ``batches``; return the number of batches used.

    Args:
        model: the network (a DDP/DataParallel wrapper is unwrapped: its buffer broadcast would overwrite
            other ranks' statistics mid-calibration).
        batches: iterable of ``[B, C, S, S]`` image tensors, or of ``(images, targets, ...)`` tuples (the
            first element is used) — typically training images with training augmentation at size S.
        num_batches: at most this many batches are forwarded (default 200, the official code's value).
        device: where to move each batch; default the model's device.
        all_reduce: ``fn(tensor)`` that averages a tensor across ranks in place (or returns the average).
            Default: with torch.distributed initialised and world size > 1, ``all_reduce(SUM) / world``;
            otherwise no averaging. Every rank must call this function (it is collective).

    Raises:
        ConfigError: the model has no BN layers; ``num_batches`` < 1.
        ValueError: ``batches`` yielded nothing (the model's statistics are then left as they were).

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        >>> calibrate_bn(model, (torch.randn(8, 3, 24, 24) for _ in range(5)), num_batches=3)
        3
    """
    num_batches = check_num_batches(num_batches, "num_batches")
    model = unwrap(model)
    dev = torch.device(device) if device is not None else model_device(model)
    if all_reduce is None:
        all_reduce = _default_all_reduce()
    used = 0
    with bn_calibration(model) as layers, torch.no_grad():
        for batch in itertools.islice(batches, num_batches):
            x = batch if isinstance(batch, Tensor) else batch[0]
            model(x.to(dev, non_blocking=True))
            used += 1
        if used == 0:
            raise ValueError("calibrate_bn: the calibration batches are empty (no batch was yielded)")
    if all_reduce is not None:
        _average_stats(layers, all_reduce)
    return used


class BNStatsCache:
    """Per-size BN statistics: ``{size: {buffer_name: tensor}}`` with the running_mean, running_var and
    num_batches_tracked of every BN layer (names as in the model's ``state_dict``).

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        >>> cache = BNStatsCache()
        >>> for s in (16, 32):
        ...     _ = calibrate_bn(model, [torch.randn(4, 3, s, s)], num_batches=1)
        ...     cache.capture(model, s)
        >>> cache.sizes, cache.apply(model, 20), cache.nearest(28)
        ([16, 32], 16, 32)
    """

    def __init__(self, stats: dict[int, dict[str, Tensor]] | None = None):
        self._stats: dict[int, dict[str, Tensor]] = {}
        for size, buffers in (stats or {}).items():
            self._stats[self._check_size(size)] = dict(buffers)

    @staticmethod
    def _check_size(size: Any) -> int:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError("size", "an integer >= 1", size)
        return int(size)

    @property
    def sizes(self) -> list[int]:
        """Cached sizes, ascending."""
        return sorted(self._stats)

    def __len__(self) -> int:
        return len(self._stats)

    def __contains__(self, size: object) -> bool:
        return size in self._stats

    def __getitem__(self, size: int) -> dict[str, Tensor]:
        return self._stats[size]

    def __repr__(self) -> str:
        return f"BNStatsCache(sizes={self.sizes})"

    def capture(self, model: nn.Module, size: int) -> None:
        """Store (a copy of) the model's current BN buffers under ``size``, replacing any earlier entry."""
        size = self._check_size(size)
        self._stats[size] = _snapshot(_require_bn(model))

    def nearest(self, size: int) -> int:
        """The cached size closest to ``size`` (ties go to the larger size)."""
        if not self._stats:
            raise KeyError("BNStatsCache is empty: calibrate some sizes first")
        return min(self._stats, key=lambda s: (abs(s - size), -s))

    def apply(self, model: nn.Module, size: int, exact: bool = False) -> int:
        """Copy the statistics of ``size`` (or of the nearest cached size) into ``model``; return the size used.

        Raises:
            ConfigError: ``exact=True`` and ``size`` is not cached (the message lists the cached sizes), or
                the cache's buffers do not match the model's BN layers.
        """
        if exact and size not in self._stats:
            raise ConfigError("size", f"one of the calibrated sizes {self.sizes}", size)
        if not self._stats:
            raise ConfigError("size", "a calibrated size, but the BN statistics cache is empty", size)
        used = size if size in self._stats else self.nearest(size)
        layers = _require_bn(model)
        stats = self._stats[used]
        expected = set(_snapshot_keys(layers))
        if expected != set(stats):
            missing = sorted(expected - set(stats))[:3]
            extra = sorted(set(stats) - expected)[:3]
            raise ConfigError(
                "bn_cache",
                "statistics for exactly this model's BN layers",
                f"missing {missing}, unexpected {extra}",
            )
        _restore(layers, stats)
        return used

    def state_dict(self) -> dict[str, Any]:
        """Plain, CPU-only ``{"format", "version", "sizes": {int: {name: tensor}}}``; loads with
        ``torch.load(..., weights_only=True)``."""
        return {
            "format": CACHE_FORMAT,
            "version": CACHE_VERSION,
            "sizes": {
                int(s): {k: v.detach().cpu().clone() for k, v in b.items()} for s, b in self._stats.items()
            },
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> BNStatsCache:
        """Inverse of :meth:`state_dict`. Raises ValueError on anything else."""
        if not isinstance(state, dict) or state.get("format") != CACHE_FORMAT:
            got = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"not a {CACHE_FORMAT} state dict (format={got!r})")
        if state.get("version") != CACHE_VERSION:
            raise ValueError(
                f"{CACHE_FORMAT}: unsupported version {state.get('version')!r} (expected {CACHE_VERSION})"
            )
        sizes = state.get("sizes")
        if not isinstance(sizes, dict) or not all(
            isinstance(b, dict) and all(isinstance(t, Tensor) for t in b.values()) for b in sizes.values()
        ):
            raise ValueError(f"{CACHE_FORMAT}: 'sizes' must map size -> {{buffer name: tensor}}")
        return cls({int(s): dict(b) for s, b in sizes.items()})

    def to(self, device: torch.device | str) -> BNStatsCache:
        """Move every cached tensor to ``device`` (in place); returns self."""
        self._stats = {s: {k: v.to(device) for k, v in b.items()} for s, b in self._stats.items()}
        return self


def _snapshot_keys(layers: Sequence[tuple[str, _BatchNorm]]) -> list[str]:
    return [
        f"{name}.{b}" if name else b
        for name, m in layers
        for b in _BUFFERS
        if getattr(m, b, None) is not None
    ]


def _check_sizes(sizes: Iterable[Any], field: str = "--sizes") -> list[int]:
    sizes = list(sizes)
    if not sizes:
        raise ConfigError(field, "at least one size", sizes)
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise ConfigError(field, "integer sizes >= 1", sizes)
    return sizes


def calibrate_sizes(
    model: nn.Module,
    sizes: Iterable[int],
    batches_for_size: Callable[[int], Iterable[Tensor | Sequence[Any]]],
    num_batches: int = 200,
    cache: BNStatsCache | None = None,
    progress: bool | Callable[[int], Any] | None = None,
    device: torch.device | str | None = None,
    all_reduce: Callable[[Tensor], Any] | None = None,
) -> BNStatsCache:
    """Calibrate BN at every size in ``sizes`` and return the per-size cache.

    The model's own BN statistics (and modes, momenta) are the same afterwards as before, also on error.

    Args:
        model: network with BN layers.
        sizes: image sizes (ints >= 1).
        batches_for_size: ``fn(size) -> iterable of [B, C, size, size] batches`` (or ``(x, y)`` tuples). To
            load data once for all sizes, materialise base batches and return ``resize_batches(base, size)``.
        num_batches: batches per size (default 200).
        cache: add to this cache (returned) instead of a new one.
        progress: True for a tqdm bar over sizes, or ``fn(size)`` called after each size.
        device, all_reduce: as in :func:`calibrate_bn`.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        >>> base = [torch.rand(8, 3, 32, 32) for _ in range(2)]
        >>> calibrate_sizes(model, [16, 32], lambda s: resize_batches(base, s), num_batches=2)
        BNStatsCache(sizes=[16, 32])
    """
    sizes = _check_sizes(sizes)
    num_batches = check_num_batches(num_batches)
    model = unwrap(model)
    cache = cache if cache is not None else BNStatsCache()
    from tqdm.auto import tqdm

    with bn_stats_kept(model), tqdm(sizes, desc="BN calibration", unit="size", disable=progress is not True) as bar:
        for size in bar:
            bar.set_postfix(size=size)
            calibrate_bn(model, batches_for_size(size), num_batches, device=device, all_reduce=all_reduce)
            cache.capture(model, size)
            if callable(progress):
                progress(size)
    return cache


def calibrate_sizes_together(
    model: nn.Module,
    batches: Iterable[Mapping[int, Tensor]],
    num_batches: int = 200,
    cache: BNStatsCache | None = None,
    device: torch.device | str | None = None,
    all_reduce: Callable[[Tensor], Any] | None = None,
) -> BNStatsCache:
    """:func:`calibrate_sizes` in ONE pass over the data: each item of ``batches`` maps every size to its
    batch ``{S: [B, C, S, S]}``; for each item, every size's BN state is put in, its batch forwarded and
    the state taken out again. The statistics of each size are those :func:`calibrate_bn` gives on that
    size's batches alone, bit for bit (same batches, same order, same cumulative average); what the single
    pass saves is reading, decoding and augmenting the images once per size (ImageNet-style data, where a
    13-size sweep would otherwise decode every calibration image 13 times).

    The model's own BN statistics, momenta and modes are the same afterwards as before, also on error.
    Raises ``ValueError`` when ``batches`` yields nothing, :class:`ConfigError` as :func:`calibrate_bn`.

    Example:
        >>> model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        >>> base = [torch.rand(8, 3, 32, 32) for _ in range(2)]
        >>> together = calibrate_sizes_together(model, [{16: next(resize_batches([x], 16)), 32: x} for x in base], 2)
        >>> alone = calibrate_sizes(model, [16, 32], lambda s: resize_batches(base, s), num_batches=2)
        >>> all(torch.equal(together[s][k], alone[s][k]) for s in (16, 32) for k in alone[s])
        True
    """
    num_batches = check_num_batches(num_batches)
    model = unwrap(model)
    cache = cache if cache is not None else BNStatsCache()
    dev = torch.device(device) if device is not None else model_device(model)
    if all_reduce is None:
        all_reduce = _default_all_reduce()
    with bn_stats_kept(model), bn_calibration(model) as layers, torch.no_grad():
        fresh = _snapshot(layers)  # reset statistics, nothing averaged yet
        states: dict[int, dict[str, Tensor]] = {}
        for item in itertools.islice(batches, num_batches):
            for size, x in item.items():
                _restore(layers, states.get(size, fresh))
                model(x.to(dev, non_blocking=True))
                states[size] = _snapshot(layers)
        if not states:
            raise ValueError("calibrate_sizes_together: the calibration batches are empty (no batch was yielded)")
        for size in sorted(states):
            _restore(layers, states[size])
            if all_reduce is not None:
                _average_stats(layers, all_reduce)
            cache.capture(model, BNStatsCache._check_size(size))
    return cache


def use_size(model: nn.Module, cache: BNStatsCache, size: int, exact: bool = False) -> int:
    """Load the cached BN statistics for ``size`` (nearest cached size unless ``exact``) into ``model``.
    Returns the size whose statistics are now in the model."""
    return cache.apply(unwrap(model), size, exact=exact)


class SizeAwareModel(nn.Module):
    """Wraps a model and a :class:`BNStatsCache`; in eval mode, each forward first loads the BN statistics of
    the input's size (nearest cached, or exact) if they are not loaded already. In train mode it is the plain
    model (training updates the model's own statistics; the cache is not touched).

    The size of a ``[N, C, H, W]`` input is ``H`` when square, else ``round(sqrt(H * W))``.
    The cache is saved in this module's ``state_dict`` (under ``_extra_state``) and restored by
    ``load_state_dict``.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
        >>> cache = calibrate_sizes(net, [16, 32], lambda s: [torch.randn(4, 3, s, s)], num_batches=1)
        >>> m = SizeAwareModel(net, cache).eval()
        >>> _ = m(torch.randn(2, 3, 30, 30)); m.current_size
        32
    """

    def __init__(self, model: nn.Module, cache: BNStatsCache, exact: bool = False):
        super().__init__()
        self.model = model
        self.cache = cache
        self.exact = exact
        self.current_size: int | None = None

    def forward(self, x: Tensor, *args: Any, **kwargs: Any) -> Any:
        if not self.training and len(self.cache):
            h, w = int(x.shape[-2]), int(x.shape[-1])
            size = h if h == w else round(math.sqrt(h * w))
            want = size if (self.exact or size in self.cache) else self.cache.nearest(size)
            if want != self.current_size:
                self.current_size = use_size(self.model, self.cache, want, exact=self.exact)
        return self.model(x, *args, **kwargs)

    def train(self, mode: bool = True) -> SizeAwareModel:
        super().train(mode)
        if mode:
            self.current_size = None  # training changes the statistics; reload on the next eval forward
        return self

    def get_extra_state(self) -> dict[str, Any]:
        return self.cache.state_dict()

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.cache = BNStatsCache.from_state_dict(state)
        self.current_size = None


def resize_batches(
    batches: Iterable[Tensor | Sequence[Any]], size: int, mode: str = "bilinear", antialias: bool = True
) -> Iterator[Tensor]:
    """Yield each batch's images resized to ``size`` x ``size`` (``F.interpolate``; antialiased bilinear).

    Lets one set of loaded batches (e.g. ``list(itertools.islice(train_loader, 200))`` at the base size)
    serve every size of a sweep: the CIFAR-style protocol (augment at 32 then resize to S) exactly, an
    approximation of ImageNet-style RandomResizedCrop(S).
    """
    size = BNStatsCache._check_size(size)
    for batch in batches:
        x = batch if isinstance(batch, Tensor) else batch[0]
        if x.shape[-2:] == (size, size):
            yield x
        else:
            kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
            yield F.interpolate(
                x.float() if not x.is_floating_point() else x,
                size=(size, size),
                mode=mode,
                antialias=antialias and mode in ("bilinear", "bicubic"),
                **kwargs,
            )
