"""P10: paper-scale arithmetic. Hours spent outside training steps over a 90-epoch ImageNet run on one 8-GPU
node, before and after issue 21, from per-image costs measured on this machine.

Nothing here is timed: P10 reads the medians that ``make bench`` committed (P5 data, P7, P8 in
``benchmarks/results/bench.json``) and the costs measured when issue 21 was filed (the "before" path), and
scales them to the node of :class:`Node`. The result is an ESTIMATE, and is labelled as one. It rests on two
assumptions: a loader core of the node does the work of one core of this machine (both x86 server cores), and
loader work scales linearly over the node's loader cores. The GPU side of evaluation is a stated estimate too
(:attr:`Node.eval_images_per_s_per_gpu`): no GPU has run here.

    python -m benchmarks.run p10 --into bench    # after p5, p7 and p8 are in bench.json

Example:
    >>> rows = hours_outside_training(Node(), Measured(val_core_s=1 / 200, sweep_core_s=0.034, calib_core_s=0.024))
    >>> [(r.item, round(r.before_h, 2), round(r.after_h, 3)) for r in rows][:2]
    [('per-epoch validation (90 x 50,000 images at 224 px)', 9.12, 0.065), ('final 13-size sweep (50,000 images)', 1.35, 0.008)]
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from statistics import median

from benchmarks.common import RESULTS
from benchmarks.figure import Figure

BEFORE_VAL_IMAGES_PER_S = 137.0
"""Validation before issue 21: rank 0 alone, ``num_workers=0``: 137 images/s at 224 px on one core (issue 21,
measured on ImageNet-shaped JPEGs, 500 x 375, quality 90, on this kind of machine)."""
BEFORE_SWEEP_S_PER_IMAGE = 0.097
"""The 13-size sweep before issue 21: rank 0 alone, one thread, every image decoded once per size: 97 ms per
image for the 13 sizes (issue 21's measurement)."""
SWEEP_SIZES = [32 * m for m in range(1, 14)]
"""``default_sizes("imagenet", 224)``: 32..416 px."""


@dataclass(frozen=True)
class Node:
    """The run the arithmetic is for (every input stated)."""

    gpus: int = 8
    loader_cores_per_gpu: int = 12
    epochs: int = 90
    val_images: int = 50_000
    calibration_images: int = 200 * 256
    """Per rank: ``train.calibrate_batches`` = 200 batches of ``min(regime.base_batch, 256)`` = 256 images."""
    eval_images_per_s_per_gpu: float = 7_500.0
    """ESTIMATE: ResNet-50 inference at 224 px, bf16 + channels_last, on an A100: about 3x its ~2,500 images/s
    of training (forward only, no backward)."""


@dataclass(frozen=True)
class Measured:
    """Per-image costs on ONE core of this machine, seconds (after issue 21): validation at 224 px, the 13-size
    sweep's data side (one pass) and the 13-size calibration data (one pass)."""

    val_core_s: float
    sweep_core_s: float
    calib_core_s: float

    @classmethod
    def from_bench(cls, figures: dict) -> Measured:
        """From ``bench.json``'s figures: P7 (loader images/s on its cores), P8 and P5 data (one-pass seconds
        in one process over their images)."""
        missing = [k for k in ("P7", "P8", "P5 data") if k not in figures]
        if missing:
            raise SystemExit(f"P10: expected figures P7, P8 and P5 data in bench.json, missing {missing}: run "
                             f"python -m benchmarks.run p5 p7 p8 --into bench first")
        p7, p8, p5 = (figures[k]["detail"] for k in ("P7", "P8", "P5 data"))
        return cls(val_core_s=p7["cores"] / median(p7["loader_images_per_s"]),
                   sweep_core_s=median(p8["one_pass_s"]) / p8["images"],
                   calib_core_s=median(p5["one_pass_s"]) / p5["jpegs"])


@dataclass(frozen=True)
class Row:
    item: str
    before_h: float
    after_h: float
    how: str


def hours_outside_training(node: Node, m: Measured) -> list[Row]:
    """The rows of the P10 table (hours of node wall time outside training steps). Data and GPU work of an
    evaluation overlap (loader workers run ahead), so an evaluation takes the longer of the two."""
    cores = node.gpus * node.loader_cores_per_gpu
    gpu_224 = node.val_images / node.eval_images_per_s_per_gpu  # seconds of one GPU for the split at 224 px
    sweep_gpu = 2 * gpu_224 * sum((s / 224) ** 2 for s in SWEEP_SIZES)  # raw and calibrated, every size
    val_before = max(node.val_images / BEFORE_VAL_IMAGES_PER_S, gpu_224)
    val_after = max(node.val_images * m.val_core_s / cores, gpu_224 / node.gpus)
    sweep_before = max(node.val_images * BEFORE_SWEEP_S_PER_IMAGE, sweep_gpu)
    sweep_after = max(node.val_images * m.sweep_core_s / cores, sweep_gpu / node.gpus)
    # every rank its own draw, in its own process, in parallel with the others; forwards at every size
    calib = max(node.calibration_images * m.calib_core_s, sweep_gpu / 2 * node.calibration_images / node.val_images)
    return [
        Row(f"per-epoch validation ({node.epochs} x {node.val_images:,} images at 224 px)",
            node.epochs * val_before / 3600, node.epochs * val_after / 3600,
            f"before: rank 0 alone, {BEFORE_VAL_IMAGES_PER_S:.0f} img/s in one thread; after: {cores} loader cores "
            f"at {1 / m.val_core_s:.0f} img/s each (P7), or the GPUs' forward if slower"),
        Row(f"final 13-size sweep ({node.val_images:,} images)", sweep_before / 3600, sweep_after / 3600,
            f"before: rank 0, one thread, {BEFORE_SWEEP_S_PER_IMAGE * 1000:.0f} ms per image; after: one decode for "
            f"all sizes, {m.sweep_core_s * 1000:.0f} ms per image per core (P8) over {cores} cores"),
        Row(f"BN calibration, 13 sizes ({node.calibration_images:,} training images per rank)", calib / 3600,
            calib / 3600, f"unchanged by issue 21: each rank in its own process, one pass for all sizes, "
            f"{m.calib_core_s * 1000:.0f} ms per image (P5 data)"),
    ]


def markdown(rows: list[Row]) -> str:
    """The README table."""
    lines = ["| outside training steps (estimate) | before, h | after, h | from |", "|---|---|---|---|"]
    lines += [f"| {r.item} | {r.before_h:.2f} | {r.after_h:.3f} | {r.how} |" for r in rows]
    lines.append(f"| total | {sum(r.before_h for r in rows):.2f} | {sum(r.after_h for r in rows):.2f} | |")
    return "\n".join(lines)


def measure(budget: object = None, node: Node = Node()) -> Figure:
    """P10 from the committed bench.json (``budget`` is unused: nothing is timed)."""
    del budget
    figures = json.loads((RESULTS / "bench.json").read_text())["figures"]
    m = Measured.from_bench(figures)
    rows = hours_outside_training(node, m)
    print(markdown(rows), flush=True)
    return Figure("P10", "ESTIMATE: hours outside training steps, 90-epoch ImageNet run, one 8-GPU node, after "
                  "issue 21 (before in detail)", [sum(r.after_h for r in rows)], unit=" h",
                  detail={"before_h": sum(r.before_h for r in rows), "rows": [asdict(r) for r in rows],
                          "node": asdict(node), "measured_per_core_s": asdict(m),
                          "before_inputs": {"val_images_per_s": BEFORE_VAL_IMAGES_PER_S,
                                            "sweep_s_per_image": BEFORE_SWEEP_S_PER_IMAGE}})
