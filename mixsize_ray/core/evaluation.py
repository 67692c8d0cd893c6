"""Size sweep: accuracy of one model at many image sizes, with and without BN calibration, and its cost.

* :func:`parse_sizes` / :func:`default_sizes` — which sizes (``"16,24,32"``, ``"16:64:4"``, a list; the
  paper's defaults).
* :func:`gflops_per_image` — GFLOPs of one forward of one image at size S, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2 FLOPs; convolutions, matmuls and the
  like are counted, elementwise ops such as BN and ReLU are not).
* :func:`evaluate_top_k` — top-1/top-5 accuracy over an iterable of batches.
* :class:`SweepPlan` — what a sweep measures: sizes, calibration data and batches, which metrics (raw,
  calibrated, FLOPs).
* :func:`size_sweep` ``(model, plan, eval_batches)`` -> :class:`SweepResult` — the plan's metrics per size;
  ``to_dict``/``to_json`` and a PNG ``plot``.

Accuracies are FRACTIONS in [0, 1] everywhere (not percent).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixsize_ray.core.calibration import (
    BNStatsCache,
    bn_stats_kept,
    calibrate_bn,
    check_num_batches,
    model_device,
    unwrap,
)
from mixsize_ray.errors import ConfigError

__all__ = [
    "parse_sizes",
    "default_sizes",
    "gflops_per_image",
    "evaluate_top_k",
    "size_sweep",
    "SweepPlan",
    "SizeResult",
    "SweepResult",
    "SWEEP_SCHEMA",
]

SWEEP_SCHEMA = "mixsize_ray.size_sweep/1"
_RANGE = re.compile(r"^\s*(-?\d+)\s*:\s*(-?\d+)\s*:\s*(-?\d+)\s*$")


def parse_sizes(spec: str | int | Sequence[int], min_size: int = 1, field: str = "--sizes") -> list[int]:
    """Parse a size list: ``"16,24,32"``, ``"A:B:STEP"`` (B inclusive), a single ``"32"``, an int or a list.

    Returns the distinct sizes in ascending order. Every size must be an integer >= ``min_size`` (>= 1).

    Raises:
        ConfigError: naming ``field`` (default ``--sizes``), the allowed form or minimum, and the input.

    Example:
        >>> parse_sizes("16:32:8"), parse_sizes("32, 16,24"), parse_sizes([40])
        ([16, 24, 32], [16, 24, 32], [40])
    """
    form = "sizes as 'S1,S2,...' or 'A:B:STEP' (A <= B, STEP > 0) or a list of integers"
    if isinstance(spec, bool):
        raise ConfigError(field, form, spec)
    if isinstance(spec, int):
        sizes = [spec]
    elif isinstance(spec, str):
        text = spec.strip()
        m = _RANGE.match(text)
        if m:
            a, b, step = (int(g) for g in m.groups())
            if step <= 0 or a > b:
                raise ConfigError(field, form, spec)
            sizes = list(range(a, b + 1, step))
        elif ":" in text or not text:
            raise ConfigError(field, form, spec)
        else:
            parts = [p.strip() for p in text.split(",")]
            if any(not re.fullmatch(r"[+-]?\d+", p) for p in parts):
                raise ConfigError(field, form, spec)
            sizes = [int(p) for p in parts]
    elif isinstance(spec, Sequence):
        if any(isinstance(s, bool) or not isinstance(s, int) for s in spec) or not spec:
            raise ConfigError(field, form, spec)
        sizes = list(spec)
    else:
        raise ConfigError(field, form, spec)
    low = max(int(min_size), 1)
    bad = [s for s in sizes if s < low]
    if bad:
        what = "sizes > 0" if low == 1 else f"sizes >= {low} (the model's minimum size)"
        raise ConfigError(field, what, spec)
    return sorted(set(sizes))


def default_sizes(style: str, base_size: int) -> list[int]:
    """The paper's sweep around the base size S0.

    * ``"imagenet"``: S0 + 32*m for m = -6..6, dropping sizes <= 0 (S0=224: 32..416).
    * ``"cifar"``: S0/2 .. 2*S0 in steps of S0/8 (S0=32: 16, 20, ..., 64).

    Example:
        >>> default_sizes("cifar", 32)[:3], len(default_sizes("imagenet", 224)), default_sizes("imagenet", 128)[0]
        ([16, 20, 24], 13, 32)
    """
    if style not in ("cifar", "imagenet"):
        raise ConfigError("eval.style", "cifar | imagenet", style)
    if isinstance(base_size, bool) or not isinstance(base_size, int) or base_size < 1:
        raise ConfigError("base_size", "an integer >= 1", base_size)
    if style == "imagenet":
        return [base_size + 32 * m for m in range(-6, 7) if base_size + 32 * m > 0]
    step = max(1, base_size // 8)
    return list(range(max(1, base_size // 2), 2 * base_size + 1, step))


_FLOPS_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, int], int]] = weakref.WeakKeyDictionary()


def gflops_per_image(model: nn.Module, size: int, channels: int = 3, cache: bool = True) -> float:
    """GFLOPs (1e9 FLOPs, multiply-add = 2) of one eval-mode forward of ONE ``[1, channels, size, size]`` image.

    Counted with ``torch.utils.flop_counter.FlopCounterMode`` under ``no_grad`` on the model's device; the
    model's train/eval flags are restored. Results are cached per (model, size, channels) unless
    ``cache=False``.

    Example:
        >>> conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        >>> gflops_per_image(conv, 32) * 1e9 == 2 * 3 * 8 * 9 * 32 * 32
        True
    """
    from torch.utils.flop_counter import FlopCounterMode

    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ConfigError("size", "an integer >= 1", size)
    model = unwrap(model)
    per_model = _FLOPS_CACHE.setdefault(model, {}) if cache else {}
    key = (size, channels)
    if key not in per_model:
        modes = [(m, m.training) for m in model.modules()]
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        x = torch.zeros(1, channels, size, size, device=model_device(model), dtype=dtype)
        try:
            model.eval()
            counter = FlopCounterMode(display=False)
            with torch.no_grad(), counter:
                model(x)
        finally:
            for m, training in modes:
                m.training = training
        per_model[key] = int(counter.get_total_flops())
    return per_model[key] / 1e9


def sum_across_ranks() -> Callable[[Tensor], Tensor] | None:
    """``fn(tensor)`` summing a tensor over the ranks in place (``all_reduce(SUM)``) when torch.distributed
    is initialised with more than one rank, else None: what a sharded evaluation passes as ``sum_ranks``.
    Every rank must then evaluate (the sum is collective).

    Example:
        >>> sum_across_ranks() is None  # not distributed
        True
    """
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None

    def total(t: Tensor) -> Tensor:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    return total


class TopKCounts:
    """Running top-k hits, summed cross-entropy and image count of a classifier's logits, kept on the device
    as one float64 tensor ``[len(ks) + 2]`` (hits per k, loss sum, n): no host sync until :meth:`result`,
    and one collective sums a rank's counts with the others'.

    Example:
        >>> c = TopKCounts((1, 2))
        >>> c.add(torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]]), torch.tensor([0, 1]))
        >>> r = c.result()
        >>> r["top1"], r["top2"], r["n"]
        (0.5, 1.0, 2)
    """

    def __init__(self, ks: Sequence[int] = (1, 5), device: torch.device | str = "cpu") -> None:
        ks = tuple(ks)
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise ConfigError("ks", "positive integers", ks)
        self.ks = ks
        self.sums = torch.zeros(len(ks) + 2, dtype=torch.float64, device=device)

    def add(self, logits: Tensor, targets: Tensor) -> None:
        """Count one batch: ``logits [B, K]`` (any float dtype), ``targets [B]`` int64 on the same device."""
        logits = logits.float()
        k_max = min(max(self.ks), logits.shape[1])
        top = logits.topk(k_max, dim=1).indices  # [B, k_max]
        cum = top.eq(targets.view(-1, 1)).cumsum(dim=1).clamp_(max=1)  # cum[:, j] = target within the top j+1
        for i, k in enumerate(self.ks):
            self.sums[i] += cum[:, min(k, k_max) - 1].sum()
        self.sums[-2] += F.cross_entropy(logits, targets, reduction="sum").double()
        self.sums[-1] += targets.shape[0]

    def result(self) -> dict[str, Any]:
        """``{"top{k}": fraction, ..., "loss": mean cross-entropy, "n": images}`` (one host sync)."""
        n = int(self.sums[-1])
        if n == 0:
            raise ValueError("evaluate_top_k: the evaluation batches are empty")
        values = (self.sums[: len(self.ks)] / n).tolist()
        out: dict[str, Any] = {f"top{k}": v for k, v in zip(self.ks, values, strict=True)}
        out["loss"] = float(self.sums[-2]) / n
        out["n"] = n
        return out


def _sum_counts(counts: Sequence[TopKCounts], sum_ranks: Callable[[Tensor], Any] | None) -> None:
    """Sum every counter over the ranks with ONE collective (no-op without ``sum_ranks``)."""
    if sum_ranks is None or not counts:
        return
    flat = torch.stack([c.sums for c in counts])
    out = sum_ranks(flat)
    flat = out if isinstance(out, Tensor) else flat
    for c, row in zip(counts, flat, strict=True):
        c.sums = row.clone()


def _logits(model: nn.Module, x: Tensor, dev: torch.device) -> Tensor:
    out = model(x.to(dev, non_blocking=True))
    return out[0] if isinstance(out, tuple | list) else out


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    """``model.eval()`` under ``no_grad``; every module's mode restored on exit."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training


