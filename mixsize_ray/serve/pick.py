"""The ``mixsize-ray pick`` job: curve -> latency -> choice -> exported model (-> check, -> MLflow).

1. :func:`prepare` checks everything cheap first (the limits, ``--sizes``, where ``RUN_OR_CHECKPOINT`` points)
   and loads nothing; the command then checks that the outputs are writable.
2. :func:`run_pick` reads the curve (``sweep.json``, or a sweep computed now), times the model at every
   size (:mod:`~mixsize_ray.serve.latency`; only when a size can still qualify), picks
   (:mod:`~mixsize_ray.serve.selection`), prints the table, exports the model fixed to the size with that
   size's BN statistics (:mod:`~mixsize_ray.serve.export`), checks the exported file's top-1 on the run's
   eval split against the curve, and optionally registers it in MLflow
   (:mod:`~mixsize_ray.serve.registry`).

The accuracy of a size is its BN-calibrated top-1 when the curve has one (the statistics exported with
it), else its top-1 with the model's own statistics (then those are exported).

Example:
    >>> job = prepare(PickRequest("runs/no-such-run"))
    Traceback (most recent call last):
    ...
    mixsize_ray.errors.ConfigError: RUN_OR_CHECKPOINT: expected a checkpoint folder (holding state.pt), a state.pt, or a run folder holding checkpoint_* folders, got 'runs/no-such-run'
    >>> PickRequest("x", out="serve.pt2", export=False)
    Traceback (most recent call last):
    ...
    mixsize_ray.errors.ConfigError: --out: expected no --out with --no-export, got 'serve.pt2'
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from mixsize_ray.core.evaluation import SizeResult, parse_sizes
from mixsize_ray.errors import ConfigError
from mixsize_ray.serve.export import export_fixed_size, fixed_size_model
from mixsize_ray.serve.latency import LatencyPlan, device_name, measure_latency
from mixsize_ray.serve.registry import Registration, register_choice
from mixsize_ray.serve.selection import Candidate, Choice, Constraint, pick_size
from mixsize_ray.serve.source import Curve, Served, ServingSource, load_curve, load_served, resolve_source
from mixsize_ray.serve.table import choice_doc, render_table, summary_line

DEFAULT_OUT = "serve-{size}.pt2"
"""The exported file's name beside the checkpoint when ``--out`` is not given (``{size}`` = the pick)."""
TOLERANCE_POINTS = 0.1
"""How far (percentage points of top-1) the exported model may land from the curve before a warning."""


@dataclass(frozen=True)
class PickRequest:
    """What to pick and what to write.

    Attributes:
        source: ``RUN_OR_CHECKPOINT`` (see :func:`~mixsize_ray.serve.source.resolve_source`).
        constraint: the limits (:class:`~mixsize_ray.serve.selection.Constraint`; default none: best top-1).
        latency: how latency is timed (:class:`~mixsize_ray.serve.latency.LatencyPlan`).
        sizes: evaluate these sizes now instead of reading ``sweep.json`` (``"16,24,32"`` or ``"A:B:STEP"``).
        out: the ``.pt2`` to write; ``{size}`` is replaced by the picked size; default
            ``<checkpoint folder>/serve-{size}.pt2``.
        export: write the exported model (default True).
        verify: score the exported file on the run's eval split at the picked size (default True).
        overrides: ``section.key=value`` on top of the saved config (e.g. ``data.root=...``).
        registration: register the exported model in MLflow (None: do not).
    """

    source: str
    constraint: Constraint = field(default_factory=Constraint)
    latency: LatencyPlan = field(default_factory=LatencyPlan)
    sizes: str | None = None
    out: str | None = None
    export: bool = True
    verify: bool = True
    overrides: tuple[str, ...] = ()
    registration: Registration | None = None

    def __post_init__(self) -> None:
        if self.sizes is not None:
            parse_sizes(self.sizes, field="--sizes")
        if self.out is not None and not self.export:
            raise ConfigError("--out", "no --out with --no-export", self.out)
        if self.registration is not None and not self.export:
            raise ConfigError("--register", "no --register with --no-export", self.registration.name)


