"""Size sweep: accuracy of one model at many image sizes, with and without BN calibration, and its cost.

* :func:`parse_sizes` / :func:`default_sizes` — which sizes (``"16,24,32"``, ``"16:64:4"``, a list; the
  paper's defaults).
* :func:`gflops_per_image` — GFLOPs of one forward of one image at size S, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2 FLOPs; convolutions, matmuls and the
  like are counted, elementwise ops such as BN and ReLU are not).
* :func:`evaluate_top_k` — top-1/top-5 accuracy over an iterable of batches.
* :func:`size_sweep` -> :class:`SweepResult` — all of the above per size; ``to_dict``/``to_json`` and a PNG
  ``plot``.

Accuracies are FRACTIONS in [0, 1] everywhere (not percent).
"""

from __future__ import annotations

import json
import math
import re
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mixsize_ray.core.calibration import (
    BNStatsCache,
    _check_num_batches,
    _model_device,
    _require_bn,
    _restore,
    _snapshot,
    _unwrap,
    calibrate_bn,
)
from mixsize_ray.errors import ConfigError

__all__ = [
    "parse_sizes",
    "default_sizes",
    "gflops_per_image",
    "evaluate_top_k",
    "size_sweep",
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
    model = _unwrap(model)
    per_model = _FLOPS_CACHE.setdefault(model, {}) if cache else {}
    key = (size, channels)
    if key not in per_model:
        modes = [(m, m.training) for m in model.modules()]
        dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
        x = torch.zeros(1, channels, size, size, device=_model_device(model), dtype=dtype)
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


def evaluate_top_k(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor] | Sequence[Any]],
    device: torch.device | str | None = None,
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """Top-k accuracy (fractions in [0, 1]) and mean cross-entropy of ``model`` over ``batches``.

    Runs in eval mode under ``no_grad`` (the model's modes are restored). With K classes, top-k for k > K
    uses min(k, K) (so top-5 of a 3-class task equals 1). One host sync at the end.

    Args:
        batches: iterable of ``(images [B, C, S, S], targets [B] int64)``.
        device: where to run; default the model's device.
        ks: which top-k to report, default (1, 5).

    Returns:
        ``{"top1": float, "top5": float, "loss": float, "n": int}`` (keys ``top{k}`` for each k).

    Example:
        >>> model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
        >>> r = evaluate_top_k(model, [(torch.randn(4, 3, 2, 2), torch.tensor([0, 1, 2, 0]))])
        >>> r["top5"], r["n"]
        (1.0, 4)
    """
    ks = tuple(ks)
    if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
        raise ConfigError("ks", "positive integers", ks)
    model = _unwrap(model)
    dev = torch.device(device) if device is not None else _model_device(model)
    modes = [(m, m.training) for m in model.modules()]
    correct = torch.zeros(len(ks), dtype=torch.float64, device=dev)
    loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
    n = 0
    try:
        model.eval()
        with torch.no_grad():
            for batch in batches:
                x, y = batch[0], batch[1]
                x = x.to(dev, non_blocking=True)
                y = y.to(dev, non_blocking=True)
                logits = model(x)
                if isinstance(logits, tuple | list):
                    logits = logits[0]
                logits = logits.float()
                k_max = min(max(ks), logits.shape[1])
                top = logits.topk(k_max, dim=1).indices  # [B, k_max]
                hit = top.eq(y.view(-1, 1))
                cum = hit.cumsum(dim=1).clamp_(max=1)  # cum[:, j] = target within the top j+1
                for i, k in enumerate(ks):
                    correct[i] += cum[:, min(k, k_max) - 1].sum()
                loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
                n += int(y.shape[0])
    finally:
        for m, training in modes:
            m.training = training
    if n == 0:
        raise ValueError("evaluate_top_k: the evaluation batches are empty")
    values = (correct / n).tolist()
    out: dict[str, Any] = {f"top{k}": v for k, v in zip(ks, values, strict=True)}
    out["loss"] = float(loss_sum) / n
    out["n"] = n
    return out