def evaluate_top_k(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor] | Sequence[Any]],
    device: torch.device | str | None = None,
    ks: Sequence[int] = (1, 5),
    sum_ranks: Callable[[Tensor], Any] | None = None,
) -> dict[str, float]:
    """Top-k accuracy (fractions in [0, 1]) and mean cross-entropy of ``model`` over ``batches``.

    Runs in eval mode under ``no_grad`` (the model's modes are restored). With K classes, top-k for k > K
    uses min(k, K) (so top-5 of a 3-class task equals 1). One host sync at the end.

    Args:
        batches: iterable of ``(images [B, C, S, S], targets [B] int64)``: this rank's shard, when sharded.
        device: where to run; default the model's device.
        ks: which top-k to report, default (1, 5).
        sum_ranks: ``fn(tensor)`` summing the counts over the ranks (:func:`sum_across_ranks`), so that
            every rank returns the whole split's result; collective. Default: this rank's batches only.

    Returns:
        ``{"top1": float, "top5": float, "loss": float, "n": int}`` (keys ``top{k}`` for each k).

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> r = evaluate_top_k(model, [(torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 0]))])
        >>> r["top5"], r["n"]
        (1.0, 4)
    """
    model = unwrap(model)
    dev = torch.device(device) if device is not None else model_device(model)
    counts = TopKCounts(ks, dev)
    with _eval_mode(model):
        for batch in batches:
            counts.add(_logits(model, batch[0], dev), batch[1].to(dev, non_blocking=True))
    _sum_counts([counts], sum_ranks)
    return counts.result()


