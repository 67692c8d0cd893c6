"""A measured figure: repeats, their median, min and max, and the target it is held to.

Every `make bench` figure is a median over repeats (never one timing), each repeat a ratio measured in one
run with A and B interleaved, so that drift (thermal, other load) hits both sides alike.

Example:
    >>> f = Figure("P1", "Ray Train 1 worker / bare loop, images/s", [0.97, 0.99, 0.96], target=0.95, at_least=True)
    >>> round(f.median, 2), f.holds, f.row()[:4]
    (0.97, True, ['P1', 'Ray Train 1 worker / bare loop, images/s', '0.970', '0.960..0.990'])
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Budget:
    """How long each benchmark measures: ``repeats`` windows of ``window`` steps after ``warmup`` steps.
    The defaults are the issue's floor (5 repeats, 50-step windows); tests pass tiny ones."""

    repeats: int = 5
    window: int = 50
    warmup: int = 5


DEFAULT = Budget()


@dataclass
class Figure:
    """``values`` (one per repeat) of a ratio held to ``target``: ``at_least`` (>=) or at most (<=)."""

    key: str
    what: str
    values: list[float]
    target: float | None = None
    at_least: bool = True
    unit: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def holds(self) -> bool | None:
        if self.target is None:
            return None
        return self.median >= self.target if self.at_least else self.median <= self.target

    def row(self) -> list[str]:
        target = "-" if self.target is None else f"{'>=' if self.at_least else '<='} {self.target:g}{self.unit}"
        verdict = {True: "holds", False: "MISSED", None: "(no target)"}[self.holds]
        return [self.key, self.what, f"{self.median:.3f}", f"{min(self.values):.3f}..{max(self.values):.3f}",
                str(len(self.values)), target, verdict]

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "median": self.median, "min": min(self.values), "max": max(self.values),
                "repeats": len(self.values), "values": self.values, "target": self.target,
                "at_least": self.at_least, "unit": self.unit, "holds": self.holds, "detail": self.detail}

    @classmethod
    def from_dict(cls, key: str, d: dict[str, Any]) -> Figure:
        """Inverse of :meth:`to_dict` (a figure read back from bench.json).

        Example:
            >>> f = Figure("P4", "smoothing", [0.004, 0.005], target=0.01, at_least=False)
            >>> Figure.from_dict("P4", f.to_dict()) == f
            True
        """
        own = {"what", "median", "min", "max", "repeats", "values", "target", "at_least", "unit", "holds", "detail"}
        detail = d["detail"] if "detail" in d else {k: v for k, v in d.items() if k not in own}  # older files
        return cls(key, d["what"], list(d["values"]), d["target"], d["at_least"], d.get("unit", ""), dict(detail))


def interleaved(a: Callable[[], float], b: Callable[[], float], repeats: int) -> tuple[list[float], list[float]]:
    """``repeats`` pairs, A then B then A...: the two timings of each pair are neighbours in time.

    Example:
        >>> interleaved(lambda: 1.0, lambda: 2.0, 3)
        ([1.0, 1.0, 1.0], [2.0, 2.0, 2.0])
    """
    xs: list[float] = []
    ys: list[float] = []
    for _ in range(repeats):
        xs.append(a())
        ys.append(b())
    return xs, ys


def table(figures: list[Figure]) -> str:
    """The figures as an aligned text table (what `make bench` prints)."""
    rows = [["", "ratio", "median", "min..max", "n", "target", ""], *(f.row() for f in figures)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
