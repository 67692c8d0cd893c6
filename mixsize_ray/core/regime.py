"""SizeRegime: the discrete size distribution {(S_i, B_i, D_i) w.p. p_i} and its constant-budget solver.

The per-step cost is ``S^2 * B * D`` (pixels processed per step). With base (S0, B0, D0):

* ``fixed``: every size uses (B0, D0); the cost varies with S and is only reported.
* ``B+``:   D_i = D0 and B_i = B0 * S0^2 / S_i^2 (bigger batches at smaller sizes, fewer steps).
* ``D+``:   B_i = B0 and D_i = D0 * S0^2 / S_i^2 (more augmented duplicates at smaller sizes). Sizes whose
  exact D_i is below 1 keep one duplicate and shrink the batch instead; where rounding D moves the cost
  outside the tolerance, B is fine-tuned.

Every B_i is a positive multiple of the world size (each rank takes B_i / world_size samples). What the
solver changed is recorded per entry in ``notes``; a size no integer (B, D) can serve within tolerance
raises a one-line :class:`ConfigError` naming the size and the closest ratio.

``p_i`` means the probability that a STEP uses size i (``sampling='step'``, the paper) or the fraction of
each epoch's IMAGES at size i (``sampling='image-fraction'``, the official code). Images per step differ
by size, so the two shares differ: :class:`RegimeTable` reports both.

Example:
    >>> r = SizeRegime([16, 32], [0.5, 0.5], base_size=32, base_batch=64, mode="B+")
    >>> [(e.size, e.batch, e.duplicates) for e in r.solve().entries]
    [(16, 256, 1), (32, 64, 1)]
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from mixsize_ray.core.lr import entry_lr_scales
from mixsize_ray.errors import ConfigError

MODES = ("fixed", "B+", "D+")
SAMPLINGS = ("step", "image-fraction", "epoch", "progressive")


@dataclass(frozen=True)
class RegimeEntry:
    """One solved size: batch is the GLOBAL batch (all ranks together)."""

    size: int
    prob: float
    batch: int
    duplicates: int
    budget_ratio: float
    step_share: float
    image_share: float
    notes: tuple[str, ...] = ()

    @property
    def cost(self) -> int:
        return self.size * self.size * self.batch * self.duplicates


@dataclass
class RegimeTable:
    """The solved regime: entries plus summary statistics for one epoch of ``num_images`` images."""

    entries: list[RegimeEntry]
    mode: str
    sampling: str
    base_size: int
    base_batch: int
    base_duplicates: int
    world_size: int
    tolerance: float
    num_images: int
    lr_rule: str = "none"
    lr_by: str = "mean"
    mean_size: float = field(init=False)
    mean_batch: float = field(init=False)
    steps_per_epoch: float = field(init=False)
    baseline_steps_per_epoch: float = field(init=False)

    def __post_init__(self) -> None:
        self.mean_size = sum(e.step_share * e.size for e in self.entries)
        self.mean_batch = sum(e.step_share * e.batch for e in self.entries)
        self.steps_per_epoch = self.num_images / self.mean_batch
        self.baseline_steps_per_epoch = self.num_images / self.base_batch

    @property
    def lr_scales(self) -> list[float]:
        """The LR multiplier each entry trains with under ``(lr_rule, lr_by)`` (see :mod:`mixsize_ray.core.lr`)."""
        return entry_lr_scales([e.batch for e in self.entries], self.mean_batch, self.base_batch,
                               self.lr_rule, self.lr_by)

    @property
    def mean_lr_scale(self) -> float:
        """The step-weighted mean LR multiplier."""
        return sum(e.step_share * f for e, f in zip(self.entries, self.lr_scales, strict=True))

    @property
    def target_cost(self) -> int:
        return self.base_size**2 * self.base_batch * self.base_duplicates

    @property
    def sizes(self) -> list[int]:
        return [e.size for e in self.entries]

    def entry(self, size: int) -> RegimeEntry:
        for e in self.entries:
            if e.size == size:
                return e
        raise KeyError(size)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "sampling": self.sampling,
            "base": {"size": self.base_size, "batch": self.base_batch, "duplicates": self.base_duplicates},
            "world_size": self.world_size,
            "tolerance": self.tolerance,
            "target_cost": self.target_cost,
            "entries": [
                {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(e).items()}, "lr_scale": f}
                for e, f in zip(self.entries, self.lr_scales, strict=True)
            ],
            "lr_scaling": {"rule": self.lr_rule, "by": self.lr_by},
            "mean_lr_scale": self.mean_lr_scale,
            "mean_size": self.mean_size,
            "mean_batch": self.mean_batch,
            "num_images": self.num_images,
            "steps_per_epoch": self.steps_per_epoch,
            "baseline_steps_per_epoch": self.baseline_steps_per_epoch,
        }

    def format(self) -> str:
        """A human-readable table."""
        head = (
            f"mode={self.mode} sampling={self.sampling} base=(S0={self.base_size}, B0={self.base_batch}, "
            f"D0={self.base_duplicates}) world_size={self.world_size} target S^2*B*D={self.target_cost}"
        )
        cols = (f"{'size':>5} {'prob':>6} {'batch':>6} {'dup':>4} {'budget':>7} {'steps%':>7} {'images%':>8} "
                f"{'lr x':>6}  notes")
        lines = [head, cols]
        for e, f in zip(self.entries, self.lr_scales, strict=True):
            lines.append(
                f"{e.size:>5} {e.prob:>6.3f} {e.batch:>6} {e.duplicates:>4} {e.budget_ratio:>7.3f} "
                f"{100 * e.step_share:>6.1f}% {100 * e.image_share:>7.1f}% {f:>6.3f}  {'; '.join(e.notes)}"
            )
        lines.append(
            f"mean size {self.mean_size:.1f}, mean batch {self.mean_batch:.1f}; steps/epoch "
            f"{self.steps_per_epoch:.1f} vs {self.baseline_steps_per_epoch:.1f} for the fixed baseline "
            f"({self.num_images} images); LR x{self.mean_lr_scale:.3f} on average "
            f"(lr_scaling {self.lr_rule}, by {self.lr_by})"
        )
        return "\n".join(lines)


def _round_multiple(x: float, m: int) -> list[int]:
    """The two multiples of ``m`` around ``x`` (never below ``m``)."""
    lo = max(m, int(math.floor(x / m)) * m)
    hi = max(m, int(math.ceil(x / m)) * m)
    return sorted({lo, hi})


@dataclass
class RegimeSpec:
    """A MixSize regime as a config's ``regime`` section writes it: sizes (pixels), per-step (or per-image)
    probabilities, base (S0, B0, D0). The defaults (one size, 32 px, B0 = 128) live here, once.

    ``base_batch`` is the GLOBAL batch (all ranks). ``tolerance`` is the allowed relative deviation of the
    realised per-step cost S^2*B*D from S0^2*B0*D0. Nothing is checked here: :class:`SizeRegime` adds the
    run's world size, images and LR rule, validates, and solves.

    Example:
        >>> RegimeSpec().sizes, RegimeSpec().base_batch
        ([32], 128)
    """

    sizes: list[int] = field(default_factory=lambda: [32])
    probs: list[float] = field(default_factory=lambda: [1.0])
    base_size: int = 32
    base_batch: int = 128
    base_duplicates: int = 1
    mode: str = "fixed"
    sampling: str = "step"
    tolerance: float = 0.1
    max_batch: int | None = None
    max_duplicates: int | None = None


@dataclass
class SizeRegime(RegimeSpec):
    """A MixSize regime before solving: a :class:`RegimeSpec` on ``world_size`` ranks. See the module
    docstring for the math.

    Args:
        sizes: image sides in pixels, distinct, > 0.
        probs: one probability per size, >= 0, summing to 1 (within 1e-6).
        base_size, base_batch, base_duplicates: (S0, B0, D0); B0 is the global batch.
        mode: ``fixed`` | ``B+`` | ``D+``.
        sampling: ``step`` | ``image-fraction`` | ``epoch`` | ``progressive`` (what p_i means, see module doc).
        tolerance: allowed |realised/target - 1| of the per-step cost (default 0.1).
        max_batch, max_duplicates: optional caps.
        world_size: number of data-parallel ranks; every B_i is a multiple of it.
        num_images: images per epoch (for steps-per-epoch statistics).
        lr_rule, lr_by: the LR scaling the table reports (:func:`~mixsize_ray.core.lr.entry_lr_scales`).
    """

    world_size: int = 1
    num_images: int = 50000
    lr_rule: str = "none"
    lr_by: str = "mean"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.mode not in MODES:
            raise ConfigError("regime.mode", f"one of {list(MODES)}", self.mode)
        if self.sampling not in SAMPLINGS:
            raise ConfigError("regime.sampling", f"one of {list(SAMPLINGS)}", self.sampling)
        if not self.sizes:
            raise ConfigError("regime.sizes", "a non-empty list of sizes > 0", self.sizes)
        if len(self.sizes) != len(self.probs):
            raise ConfigError(
                "regime.probs", f"one probability per size ({len(self.sizes)} sizes)", self.probs
            )
        if any(int(s) != s or s <= 0 for s in self.sizes):
            raise ConfigError("regime.sizes", "integers > 0", self.sizes)
        if len(set(self.sizes)) != len(self.sizes):
            raise ConfigError("regime.sizes", "distinct sizes", self.sizes)
        if any(not math.isfinite(p) or p < 0 for p in self.probs):
            raise ConfigError("regime.probs", "probabilities >= 0 summing to 1", self.probs)
        if abs(sum(self.probs) - 1.0) > 1e-6:
            raise ConfigError("regime.probs", "probabilities >= 0 summing to 1 (within 1e-6)", self.probs)
        for name, v in (("base_size", self.base_size), ("base_batch", self.base_batch),
                        ("base_duplicates", self.base_duplicates), ("world_size", self.world_size),
                        ("num_images", self.num_images)):
            if int(v) != v or v < 1:
                raise ConfigError(f"regime.{name}", "an integer >= 1", v)
        if not 0 <= self.tolerance < 1:
            raise ConfigError("regime.tolerance", "a fraction in [0, 1)", self.tolerance)
        if self.max_batch is not None and self.max_batch < self.world_size:
            raise ConfigError("regime.max_batch", f"null or >= world size {self.world_size}", self.max_batch)
        if self.max_duplicates is not None and self.max_duplicates < 1:
            raise ConfigError("regime.max_duplicates", "null or >= 1", self.max_duplicates)
        if self.base_batch % self.world_size:
            raise ConfigError(
                "regime.base_batch", f"a multiple of the world size {self.world_size}", self.base_batch
            )

    # ---- solving -------------------------------------------------------------------------------------
    def _solve_size(self, s: int) -> tuple[int, int, list[str]]:
        """Integer (B, D) for size ``s`` and notes on what was adjusted."""
        w = self.world_size
        target = self.base_size**2 * self.base_batch * self.base_duplicates
        bcap = self.max_batch if self.max_batch is not None else 10**12
        dcap = self.max_duplicates if self.max_duplicates is not None else 10**12
        notes: list[str] = []

        def ratio(b: int, d: int) -> float:
            return s * s * b * d / target

        def best_batch(d: int) -> int:
            exact = target / (s * s * d)
            cands = [b for b in _round_multiple(exact, w) if b <= bcap] or [bcap - bcap % w]
            return min(cands, key=lambda b: abs(ratio(b, d) - 1))

        if self.mode == "fixed":
            return self.base_batch, self.base_duplicates, notes
        if self.mode == "B+":
            d = self.base_duplicates
            b = best_batch(d)
            if target / (s * s * d) > bcap:
                notes.append(f"batch capped at max_batch={self.max_batch}")
            elif b * s * s * d != target:
                notes.append(f"batch rounded from {target / (s * s * d):.2f} to {b}")
            return b, d, notes
        # D+
        b0 = self.base_batch
        exact_d = self.base_duplicates * self.base_size**2 / (s * s)
        if exact_d < 1:
            d = 1
            notes.append(f"one duplicate (exact D {exact_d:.2f} < 1): batch shrinks")
            return best_batch(1), 1, notes
        cands = sorted({max(1, min(dcap, math.floor(exact_d))), max(1, min(dcap, math.ceil(exact_d)))})
        d = min(cands, key=lambda dd: abs(ratio(b0, dd) - 1))
        if d == dcap and exact_d > dcap:
            notes.append(f"duplicates capped at max_duplicates={self.max_duplicates}")
        elif d != exact_d:
            notes.append(f"duplicates rounded from {exact_d:.2f} to {d}")
        if abs(ratio(b0, d) - 1) > self.tolerance:
            b = best_batch(d)
            notes.append(f"batch fine-tuned from {b0} to {b}")
            return b, d, notes
        return b0, d, notes

    def solve(self) -> RegimeTable:
        """Solve every size; raise ConfigError for a size that cannot meet the budget within tolerance."""
        target = self.base_size**2 * self.base_batch * self.base_duplicates
        solved = []
        for s, p in zip(self.sizes, self.probs, strict=True):
            b, d, notes = self._solve_size(int(s))
            r = s * s * b * d / target
            if self.mode != "fixed" and abs(r - 1) > self.tolerance:
                raise ConfigError(
                    "regime",
                    f"size {s} to meet S0^2*B0*D0={target} within {self.tolerance:.0%}",
                    f"closest B={b}, D={d}, ratio {r:.3f}",
                    hint="raise regime.tolerance or max_batch/max_duplicates, or change the size",
                )
            solved.append((int(s), float(p), b, d, r, tuple(notes)))
        # step and image shares: p means steps (step/epoch/progressive) or images (image-fraction)
        if self.sampling == "image-fraction":
            inv = [p / b for (_, p, b, *_rest) in solved]
            step_shares = [x / sum(inv) for x in inv]
            image_shares = [p for (_, p, *_rest) in solved]
        else:
            step_shares = [p for (_, p, *_rest) in solved]
            ib = [p * b for (_, p, b, *_rest) in solved]
            image_shares = [x / sum(ib) for x in ib]
        entries = [
            RegimeEntry(s, p, b, d, r, ss, im, notes)
            for (s, p, b, d, r, notes), ss, im in zip(solved, step_shares, image_shares, strict=True)
        ]
        return RegimeTable(
            entries=entries,
            mode=self.mode,
            sampling=self.sampling,
            base_size=self.base_size,
            base_batch=self.base_batch,
            base_duplicates=self.base_duplicates,
            world_size=self.world_size,
            tolerance=self.tolerance,
            num_images=self.num_images,
            lr_rule=self.lr_rule,
            lr_by=self.lr_by,
        )


def regime_from_config(cfg: Any, world_size: int | None = None, num_images: int | None = None) -> SizeRegime:
    """Build a SizeRegime from a :class:`mixsize_ray.config.Config` (world size = ray.num_workers).

    ``num_images`` is the real training-set size (``mixsize_ray.data.counts.count_train_images``); without
    it the statistics assume ``data.train_size``, else the dataset's published size (ImageNet's 1,281,167
    for an ImageFolder: only good for checking the budget, which does not depend on it).
    """
    if num_images is None:
        num_images = cfg.data.train_size or {"cifar10": 50000, "cifar100": 50000}.get(cfg.data.name, 1281167)
    spec = {f.name: copy.copy(getattr(cfg.regime, f.name)) for f in fields(RegimeSpec)}
    return SizeRegime(
        **spec,
        world_size=world_size if world_size is not None else cfg.ray.num_workers,
        num_images=num_images,
        lr_rule=cfg.optim.lr_scaling,
        lr_by=cfg.optim.lr_scaling_by,
    )