@dataclass
class SizeResult:
    """One row of a sweep. Accuracies are fractions in [0, 1]; a metric the plan left out is None
    (``*_calibrated`` without calibration, ``top1``/``top5`` without raw, ``gflops`` without FLOPs)."""

    size: int
    top1: float | None
    top5: float | None
    top1_calibrated: float | None
    top5_calibrated: float | None
    gflops: float | None
    top1_per_gflop: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "top1": self.top1,
            "top5": self.top5,
            "top1_calibrated": self.top1_calibrated,
            "top5_calibrated": self.top5_calibrated,
            "gflops": self.gflops,
            "top1_per_gflop": self.top1_per_gflop,
        }


def _percent(values: Iterable[float | None]) -> list[float]:
    return [math.nan if v is None else 100 * v for v in values]


@dataclass
class SweepResult:
    """Result of :func:`size_sweep`.

    Attributes:
        rows: one :class:`SizeResult` per size, ascending.
        cache: the :class:`BNStatsCache` of calibrated sizes (None without calibration).
        metadata: JSON-able facts about the sweep (schema, units, calibration batches, model name, ...).
        losses: per size, ``{"loss": ..., "loss_calibrated": ...}`` (mean cross-entropy; not in the JSON rows).
    """

    rows: list[SizeResult]
    cache: BNStatsCache | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    losses: dict[int, dict[str, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """``{"sizes": [{"size", "top1", "top5", "top1_calibrated", "top5_calibrated", "gflops",
        "top1_per_gflop"}, ...], **metadata}``."""
        return {"sizes": [r.to_dict() for r in self.rows], **self.metadata}

    def to_json(self, path: str | Path | None = None, indent: int = 2) -> str:
        """The :meth:`to_dict` document as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    def plot(self, path_png: str | Path, title: str | None = None) -> Path:
        """Write one PNG: top-1 vs size (uncalibrated and calibrated) and, with FLOPs, top-1 vs GFLOPs per image.

        Uses matplotlib's Agg canvas directly (no pyplot, no display). Training sizes, if listed in
        ``metadata["train_sizes"]``, are marked with dotted vertical lines.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        sizes = [r.size for r in self.rows]
        curves = [
            (label, style, values)
            for label, style, values in (
                ("BN stats from training", "o-", _percent(r.top1 for r in self.rows)),
                ("BN calibrated per size", "s--", _percent(r.top1_calibrated for r in self.rows)),
            )
            if not all(math.isnan(v) for v in values)
        ]
        with_flops = all(r.gflops is not None for r in self.rows)
        fig = Figure(figsize=(11, 4.2) if with_flops else (5.5, 4.2), dpi=100)
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2) if with_flops else [fig.subplots(1, 1)]
        panels = [(axes[0], sizes, "evaluation image size (px)", "accuracy vs size")]
        if with_flops:
            panels.append((axes[1], [r.gflops for r in self.rows], "GFLOPs per image", "accuracy vs compute"))
        for s in self.metadata.get("train_sizes") or []:
            axes[0].axvline(s, color="grey", linestyle=":", linewidth=1)
        for ax, xs, xlabel, panel_title in panels:
            for label, style, values in curves:
                ax.plot(xs, values, style, label=label)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("top-1 accuracy (%)")
            ax.set_title(panel_title)
            ax.grid(alpha=0.3)
            ax.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        path = Path(path_png)
        fig.savefig(path, format="png")
        return path


@dataclass(frozen=True)
class SweepPlan:
    """What a size sweep measures, at which sizes, and with which calibration data.

    Attributes:
        sizes: a spec for :func:`parse_sizes` (``"16:64:4"``, ``"16,32"``, a list); kept as the parsed,
            ascending tuple.
        calibration: ``fn(S) -> iterable of training images [B, C, S, S]`` (or ``(x, y)`` tuples) that BN
            calibration at S forwards; None: calibrated sizes must come from the cache given to
            :func:`size_sweep`.
        calibration_batches: batches per size that calibration forwards (default 200, the official code's).
        raw: report top-1/top-5 with the model's own BN statistics (default True).
        calibrated: report top-1/top-5 with BN statistics calibrated per size (default True).
        flops: report GFLOPs per image and top-1 per GFLOP (default True).
        min_size: smallest allowed size; the sweep's minimum is ``max(min_size, model.min_size)``.
        metadata: extra JSON-able entries for the document (e.g. ``{"train_sizes": [16, 32]}``).

    Raises:
        ConfigError: sizes below ``min_size`` (``--sizes``), ``calibration_batches`` < 1
            (``--calibrate-batches``), or neither ``raw`` nor ``calibrated``.

    Example:
        >>> plan = SweepPlan("16:32:8", calibrated=False)
        >>> plan.sizes, plan.raw, plan.calibration_batches
        ((16, 24, 32), True, 200)
    """

    sizes: str | int | Sequence[int]
    calibration: Callable[[int], Iterable[Tensor | Sequence[Any]]] | None = None
    calibration_batches: int = 200
    raw: bool = True
    calibrated: bool = True
    flops: bool = True
    min_size: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(parse_sizes(self.sizes, min_size=self.min_size)))
        check_num_batches(self.calibration_batches)
        if not (self.raw or self.calibrated):
            raise ConfigError("sweep metrics", "raw and/or calibrated accuracy", "neither")


