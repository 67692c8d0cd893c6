"""`make gpu-check`: the product on a GPU. Does S(144) D+ cost what fixed-224 costs per step, with the code
users run?

What a GPU run does (CUDA present; every number below is a default):

1. Writes ImageNet-shaped synthetic JPEGs (:mod:`benchmarks.jpeg_imagefolder`: 500 x 375 px, ~60 KB, no
   signal) in the ImageFolder layout: 100 classes, 20,500 training images (B0 x steps per epoch) and 2,500
   validation images, into a temporary folder (``--data-dir`` keeps and reuses them).
2. Starts one local Ray cluster and, for ``search_spaces/imagenet_s144_dplus.yaml`` then
   ``imagenet_fixed.yaml``, calls :func:`mixsize_ray.train.launch.launch` with ``--set``-style overrides
   (listed in the JSON): ResNet-50 with 1000 classes, B0 256, ``ray.use_gpu``, one worker per visible GPU
   (DDP when more than one; nccl), 2 epochs of 80 steps, validation at 224 px, BN calibration (2 batches)
   and the size sweep at 96/128/224/256 px, no MLflow, ``train.step_trace: true``. Each run is preflight,
   Ray Train's TorchTrainer and :class:`~mixsize_ray.train.loop.TrainingLoop` (its warm-up, bf16 autocast
   and channels_last by ``auto``), as ``mixsize-ray train`` runs it.
3. Reads rank 0's step trace from the run's last checkpoint (:mod:`mixsize_ray.train.step_trace`) and
   reports, per size: median step time (CUDA events, waiting for the batch included) and its compute part,
   the data wait, peak memory (``max_memory_allocated`` per step), re-tunes (:mod:`benchmarks.step_stats`)
   and, with ``--compile``, recompiles; per regime: achieved TFLOP/s and MFU against the card's peak dense
   bf16 (:mod:`benchmarks.gpu_peaks`; FLOPs per step by ``FlopCounterMode`` on the meta device, once per
   shape), evaluation images/s (validation; the sweep), and where the wall time of ``launch()`` went
   (share outside training steps); and the D+/fixed step-time ratio sum_i p_i * median_i / median_fixed.

Targets (GPU mode; the exit code is 1 and one line names every miss): D+/fixed step time <= 1.05; no
re-tune (and with ``--compile`` no recompile) after the warm-up; every size of the table trained. The step
time is the user's: when the loader cannot keep up, the miss says how much of the step was data wait and
what the ratio is without it.

Run:
    make gpu-check                                      # GPU: benchmarks/results/gpu_check.json
    make gpu-check GPU_CHECK_ARGS="--steps 320 --compile"
    python -m benchmarks.gpu_check --smoke              # anywhere: benchmarks/results/gpu_check-quick.json

Without CUDA, or with ``--smoke``, the very same path runs tiny on CPU ("mode": "smoke"; part of ``make
test``): the same presets, sizes and sweep on 4 classes of 4 + 2 JPEGs, ResNet-18, B0 4, 2 epochs of 4
steps, 1 worker (``--workers 2``: DDP on gloo), no loader workers. Smoke numbers check the path; its
targets are reported, not enforced, and peak memory is null (no CUDA allocator).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_flops import step_flops
from benchmarks.common import RESULTS, machine, write_result
from benchmarks.gpu_peaks import lookup_peak
from benchmarks.jpeg_imagefolder import JpegSpec, write_imagefolder
from benchmarks.step_stats import Shape, phase_seconds, size_rows, wall_split, weighted
from mixsize_ray.config import Config, load_config
from mixsize_ray.errors import ConfigError, RunFailed, one_line
from mixsize_ray.models import build_model
from mixsize_ray.train import launch as launch_module
from mixsize_ray.train.step_trace import STEP_TRACE_JSON

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"dplus": "search_spaces/imagenet_s144_dplus.yaml", "fixed": "search_spaces/imagenet_fixed.yaml"}
RATIO_TARGET = 1.05
EPOCHS = 2  # an epoch boundary (loader restart, checkpoint) is part of what users run


@dataclass(frozen=True)
class Mode:
    """What a mode trains: model, classes (None: the folders'), B0, steps per regime, JPEG classes and
    validation images per class, evaluation batch, calibration batches, and the seed (``train.seed``; the
    smoke's seed 1 draws every size of the S(144) table within its 8 steps, seed 0 misses 96 px)."""

    name: str
    model: str
    num_classes: int | None
    base_batch: int
    steps: int
    classes: int
    val_per_class: int
    eval_batch: int
    calibrate_batches: int
    seed: int


GPU = Mode("gpu", "resnet50", 1000, 256, 160, 100, 25, 256, 2, 0)
SMOKE = Mode("smoke", "resnet18", None, 4, 8, 4, 2, 8, 1, 1)


@dataclass(frozen=True)
class Options:
    """Parsed command line; ``smoke`` is already True when CUDA is missing."""

    smoke: bool
    base_batch: int
    steps: int
    workers: int
    compile: bool
    peak_tflops: float | None
    out: Path
    data_dir: Path | None
    runs_dir: Path | None
    seed: int = 0

    @property
    def mode(self) -> Mode:
        return SMOKE if self.smoke else GPU


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line naming the flag, exit 2 (no usage block)
        self.exit(2, f"gpu_check: error: {message}\n")


def _positive(kind: type) -> Callable[[str], Any]:
    what = "an integer > 0" if kind is int else "a number > 0"

    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (v > 0 and math.isfinite(v)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return v
    return parse


def parse_options(argv: list[str] | None) -> Options:
    p = _Parser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny CPU run of the same path (forced without CUDA)")
    p.add_argument("--base-batch", type=_positive(int), default=None, help="B0 (default 256; smoke 4: the smallest whose 256 px entry fits the budget)")
    p.add_argument("--steps", type=_positive(int), default=None,
                   help=f"training steps per regime, over {EPOCHS} epochs (default 160; smoke 8)")
    p.add_argument("--workers", type=_positive(int), default=None,
                   help="Ray Train workers (default: every visible GPU; smoke 1)")
    p.add_argument("--compile", action="store_true", help="train.compile: count recompiles (default: off)")
    p.add_argument("--peak-tflops", type=_positive(float), default=None,
                   help="the card's peak dense bf16 TFLOP/s for MFU (default: looked up by device name)")
    p.add_argument("--out", type=Path, default=None,
                   help="result JSON (default benchmarks/results/gpu_check.json; smoke: gpu_check-quick.json)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where the JPEGs go, kept and reused (default: a temporary folder, removed)")
    p.add_argument("--runs-dir", type=Path, default=None,
                   help="train.output_dir of the two runs, kept (default: a temporary folder, removed)")
    p.add_argument("--seed", type=int, default=None, help="train.seed (default 0; smoke 1)")
    a = p.parse_args(argv)
    smoke = a.smoke or not torch.cuda.is_available()
    mode = SMOKE if smoke else GPU
    workers = a.workers or (1 if smoke else torch.cuda.device_count())
    out = a.out or RESULTS / ("gpu_check-quick.json" if smoke else "gpu_check.json")
    return Options(smoke, a.base_batch or mode.base_batch, a.steps or mode.steps, workers, a.compile,
                   a.peak_tflops, out, a.data_dir, a.runs_dir, mode.seed if a.seed is None else a.seed)


# ---- what runs ---------------------------------------------------------------------------------------------
def jpeg_spec(opts: Options) -> JpegSpec:
    """Enough training images for one epoch of ``steps / EPOCHS`` steps of B0 images."""
    m = opts.mode
    per_class = math.ceil(math.ceil(opts.steps / EPOCHS) * opts.base_batch / m.classes)
    return JpegSpec(m.classes, per_class, m.val_per_class, seed=opts.seed)


def overrides(opts: Options, data_root: Path, runs_dir: Path, name: str, sweep: list[int]) -> list[str]:
    """The ``--set`` values a regime's preset runs with (the preset's regime and optimizer are kept; its LR
    milestones, at epochs 30/60/80, are dropped for a 2-epoch run)."""
    m, gpu = opts.mode, not opts.smoke
    cpus = os.cpu_count() or 2
    per_worker = max(2, cpus // opts.workers)
    return [
        f"data.root={data_root}", "data.train_size=null", "data.test_size=null",
        f"data.num_workers={max(1, per_worker - 2) if gpu else 0}",
        f"model.name={m.model}", f"model.num_classes={'null' if m.num_classes is None else m.num_classes}",
        f"regime.base_batch={opts.base_batch}", "optim.milestone_epochs=null",
        f"train.name={name}", f"train.output_dir={runs_dir}", f"train.seed={opts.seed}",
        f"train.epochs={EPOCHS}", f"train.max_steps_per_epoch={math.ceil(opts.steps / EPOCHS)}",
        f"train.eval_every={EPOCHS}", f"train.sweep_sizes={sweep}", f"train.eval_batch_size={m.eval_batch}",
        f"train.calibrate_batches={m.calibrate_batches}", f"train.compile={str(opts.compile).lower()}",
        "train.step_trace=true", "train.num_to_keep=1", "train.max_failures=0", "tracking.enabled=false",
        f"ray.num_workers={opts.workers}", f"ray.use_gpu={str(gpu).lower()}",
        f"ray.cpus_per_worker={2 if gpu else 1}",
    ]


def check_tables(opts: Options, spec: JpegSpec) -> None:
    """Solve both presets' tables for B0, the workers and the JPEG count before anything starts: a B0 the
    solver cannot fit is a one-line :class:`ConfigError` naming ``--base-batch`` (``launch()`` would refuse
    it the same way, after Ray's start)."""
    from mixsize_ray.core.regime import regime_from_config

    for name, preset in PRESETS.items():
        try:
            cfg = load_config(ROOT / preset, [f"regime.base_batch={opts.base_batch}", f"ray.num_workers={opts.workers}"])
            regime_from_config(cfg, world_size=opts.workers, num_images=spec.train_images).solve()
        except ConfigError as e:
            raise ConfigError("--base-batch", f"a B0 that {name}'s table can be solved for with {opts.workers} "
                              "worker(s)", opts.base_batch, hint=one_line(e, 200)) from None


def shapes_and_flops(cfg: Config, table: Any, world: int) -> tuple[list[Shape], dict[int, int]]:
    """The table as :class:`Shape` rows and one rank's forward+backward FLOPs per shape (meta device)."""
    shapes = [Shape(e.size, e.batch, e.duplicates, e.step_share, e.batch // world * e.duplicates)
              for e in table.entries]
    classes = cfg.model.num_classes or table_classes(cfg)
    with torch.device("meta"):
        model = build_model(cfg.model.name, classes)
        flops = {s.size: step_flops(model, s.size, s.rows, s.duplicates, classes) for s in shapes}
    return shapes, flops


def table_classes(cfg: Config) -> int:
    from mixsize_ray.data.datasets import dataset_info

    return dataset_info(cfg.data.name, cfg.data.root).num_classes


def run_regime(name: str, opts: Options, data_root: Path, runs_dir: Path, spec: JpegSpec,
               sweep: list[int]) -> dict[str, Any]:
    """``launch()`` one preset; its numbers from the step trace the worker left in the last checkpoint."""
    sets = overrides(opts, data_root, runs_dir, f"gpu-check-{name}-{time.strftime('%Y%m%d-%H%M%S')}", sweep)
    cfg = load_config(ROOT / PRESETS[name], sets)
    t0 = time.perf_counter()
    result = launch_module.launch(cfg)
    wall = time.perf_counter() - t0
    trace_path = Path(result.checkpoint or "") / STEP_TRACE_JSON
    if not trace_path.is_file():
        raise RunFailed(f"{name}: the run left no {STEP_TRACE_JSON} in its checkpoint {result.checkpoint}",
                        "train.step_trace was not honoured by the worker")
    trace = json.loads(trace_path.read_text())
    shapes, flops = shapes_and_flops(cfg, result.preflight.table, opts.workers)
    rows = size_rows(trace, shapes, flops)
    phases = phase_seconds(trace)
    n_val = spec.val_images
    val_s, sweep_s = phases.get("validate"), phases.get("sweep")
    wms = weighted(rows, "median_ms")
    return {
        "preset": PRESETS[name], "overrides": sets,
        "launch": {"entry": f"{launch_module.__name__}.launch", "run_dir": result.run_dir,
                   "checkpoint": result.checkpoint, "trained": result.trained, "wall_s": wall},
        "ran": {k: trace.get(k) for k in ("loop", "model", "world_size", "backend", "amp", "channels_last",
                                          "device", "clock")},
        "phases_traced": sorted(phases),
        "metrics": {k: result.metrics[k] for k in ("epoch", "step", "steps", "loss", "val_top1", "images_per_s")
                    if k in result.metrics},
        "model": cfg.model.name, "base_batch": cfg.regime.base_batch, "sizes": rows,
        "weighted_ms": wms, "compute_weighted_ms": weighted(rows, "compute_median_ms"),
        "achieved_tflops_per_rank": (weighted(rows, "flops_per_step") / (wms / 1e3) / 1e12) if wms else None,
        "eval": {"images": n_val, "validate_s": val_s, "validate_images_per_s": n_val / val_s if val_s else None,
                 "sweep_sizes": sweep, "sweep_s": sweep_s,
                 "sweep_images_per_s": n_val / sweep_s if sweep_s else None,
                 "sweep_image_sizes_per_s": n_val * len(sweep) / sweep_s if sweep_s else None,
                 "calibrate_s": phases.get("calibrate")},
        "wall": wall_split(trace, wall),
    }


# ---- summary and targets -----------------------------------------------------------------------------------
def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def step_ratio(dplus: dict[str, Any], fixed: dict[str, Any]) -> dict[str, Any]:
    value = _ratio(dplus["weighted_ms"], fixed["weighted_ms"])
    return {"dplus_over_fixed": value, "target": RATIO_TARGET,
            "compute_dplus_over_fixed": _ratio(dplus["compute_weighted_ms"], fixed["compute_weighted_ms"]),
            "holds": value is not None and value <= RATIO_TARGET}


def mfu(opts: Options, regimes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """MFU = one rank's achieved FLOP/s over the card's peak dense bf16 FLOP/s."""
    if opts.peak_tflops is not None:
        peak, source = opts.peak_tflops, "--peak-tflops"
    elif not torch.cuda.is_available():
        peak, source = None, "no CUDA device (CPU run): pass --peak-tflops for a number"
    else:
        peak, source = lookup_peak(torch.cuda.get_device_name(0))
    out: dict[str, Any] = {"peak_tflops": peak, "source": source}
    for name, r in regimes.items():
        achieved = r["achieved_tflops_per_rank"]
        out[name] = achieved / peak if peak and achieved is not None else None
    return out


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its value and whether it holds."""
    regs = doc["regimes"]
    rows = [(n, r) for n, reg in regs.items() for r in reg["sizes"]]
    ratio = doc["ratio"]
    out = [{"name": "D+/fixed step time", "value": ratio["dplus_over_fixed"], "target": f"<= {RATIO_TARGET}",
            "holds": ratio["holds"]},
           {"name": "re-tunes after warm-up", "value": sum(r["retunes"] or 0 for _, r in rows), "target": "0",
            "where": [f"{n} {r['size']} px: {r['retunes']}" for n, r in rows if r["retunes"]]},
           {"name": "sizes never trained", "value": sum(r["steps"] == 0 for _, r in rows), "target": "0",
            "where": [f"{n} {r['size']} px" for n, r in rows if r["steps"] == 0]}]
    if doc["compile"]:
        out.append({"name": "recompiles after warm-up", "value": sum(r["recompiles"] or 0 for _, r in rows),
                    "target": "0", "where": [f"{n} {r['size']} px: {r['recompiles']}" for n, r in rows
                                             if r["recompiles"]]})
    for t in out[1:]:
        t["holds"] = t["value"] == 0
    return out


def missed_line(doc: dict[str, Any]) -> str | None:
    """One line naming every missed target (None: all hold)."""
    parts = []
    for t in doc["targets"]:
        if t["holds"]:
            continue
        if t["name"] == "D+/fixed step time":
            w = {n: doc["regimes"][n]["wall"]["data_wait_share_of_steps"] for n in ("dplus", "fixed")}
            value = "not measured" if t["value"] is None else f"{t['value']:.3f}"
            extra = "" if None in w.values() else (
                f" (data wait: D+ {100 * w['dplus']:.0f}%, fixed {100 * w['fixed']:.0f}% of step time; "
                f"compute-only ratio {_fmt(doc['ratio']['compute_dplus_over_fixed'], '.3f')})")
            parts.append(f"D+/fixed step time {value} > {RATIO_TARGET}{extra}")
        else:
            parts.append(f"{t['name']} {t['value']} ({', '.join(t.get('where', []))})")
    return "; ".join(parts) or None


# ---- the report --------------------------------------------------------------------------------------------
def _fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def format_report(doc: dict[str, Any]) -> str:
    ran = doc["regimes"]["dplus"]["ran"]
    lines = [f"gpu_check ({doc['mode']}) on {doc['device']}: launch() -> TorchTrainer ({ran['backend']}, "
             f"{ran['world_size']} worker(s), model {ran['model']}) -> {ran['loop']}; amp {ran['amp']}, "
             f"channels_last {ran['channels_last']}, compile {doc['compile']}, B0 {doc['base_batch']}",
             f"{'regime':>6} {'size':>5} {'B':>5} {'D':>3} {'p':>5} {'steps':>5} {'median ms':>10} "
             f"{'compute':>8} {'wait':>7} {'peak MiB':>9} {'re-tunes':>8} {'TFLOP/s':>8}"]
    for name in ("dplus", "fixed"):
        for r in doc["regimes"][name]["sizes"]:
            lines.append(f"{name:>6} {r['size']:>5} {r['batch']:>5} {r['duplicates']:>3} {r['step_share']:>5.2f} "
                         f"{r['steps']:>5} {_fmt(r['median_ms'], '10.2f')} {_fmt(r['compute_median_ms'], '8.2f')} "
                         f"{_fmt(r['wait_median_ms'], '7.2f')} {_fmt(r['peak_mib'], '9.0f')} "
                         f"{_fmt(r['retunes'], '8d')} {_fmt(r['tflops'], '8.3f')}")
    ratio, m = doc["ratio"], doc["mfu"]
    lines.append(f"D+/fixed step time: {_fmt(ratio['dplus_over_fixed'], '.3f')} (target <= {RATIO_TARGET}; "
                 f"compute only {_fmt(ratio['compute_dplus_over_fixed'], '.3f')})"
                 + " [smoke: not meaningful]" * doc["smoke"])
    if m["peak_tflops"]:
        lines.append(f"MFU: D+ {_fmt(m['dplus'] and 100 * m['dplus'], '.1f')}%, fixed "
                     f"{_fmt(m['fixed'] and 100 * m['fixed'], '.1f')}% of {m['peak_tflops']:g} TFLOP/s ({m['source']})")
    else:
        lines.append(f"MFU: null ({m['source']})")
    for name in ("dplus", "fixed"):
        e, w = doc["regimes"][name]["eval"], doc["regimes"][name]["wall"]
        lines.append(f"{name}: eval {_fmt(e['validate_images_per_s'], '.0f')} img/s (validation), sweep "
                     f"{_fmt(e['sweep_image_sizes_per_s'], '.0f')} image-sizes/s; wall {w['wall_s']:.0f} s, "
                     f"{100 * w['outside_steps_share']:.0f}% outside training steps (warm-up {w['warmup_s']:.1f} s, "
                     f"eval {w['validate_s'] + w['calibrate_s'] + w['sweep_s']:.1f} s, other {w['other_s']:.1f} s), "
                     f"data wait {_fmt(w['data_wait_share_of_steps'] and 100 * w['data_wait_share_of_steps'], '.0f')}%"
                     " of step time")
    missed = doc["missed"]
    verdict = "all targets hold" if not missed else f"MISSED: {missed}"
    lines.append(f"{verdict}{' (smoke: reported, not enforced)' * doc['smoke']}; total {doc['seconds']:.0f} s")
    return "\n".join(lines)


def save(doc: dict[str, Any], out: Path) -> Path:
    """benchmarks/results/gpu_check.json through write_result; any other path with the same layout."""
    if out.resolve() == (RESULTS / "gpu_check.json").resolve():
        return write_result("gpu_check", doc)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "gpu_check", "machine": machine(), **doc}, indent=2))
    print(f"[bench] wrote {out}")
    return out


# ---- main --------------------------------------------------------------------------------------------------
def run(opts: Options) -> dict[str, Any]:
    from mixsize_ray.train.cluster import ClusterRequest, connect, disconnect

    t0 = time.perf_counter()
    spec = jpeg_spec(opts)
    check_tables(opts, spec)
    temps = [Path(tempfile.mkdtemp(prefix=f"gpu-check-{what}-")) for what, given in
             (("data", opts.data_dir), ("runs", opts.runs_dir)) if given is None]
    data_root = opts.data_dir or temps[0]
    runs_dir = opts.runs_dir or temps[-1]
    try:
        write_imagefolder(data_root, spec, workers=1 if opts.smoke else (os.cpu_count() or 1))
        sweep = sorted(load_config(ROOT / PRESETS["dplus"]).regime.sizes)
        # one cluster for both runs (launch() joins it: the path of `mixsize-ray train` with RAY_ADDRESS)
        started = connect(ClusterRequest(None, num_cpus=os.cpu_count() or 1, quiet=True))
        try:
            regimes = {name: run_regime(name, opts, data_root, runs_dir, spec, sweep) for name in PRESETS}
        finally:
            if started:
                disconnect()
    finally:
        for d in temps:
            shutil.rmtree(d, ignore_errors=True)
    doc: dict[str, Any] = {
        "mode": SMOKE.name if opts.smoke else GPU.name, "smoke": opts.smoke,
        "device": torch.cuda.get_device_name(0) if not opts.smoke else "cpu",
        "workers": opts.workers, "compile": opts.compile, "base_batch": opts.base_batch, "steps": opts.steps,
        "epochs": EPOCHS, "data": {"kind": "synthetic ImageNet-shaped JPEGs, ImageFolder layout", **asdict(spec),
                                   "train_images": spec.train_images, "val_images": spec.val_images},
        "retune_rule": "a step (not its epoch's first) whose compute time exceeds 3x its size's median",
        "regimes": regimes, "ratio": step_ratio(regimes["dplus"], regimes["fixed"]), "mfu": mfu(opts, regimes),
    }
    doc["targets"] = targets(doc)
    doc["missed"] = missed_line(doc)
    doc["seconds"] = time.perf_counter() - t0
    return doc


def main(argv: list[str] | None = None) -> int:
    opts = parse_options(argv)
    try:
        doc = run(opts)
    except ConfigError as e:  # e.g. a B0 the solver cannot fit, or not a multiple of the workers
        print(f"gpu_check: error: {one_line(e, 300)}", file=sys.stderr)
        return 2
    except RunFailed as e:
        print(f"gpu_check: FAILED: the run failed: {one_line(e, 300)}", file=sys.stderr)
        return 1
    print(format_report(doc))
    save(doc, opts.out)
    if doc["missed"] and not opts.smoke:
        print(f"gpu_check: FAILED targets: {doc['missed']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # through the importable module, so pickled references resolve to benchmarks.gpu_check, not __main__
    from benchmarks.gpu_check import main as _main

    sys.exit(_main())
