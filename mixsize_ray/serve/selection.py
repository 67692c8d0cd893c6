"""The serving-size choice on an accuracy-vs-size curve: pure numbers, no model, no I/O.

A :class:`Candidate` is one evaluated size (top-1 as a FRACTION in [0, 1], GFLOPs per image, median latency
in ms per batch). A :class:`Constraint` holds the user's limits; every limit given must hold (AND):

* ``max_gflops``: GFLOPs per image <= X;
* ``max_latency_ms``: median latency of one forward at batch ``latency_batch`` (default 1) <= X ms;
* ``within_points``: top-1 >= best top-1 - X PERCENTAGE POINTS (``1.0`` = one point = 0.01 as a fraction),
  the best taken over ALL candidates, whatever the other limits.

:func:`pick_size` picks among the sizes that qualify:

* with ``within_points``: the CHEAPEST one (fewest GFLOPs; ties: higher top-1, then the smaller size);
* otherwise: the most accurate one (highest top-1; ties: fewer GFLOPs, then the smaller size). With no
  limit at all that is the best size of the curve.

When no size qualifies it raises a one-line :class:`~mixsize_ray.errors.ConfigError` naming the limit and the
cheapest (or fastest) value the curve offers.

Example:
    >>> curve = [Candidate(16, 0.60, 0.02), Candidate(24, 0.85, 0.05), Candidate(32, 0.87, 0.08)]
    >>> pick_size(curve, Constraint()).picked.size
    32
    >>> pick_size(curve, Constraint(max_gflops=0.06)).picked.size
    24
    >>> pick_size(curve, Constraint(within_points=3)).picked.size
    24
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from mixsize_ray.errors import ConfigError

_EPS = 1e-9  # float slack on every comparison (a curve's 0.85 minus 2 points is 0.8299999...)


def _positive(field_name: str, value: float | None, allowed: str = "a number > 0") -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(field_name, allowed, value)


@dataclass(frozen=True)
class Constraint:
    """The limits a serving size must meet (any combination; none: the best top-1).

    Attributes:
        max_gflops: GFLOPs per image (1e9 FLOPs, multiply-add = 2), > 0; default none.
        max_latency_ms: median milliseconds of one forward at batch ``latency_batch``, > 0; default none.
        within_points: allowed top-1 drop from the best, in percentage points, 0..100; default none.
        latency_batch: the batch ``max_latency_ms`` applies to (default 1: one request at a time).

    Raises:
        ConfigError: a limit <= 0 (``within_points`` < 0 or > 100), non-finite or not a number.

    Example:
        >>> Constraint(max_gflops=0.5, within_points=1).describe()
        'GFLOPs <= 0.5 and top-1 within 1 point of the best'
        >>> Constraint(max_gflops=-1)
        Traceback (most recent call last):
        ...
        mixsize_ray.errors.ConfigError: --max-gflops: expected a number > 0, got -1
    """

    max_gflops: float | None = None
    max_latency_ms: float | None = None
    within_points: float | None = None
    latency_batch: int = 1

    def __post_init__(self) -> None:
        _positive("--max-gflops", self.max_gflops)
        _positive("--max-latency-ms", self.max_latency_ms)
        w = self.within_points
        if w is not None and (isinstance(w, bool) or not isinstance(w, int | float) or not 0 <= w <= 100):
            raise ConfigError("--within", "percentage points of top-1 in [0, 100] (1 = one point)", w)
        b = self.latency_batch
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ConfigError("--latency-batch", "an integer >= 1", b)

    @property
    def needs_latency(self) -> bool:
        return self.max_latency_ms is not None

    @property
    def is_empty(self) -> bool:
        return self.max_gflops is None and self.max_latency_ms is None and self.within_points is None

    def describe(self) -> str:
        """The limits in words (``"none (best top-1)"`` without any)."""
        parts = []
        if self.max_gflops is not None:
            parts.append(f"GFLOPs <= {self.max_gflops:g}")
        if self.max_latency_ms is not None:
            parts.append(f"latency at batch {self.latency_batch} <= {self.max_latency_ms:g} ms")
        if self.within_points is not None:
            unit = "point" if self.within_points == 1 else "points"
            parts.append(f"top-1 within {self.within_points:g} {unit} of the best")
        return " and ".join(parts) if parts else "none (best top-1)"

    def to_dict(self) -> dict[str, float | int | None]:
        return {"max_gflops": self.max_gflops, "max_latency_ms": self.max_latency_ms,
                "within_points": self.within_points, "latency_batch": self.latency_batch}


@dataclass(frozen=True)
class Candidate:
    """One size of the curve.

    Attributes:
        size: image side S in pixels.
        top1: top-1 accuracy at S, a fraction in [0, 1] (the BN-calibrated one when the curve has it).
        gflops: GFLOPs of one image at S (None when the curve did not count them).
        latency_ms: ``{batch: median ms of one forward of [batch, 3, S, S]}`` (empty until measured).
    """

    size: int
    top1: float
    gflops: float | None = None
    latency_ms: Mapping[int, float] = field(default_factory=dict)

    def cost(self) -> tuple[float, int]:
        """Sort key of "cheapest": GFLOPs (unknown counts as infinite), then the size."""
        return (math.inf if self.gflops is None else self.gflops, self.size)


@dataclass(frozen=True)
class Choice:
    """What :func:`pick_size` decided.

    Attributes:
        picked: the chosen :class:`Candidate`.
        candidates: every candidate, ascending by size.
        qualifying: the sizes meeting every limit, ascending.
        best_top1: the best top-1 of all candidates (fraction).
        constraint: the limits applied.
    """

    picked: Candidate
    candidates: tuple[Candidate, ...]
    qualifying: tuple[int, ...]
    best_top1: float
    constraint: Constraint


def meets(c: Candidate, constraint: Constraint, best_top1: float) -> bool:
    """True when ``c`` meets every limit of ``constraint`` (``best_top1`` is the curve's best, a fraction).

    Example:
        >>> meets(Candidate(24, 0.85, 0.05, {1: 2.0}), Constraint(max_latency_ms=2.0), best_top1=0.87)
        True
    """
    k = constraint
    if k.max_gflops is not None and (c.gflops is None or c.gflops > k.max_gflops * (1 + _EPS)):
        return False
    if k.max_latency_ms is not None:
        ms = c.latency_ms.get(k.latency_batch)
        if ms is None or ms > k.max_latency_ms * (1 + _EPS):
            return False
    return k.within_points is None or c.top1 >= best_top1 - k.within_points / 100 - _EPS


def _nothing_qualifies(cands: Sequence[Candidate], k: Constraint, best_top1: float) -> ConfigError:
    """The one-line error naming the limit that excludes every size, and what the curve offers."""
    if k.max_gflops is not None and not any(meets(c, Constraint(max_gflops=k.max_gflops), best_top1) for c in cands):
        cheap = min(cands, key=Candidate.cost)
        return ConfigError("--max-gflops", f"at least the cheapest size's {cheap.gflops:.4g} GFLOPs (size "
                           f"{cheap.size})", k.max_gflops)
    only_latency = Constraint(max_latency_ms=k.max_latency_ms, latency_batch=k.latency_batch)
    if k.max_latency_ms is not None and not any(meets(c, only_latency, best_top1) for c in cands):
        fast = min(cands, key=lambda c: c.latency_ms.get(k.latency_batch, math.inf))
        ms = fast.latency_ms.get(k.latency_batch, math.inf)
        return ConfigError("--max-latency-ms", f"at least the fastest size's {ms:.3g} ms at batch "
                           f"{k.latency_batch} (size {fast.size})", k.max_latency_ms)
    return ConfigError("limits", "at least one size meeting all of them together (each alone is met)",
                       k.describe())


def pick_size(candidates: Sequence[Candidate], constraint: Constraint) -> Choice:
    """Pick the serving size (rules in the module doc).

    Args:
        candidates: the curve, one :class:`Candidate` per size (any order, sizes distinct).
        constraint: the limits.

    Returns:
        :class:`Choice`.

    Raises:
        ConfigError: no candidates; ``max_gflops`` on a curve without GFLOPs; ``max_latency_ms`` with a size
            not timed at ``latency_batch``; no size meets the limits (naming the limit and the cheapest or
            fastest value available).

    Example:
        >>> curve = [Candidate(16, 0.60, 0.02), Candidate(24, 0.85, 0.05), Candidate(32, 0.85, 0.08)]
        >>> pick_size(curve, Constraint()).picked.size  # a tie on top-1: the cheaper size
        24
        >>> pick_size(curve, Constraint(max_gflops=0.01))
        Traceback (most recent call last):
        ...
        mixsize_ray.errors.ConfigError: --max-gflops: expected at least the cheapest size's 0.02 GFLOPs (size 16), got 0.01
    """
    cands = tuple(sorted(candidates, key=lambda c: c.size))
    if not cands:
        raise ConfigError("curve", "at least one evaluated size", [])
    k = constraint
    if k.max_gflops is not None and any(c.gflops is None for c in cands):
        raise ConfigError("--max-gflops", "a curve with GFLOPs per size", "a curve without GFLOPs")
    if k.max_latency_ms is not None and any(k.latency_batch not in c.latency_ms for c in cands):
        raise ConfigError("--latency-batch", "a batch the latency was measured at",
                          k.latency_batch)
    best = max(c.top1 for c in cands)
    ok = [c for c in cands if meets(c, k, best)]
    if not ok:
        raise _nothing_qualifies(cands, k, best)
    if k.within_points is not None:
        picked = min(ok, key=lambda c: (*c.cost()[:1], -c.top1, c.size))
    else:
        picked = min(ok, key=lambda c: (-c.top1, *c.cost()))
    return Choice(picked=picked, candidates=cands, qualifying=tuple(c.size for c in ok), best_top1=best,
                  constraint=k)