@dataclass(frozen=True)
class PickJob:
    """A checked :class:`PickRequest` with its resolved checkpoint."""

    request: PickRequest
    src: ServingSource

    def out_path(self, size: int | str) -> Path | None:
        """Where the model of ``size`` is written (None with ``export=False``)."""
        if not self.request.export:
            return None
        template = self.request.out or str(self.src.checkpoint / DEFAULT_OUT)
        return Path(template.replace("{size}", str(size))).expanduser()


def prepare(request: PickRequest) -> PickJob:
    """Resolve ``request.source`` (paths only). Raises a one-line ConfigError when it names no checkpoint or
    ``out`` is a folder."""
    if request.out is not None and Path(request.out).expanduser().is_dir():
        raise ConfigError("--out", "a file path (its folder must exist), not a folder", request.out)
    return PickJob(request=request, src=resolve_source(request.source))


@dataclass
class PickOutcome:
    """What :func:`run_pick` did: the choice, the device timed on, where the curve came from, the exported
    file (None without export), the exported file's top-1 on the eval split (None without the check), and
    the MLflow model version (None without registration)."""

    choice: Choice
    device: str
    curve_origin: str
    checkpoint: Path
    exported: Path | None = None
    exported_top1: float | None = None
    registered: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return choice_doc(self.choice, {"device": self.device, "curve": self.curve_origin,
                                        "checkpoint": str(self.checkpoint),
                                        "exported": None if self.exported is None else str(self.exported),
                                        "exported_top1": self.exported_top1, "registered": self.registered})


def _accuracy(r: SizeResult) -> float:
    return r.top1_calibrated if r.top1_calibrated is not None else r.top1  # type: ignore[return-value]


def candidates(curve: Curve) -> list[Candidate]:
    """One :class:`Candidate` per curve row (calibrated top-1 when present), not timed yet."""
    return [Candidate(size=r.size, top1=float(_accuracy(r)), gflops=r.gflops) for r in curve.rows
            if _accuracy(r) is not None]


def _stats_for(job: PickJob, curve: Curve, served: Served, size: int):
    """The BN statistics cache holding ``size`` that the curve's accuracy used (None: the model's own)."""
    row = next(r for r in curve.rows if r.size == size)
    if row.top1_calibrated is None:
        return None
    for cache in (curve.cache, served.cache):
        if cache is not None and size in cache:
            return cache
    from mixsize_ray.train.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(job.src.checkpoint, sizes=[size], overrides=list(job.request.overrides),
                               progress=False).cache  # calibrated by the run's rule, as the sweep did


def exported_top1(path: Path, served: Served, size: int) -> float:
    """Top-1 (fraction) of the exported file loaded back with ``torch.export.load`` on the run's eval split
    at ``size``, in batches of ``train.eval_batch_size``."""
    from mixsize_ray.train.data_bundle import DataBundle

    module = torch.export.load(str(path)).module()
    correct = n = 0
    with torch.no_grad():
        for x, y in DataBundle(served.config).eval_batches(size):
            correct += int((module(x).argmax(dim=1) == y).sum())
            n += int(y.shape[0])
    return correct / max(n, 1)


def _timed(job: PickJob, served: Served, cands: list[Candidate]) -> list[Candidate]:
    """``cands`` with their latency; sizes that cannot qualify on GFLOPs alone are still timed (the table
    shows every size), unless no size can qualify at all (then :func:`pick_size` fails first, untimed)."""
    k = job.request.constraint
    if not k.needs_latency:
        pick_size(cands, k)  # no size qualifies: fail before timing anything
    lat = measure_latency(served.model, [c.size for c in cands], job.request.latency)
    return [replace(c, latency_ms=lat[c.size]) for c in cands]