@dataclass
class SizeResult:
    """One row of a sweep. Accuracies are fractions in [0, 1]; ``*_calibrated`` are None without calibration."""

    size: int
    top1: float
    top5: float
    top1_calibrated: float | None
    top5_calibrated: float | None
    gflops: float
    top1_per_gflop: float

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
        """Write one PNG: top-1 vs size (uncalibrated and calibrated) and top-1 vs GFLOPs per image.

        Uses matplotlib's Agg canvas directly (no pyplot, no display). Training sizes, if listed in
        ``metadata["train_sizes"]``, are marked with dotted vertical lines.
        """
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        sizes = [r.size for r in self.rows]
        flops = [r.gflops for r in self.rows]
        top1 = [100 * r.top1 for r in self.rows]
        calibrated = [None if r.top1_calibrated is None else 100 * r.top1_calibrated for r in self.rows]
        has_cal = any(v is not None for v in calibrated)
        cal = [math.nan if v is None else v for v in calibrated]

        fig = Figure(figsize=(11, 4.2), dpi=100)
        FigureCanvasAgg(fig)
        ax1, ax2 = fig.subplots(1, 2)
        ax1.plot(sizes, top1, "o-", label="BN stats from training")
        if has_cal:
            ax1.plot(sizes, cal, "s--", label="BN calibrated per size")
        for s in self.metadata.get("train_sizes") or []:
            ax1.axvline(s, color="grey", linestyle=":", linewidth=1)
        ax1.set_xlabel("evaluation image size (px)")
        ax1.set_ylabel("top-1 accuracy (%)")
        ax1.set_title("accuracy vs size")
        ax1.grid(alpha=0.3)
        ax1.legend()
        ax2.plot(flops, top1, "o-", label="BN stats from training")
        if has_cal:
            ax2.plot(flops, cal, "s--", label="BN calibrated per size")
        ax2.set_xlabel("GFLOPs per image")
        ax2.set_ylabel("top-1 accuracy (%)")
        ax2.set_title("accuracy vs compute")
        ax2.grid(alpha=0.3)
        ax2.legend()
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        path = Path(path_png)
        fig.savefig(path, format="png")
        return path