def size_sweep(
    model: nn.Module,
    plan: SweepPlan,
    eval_batches: Callable[[int], Iterable[tuple[Tensor, Tensor]]],
    *,
    cache: BNStatsCache | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
    all_reduce: Callable[[Tensor], Any] | None = None,
    sum_ranks: Callable[[Tensor], Any] | None = None,
) -> SweepResult:
    """Evaluate ``model`` at every size of ``plan``, with the BN statistics it has and with statistics
    calibrated per size.

    First (``plan.calibrated``) the BN statistics of every size that ``cache`` lacks are calibrated on
    ``plan.calibration_batches`` batches of ``plan.calibration(S)`` and added to it. Then ONE pass over the
    evaluation images counts, per size S and per batch, top-1/top-5 with the model's own BN statistics
    (``plan.raw``) and with S's statistics from the cache (``plan.calibrated``), and GFLOPs per image at S
    (``plan.flops``). The model's own statistics, momenta and modes are restored at the end (also on error).

    Args:
        model: classifier returning ``[B, K]`` logits; ``getattr(model, "min_size", 1)`` is its smallest size.
        plan: sizes, calibration data and which metrics (:class:`SweepPlan`).
        eval_batches: ``fn(S) -> iterable of (images [B, C, S, S], targets [B])``, read size after size; or a
            source with ``together(sizes) -> iterable of ({S: images [B, C, S, S]}, targets [B])``
            (:class:`~mixsize_ray.data.eval_source.EvalSource`), which decodes each image once for all sizes.
            With ``sum_ranks``, this rank's shard.
        cache: per-size statistics already calibrated (e.g. from a checkpoint); sizes calibrated here are
            added to it. Default: a new cache.
        device: where to run; default the model's device.
        progress: tqdm bar over the evaluation batches (stderr), default True.
        all_reduce: as in :func:`~mixsize_ray.core.calibration.calibrate_bn` (averages statistics across
            ranks; default: torch.distributed's when initialised).
        sum_ranks: as in :func:`evaluate_top_k`: sums the counts of every rank's shard (collective).

    Returns:
        :class:`SweepResult`; ``top1_per_gflop`` uses the calibrated top-1 when calibrating, else top-1
        (``metadata["top1_per_gflop_from"]`` says which).

    Raises:
        ConfigError: a size below the model's minimum (the message states it), a model without BN asked to
            calibrate, sizes to calibrate with neither calibration data nor cached statistics.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> data = lambda s: [(torch.randn(8, 3, s, s), torch.randint(0, 4, (8,)))]
        >>> plan = SweepPlan([8, 16], calibration=lambda s: [torch.randn(8, 3, s, s)], calibration_batches=1)
        >>> result = size_sweep(net, plan, data, progress=False)
        >>> [r.size for r in result.rows], result.cache.sizes, result.metadata["calibration_batches"]
        ([8, 16], [8, 16], 1)
    """
    model = unwrap(model)
    minimum = max(int(plan.min_size), int(getattr(model, "min_size", 1) or 1), 1)
    size_list = parse_sizes(list(plan.sizes), min_size=minimum)
    calibrate = plan.calibrated
    if calibrate:
        cache = cache if cache is not None else BNStatsCache()
        missing = [s for s in size_list if s not in cache]
        if missing and plan.calibration is None:
            raise ConfigError(
                "--calibrate-batches", f"calibration data for sizes not in the BN cache {cache.sizes}", missing
            )
    dev = torch.device(device) if device is not None else model_device(model)
    kept = bn_stats_kept(model) if calibrate else contextlib.nullcontext(lambda: None)
    with kept as restore:
        for size in size_list if calibrate else []:
            if size not in cache:
                assert plan.calibration is not None
                calibrate_bn(model, plan.calibration(size), plan.calibration_batches, device=dev,
                             all_reduce=all_reduce)
                cache.capture(model, size)
                restore()
        passes = eval_batches.together(size_list) if hasattr(eval_batches, "together") else _size_by_size(
            eval_batches, size_list)
        raw = {s: TopKCounts((1, 5), dev) for s in size_list} if plan.raw else {}
        cal = {s: TopKCounts((1, 5), dev) for s in size_list} if calibrate else {}
        with _eval_mode(model), _progress_bar(passes, progress) as bar:
            for images, targets in bar:
                y = targets.to(dev, non_blocking=True)
                for size, x in images.items():
                    if plan.raw:
                        raw[size].add(_logits(model, x, dev), y)
                    if calibrate:
                        cache.apply(model, size, exact=True)
                        cal[size].add(_logits(model, x, dev), y)
                        restore()
        _sum_counts([*raw.values(), *cal.values()], sum_ranks)
    rows: list[SizeResult] = []
    losses: dict[int, dict[str, float | None]] = {}
    eval_images: dict[int, int] = {}
    for size in size_list:
        plain = raw[size].result() if plan.raw else None
        calibrated = cal[size].result() if calibrate else None
        rows.append(_row(model, size, plain, calibrated, plan.flops))
        eval_images[size] = (plain or calibrated or {}).get("n", 0)
        losses[size] = {"loss": None if plain is None else plain["loss"],
                        "loss_calibrated": None if calibrated is None else calibrated["loss"]}

    meta: dict[str, Any] = {
        "schema": SWEEP_SCHEMA,
        "accuracy_unit": "fraction in [0, 1]",
        "flops_counter": "torch.utils.flop_counter.FlopCounterMode, batch 1, eval mode; multiply-add = 2 FLOPs",
        "model": type(model).__name__,
        "min_size": minimum,
        "calibrated": calibrate,
        "calibration_batches": plan.calibration_batches if calibrate and plan.calibration is not None else None,
        "top1_per_gflop_from": None if not plan.flops else "top1_calibrated" if calibrate else "top1",
        "eval_images_per_size": {str(s): n for s, n in eval_images.items()},
    }
    meta.update(plan.metadata)
    return SweepResult(rows=rows, cache=cache if calibrate else None, metadata=meta, losses=losses)