def _print_choice(job: PickJob, curve: Curve, choice: Choice, device: str, echo: Callable[[str], None]) -> None:
    """Where the numbers come from, the limits, the table and the chosen size."""
    req = job.request
    accuracy = "BN-calibrated per size" if curve.rows[0].top1_calibrated is not None else "with the model's BN statistics"
    echo(f"checkpoint: {job.src.checkpoint}")
    echo(f"curve: {curve.origin}; top-1 {accuracy}")
    echo(f"latency: {device}, median of {req.latency.repeats} forwards after {req.latency.warmup} warm-up "
         "forwards, torch.inference_mode")
    echo(f"constraint: {req.constraint.describe()}")
    for line in render_table(choice):
        echo(line)
    echo(summary_line(choice, device))


def _export(job: PickJob, curve: Curve, served: Served, outcome: PickOutcome, echo: Callable[[str], None]):
    """Write the picked size's ``.pt2`` into ``outcome.exported``; return the BN statistics cache it used."""
    picked, k = outcome.choice.picked, job.request.constraint
    size, path = picked.size, job.out_path(outcome.choice.picked.size)
    cache = _stats_for(job, curve, served, size)
    info = {"top1": picked.top1, "gflops": picked.gflops, "checkpoint": str(job.src.checkpoint),
            "bn_statistics": f"calibrated at {size}" if cache is not None else "the model's own",
            "eval_transform": _eval_transform(served, size), "constraint": k.to_dict()}
    outcome.exported = export_fixed_size(fixed_size_model(served.model, cache, size), size, path, info)
    echo(f"wrote {path} (torch.export, size {size}, its BN statistics in the graph; "
         "load with torch.export.load(path).module())")
    return cache


def run_pick(job: PickJob, echo: Callable[[str], None] = print) -> PickOutcome:
    """Run the job (steps in the module doc), printing through ``echo``; see :class:`PickOutcome`.

    Raises:
        ConfigError: no size meets the limits (before anything is written), bad ``sizes``, a checkpoint
            that does not load.
    """
    req = job.request
    curve = load_curve(job.src, req.sizes, list(req.overrides), device=req.latency.device)
    served = load_served(job.src, list(req.overrides))
    choice = pick_size(_timed(job, served, candidates(curve)), req.constraint)
    device = device_name(req.latency.device, req.latency.threads)
    _print_choice(job, curve, choice, device, echo)
    outcome = PickOutcome(choice=choice, device=device, curve_origin=curve.origin, checkpoint=job.src.checkpoint)
    if not req.export:
        return outcome
    cache = _export(job, curve, served, outcome, echo)
    size, top1 = choice.picked.size, choice.picked.top1
    if req.verify:
        assert outcome.exported is not None
        outcome.exported_top1 = exported_top1(outcome.exported, served, size)
        gap = 100 * abs(outcome.exported_top1 - top1)
        echo(f"check: the exported model scores {100 * outcome.exported_top1:.2f} % top-1 at {size} on the eval "
             f"split (curve {100 * top1:.2f} %, {gap:.2f} points apart)"
             + ("" if gap <= TOLERANCE_POINTS else f"; WARNING: more than {TOLERANCE_POINTS} points"))
    if req.registration is not None:
        outcome.registered = register_choice(req.registration, outcome.to_dict(), served.model, cache)
        r = outcome.registered
        echo(f"registered {r['name']} version {r['version']} as @{r['alias']} (run {r['run_id']})")
    return outcome


def _eval_transform(served: Served, size: int) -> dict[str, Any]:
    """How images reach the exported model: the run's eval transform at ``size`` and its normalisation."""
    from mixsize_ray.train.data_bundle import resolve_data

    info, mean, std = resolve_data(served.config)
    rule = (f"resize the {info.native_resolution}-px image to {size}" if info.style == "cifar"
            else f"resize the short side to {int(8 / 7 * size)}, center crop {size}")
    return {"style": info.style, "rule": rule, "mean": list(mean), "std": list(std), "dataset": served.config.data.name}


def write_json(outcome: PickOutcome, path: str | Path) -> Path:
    """The outcome's document (:meth:`PickOutcome.to_dict`) as JSON at ``path``."""
    Path(path).write_text(json.dumps(outcome.to_dict(), indent=2) + "\n")
    return Path(path)
