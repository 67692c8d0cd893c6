"""The printed choice: one line per size (top-1 in percent, GFLOPs, median latency per batch, whether it
qualifies, the pick marked), then the chosen size in one sentence, and its JSON document.

Example:
    >>> from mixsize_ray.serve.selection import Candidate, Constraint, pick_size
    >>> curve = [Candidate(16, 0.6, 0.02, {1: 0.5, 32: 9.0}), Candidate(32, 0.87, 0.08, {1: 1.5, 32: 30.0})]
    >>> print("\\n".join(render_table(pick_size(curve, Constraint(max_gflops=0.05)))))
     size  top1 %    GFLOPs   ms@b1   ms@b32  qualifies
       16   60.00    0.0200    0.50     9.00  yes        <- pick
       32   87.00    0.0800    1.50    30.00  no
    >>> summary_line(pick_size(curve, Constraint()), "cpu")
    'picked size 32: top-1 87.00 %, 0.0800 GFLOPs, 1.50 ms at batch 1, 30.00 ms at batch 32 on cpu'
"""

from __future__ import annotations

from typing import Any

from mixsize_ray.serve.selection import Candidate, Choice


def _batches(choice: Choice) -> list[int]:
    return sorted({b for c in choice.candidates for b in c.latency_ms})


def _width(batch: int) -> int:
    return max(7, len(f"ms@b{batch}") + 1)


def _gflops(c: Candidate) -> str:
    return "-" if c.gflops is None else f"{c.gflops:.4f}"


def render_table(choice: Choice) -> list[str]:
    """The alternatives, one line per size, ascending; ``<- pick`` marks the chosen one."""
    batches = _batches(choice)
    head = f"{'size':>5} {'top1 %':>7} {'GFLOPs':>9}" + "".join(f" {f'ms@b{b}':>{_width(b)}}"
                                                          for b in batches) + "  qualifies"
    lines = [head]
    for c in choice.candidates:
        lat = "".join(f" {c.latency_ms[b]:>{_width(b)}.2f}" if b in c.latency_ms
                      else f" {'-':>{_width(b)}}" for b in batches)
        ok = "yes" if c.size in choice.qualifying else "no"
        mark = "  <- pick" if c.size == choice.picked.size else ""
        lines.append(f"{c.size:>5} {100 * c.top1:>7.2f} {_gflops(c):>9}{lat}  {ok:<9}{mark}".rstrip())
    return lines


def summary_line(choice: Choice, device: str) -> str:
    """The chosen size with its top-1, GFLOPs and latency per batch on ``device``."""
    c = choice.picked
    lat = "".join(f", {c.latency_ms[b]:.2f} ms at batch {b}" for b in sorted(c.latency_ms))
    where = f" on {device}" if c.latency_ms else ""
    return f"picked size {c.size}: top-1 {100 * c.top1:.2f} %, {_gflops(c)} GFLOPs{lat}{where}"


def choice_doc(choice: Choice, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The choice as JSON-able data: ``{"size", "top1", "gflops", "latency_ms", "constraint", "best_top1",
    "qualifying", "sizes": [one entry per candidate], **extra}`` (accuracies as fractions; latency keys are
    batch sizes as strings)."""

    def row(c: Candidate) -> dict[str, Any]:
        return {"size": c.size, "top1": c.top1, "gflops": c.gflops,
                "latency_ms": {str(b): ms for b, ms in sorted(c.latency_ms.items())},
                "qualifies": c.size in choice.qualifying}

    picked = row(choice.picked)
    return {"size": picked["size"], "top1": picked["top1"], "gflops": picked["gflops"],
            "latency_ms": picked["latency_ms"], "constraint": choice.constraint.to_dict(),
            "constraint_text": choice.constraint.describe(), "best_top1": choice.best_top1,
            "qualifying": list(choice.qualifying), "sizes": [row(c) for c in choice.candidates], **(extra or {})}