def _size_by_size(eval_batches: Callable[[int], Iterable[Any]], sizes: Sequence[int]):
    """A per-size ``eval_batches`` as one stream of ``({S: images}, targets)``, size after size."""
    for size in sizes:
        for batch in eval_batches(size):
            yield {size: batch[0]}, batch[1]


def _progress_bar(items: Iterable[Any], progress: bool):
    """A tqdm bar over ``items`` (evaluation batches) on stderr, shown when ``progress``."""
    from tqdm.auto import tqdm

    return tqdm(items, desc="size sweep", unit="batch", disable=not progress)


def _row(model: nn.Module, size: int, plain: dict[str, Any] | None, cal: dict[str, Any] | None,
         flops: bool) -> SizeResult:
    """One :class:`SizeResult` from the raw and calibrated evaluations (either may be None)."""
    gflops = gflops_per_image(model, size) if flops else None
    best = cal["top1"] if cal is not None else plain["top1"] if plain is not None else None
    per_gflop = None
    if gflops is not None and best is not None:
        per_gflop = best / gflops if gflops > 0 else math.nan
    return SizeResult(
        size=size,
        top1=None if plain is None else plain["top1"],
        top5=None if plain is None else plain["top5"],
        top1_calibrated=None if cal is None else cal["top1"],
        top5_calibrated=None if cal is None else cal["top5"],
        gflops=gflops,
        top1_per_gflop=per_gflop,
    )