def size_sweep(
    model: nn.Module,
    sizes: str | Sequence[int],
    eval_batches_for_size: Callable[[int], Iterable[tuple[Tensor, Tensor]]],
    calib_batches_for_size: Callable[[int], Iterable[Tensor | Sequence[Any]]] | None = None,
    num_calib_batches: int = 200,
    min_size: int = 1,
    progress: bool = True,
    device: torch.device | str | None = None,
    cache: BNStatsCache | None = None,
    ks: Sequence[int] = (1, 5),
    channels: int = 3,
    all_reduce: Callable[[Tensor], Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> SweepResult:
    """Evaluate ``model`` at every size, with the BN statistics it has and with statistics calibrated per size.

    For each size S (ascending): top-1/top-5 on ``eval_batches_for_size(S)`` with the model's own BN
    statistics; then, if calibrating, BN statistics for S (from ``cache`` when it holds S exactly, else
    calibrated on ``num_calib_batches`` of ``calib_batches_for_size(S)``) and top-1/top-5 again; GFLOPs per
    image at S. The model's own statistics, momenta and modes are restored at the end (also on error).

    Args:
        model: classifier returning ``[B, K]`` logits; ``getattr(model, "min_size", 1)`` is its smallest size.
        sizes: list or spec string for :func:`parse_sizes`.
        eval_batches_for_size: ``fn(S) -> iterable of (images [B, C, S, S], targets [B])``.
        calib_batches_for_size: ``fn(S) -> iterable of training images at S`` (or (x, y) tuples); None and
            no ``cache`` -> no calibration (``*_calibrated`` are None).
        num_calib_batches: batches per size for calibration (default 200).
        min_size: smallest allowed size; the effective minimum is ``max(min_size, model.min_size)``.
        progress: tqdm bar over sizes (stderr), default True.
        cache: precomputed per-size statistics (e.g. from a checkpoint); calibrated sizes are added to it.
        ks: top-k values; the JSON always reports top1 and top5 (k capped at the number of classes).
        metadata: extra JSON-able entries for the document (e.g. ``{"train_sizes": [16, 32]}``).

    Returns:
        :class:`SweepResult`; ``top1_per_gflop`` uses the calibrated top-1 when calibrating, else top-1
        (``metadata["top1_per_gflop_from"]`` says which).

    Raises:
        ConfigError: a size below the minimum (the message states it), ``num_calib_batches`` < 1, a model
            without BN asked to calibrate.
    """
    model = _unwrap(model)
    minimum = max(int(min_size), int(getattr(model, "min_size", 1) or 1), 1)
    size_list = parse_sizes(sizes, min_size=minimum)
    calibrate = calib_batches_for_size is not None or cache is not None
    if calibrate:
        num_calib_batches = _check_num_batches(num_calib_batches)
        layers = _require_bn(model)
        cache = cache if cache is not None else BNStatsCache()
        if calib_batches_for_size is None:
            missing = [s for s in size_list if s not in cache]
            if missing:
                raise ConfigError(
                    "--calibrate-batches",
                    f"calibration data for sizes not in the BN cache {cache.sizes}",
                    missing,
                )
    ks = tuple(sorted(set(ks) | {1, 5}))
    original = _snapshot(layers) if calibrate else {}
    modes = [(m, m.training) for m in model.modules()]

    bar = None
    iterator: Iterable[int] = size_list
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(size_list, desc="size sweep", unit="size")
        iterator = bar

    rows: list[SizeResult] = []
    losses: dict[int, dict[str, float | None]] = {}
    eval_images: dict[int, int] = {}
    try:
        for size in iterator:
            if bar is not None:
                bar.set_postfix(size=size)
            plain = evaluate_top_k(model, eval_batches_for_size(size), device=device, ks=ks)
            cal: dict[str, Any] | None = None
            if calibrate:
                assert cache is not None
                if size in cache:
                    cache.apply(model, size, exact=True)
                else:
                    assert calib_batches_for_size is not None
                    calibrate_bn(
                        model,
                        calib_batches_for_size(size),
                        num_calib_batches,
                        device=device,
                        all_reduce=all_reduce,
                    )
                    cache.capture(model, size)
                cal = evaluate_top_k(model, eval_batches_for_size(size), device=device, ks=ks)
                _restore(layers, original)
            gflops = gflops_per_image(model, size, channels=channels)
            best = cal["top1"] if cal is not None else plain["top1"]
            rows.append(
                SizeResult(
                    size=size,
                    top1=plain["top1"],
                    top5=plain["top5"],
                    top1_calibrated=None if cal is None else cal["top1"],
                    top5_calibrated=None if cal is None else cal["top5"],
                    gflops=gflops,
                    top1_per_gflop=best / gflops if gflops > 0 else math.nan,
                )
            )
            eval_images[size] = plain["n"]
            losses[size] = {"loss": plain["loss"], "loss_calibrated": None if cal is None else cal["loss"]}
            if bar is not None:
                post = {"size": size, "top1": f"{plain['top1']:.3f}"}
                if cal is not None:
                    post["cal"] = f"{cal['top1']:.3f}"
                bar.set_postfix(post)
    finally:
        if bar is not None:
            bar.close()
        if calibrate:
            _restore(layers, original)
        for m, training in modes:
            m.training = training

    meta: dict[str, Any] = {
        "schema": SWEEP_SCHEMA,
        "accuracy_unit": "fraction in [0, 1]",
        "flops_counter": "torch.utils.flop_counter.FlopCounterMode, batch 1, eval mode; multiply-add = 2 FLOPs",
        "model": type(model).__name__,
        "min_size": minimum,
        "calibrated": calibrate,
        "calibration_batches": num_calib_batches if calib_batches_for_size is not None else None,
        "top1_per_gflop_from": "top1_calibrated" if calibrate else "top1",
        "eval_images_per_size": {str(s): n for s, n in eval_images.items()},
    }
    meta.update(metadata or {})
    return SweepResult(rows=rows, cache=cache if calibrate else None, metadata=meta, losses=losses)
