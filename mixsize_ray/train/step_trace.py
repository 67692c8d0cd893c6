"""Per-step time and peak memory of one rank's training, and the time of each phase around it: what
``benchmarks/gpu_check.py`` reads back from a run that :func:`~mixsize_ray.train.launch.launch` trained
with ``train.step_trace: true``.

:meth:`StepTrace.attach` puts a trace between a :class:`~mixsize_ray.train.loop.TrainingLoop` and its live
metrics (every step's :class:`~mixsize_ray.train.live_metrics.StepTiming` passes through it, then on to
``loop.live``) and times the loop's phases :data:`PHASES` (a device sync before and after each). A step
lasts from the end of the previous step (or the start of the phase it runs in: the first step of an epoch
holds the loader's start) to its own end: on CUDA two events on the device's stream, so the kernels' time,
a wait for the next batch included (``wait``: the host seconds the loop waited for it); on CPU
``perf_counter``. ``peak_bytes`` is ``torch.cuda.max_memory_allocated`` since the previous step (reset after
each; None on CPU); ``new_graphs`` the dynamo graphs compiled during the step (``train.compile``; else None).
A step costs one event record and two allocator reads, no host sync; the events are read once, by
:meth:`StepTrace.to_dict`. The worker (rank 0) writes it as :data:`STEP_TRACE_JSON` into the last checkpoint.

Example:
    >>> trace = StepTrace("cpu")
    >>> with trace.phase("train_epoch"):
    ...     trace.step(StepTiming(size=16, seconds=0.01, images=8, wait=0.001))
    ...     trace.step(StepTiming(size=32, seconds=0.02, images=4, wait=0.0))
    >>> doc = trace.to_dict()
    >>> [(s["size"], s["images"], s["epoch_first"]) for s in doc["steps"]], [p["name"] for p in doc["phases"]]
    ([(16, 8, True), (32, 4, False)], ['train_epoch'])
    >>> all(s["seconds"] >= 0 and s["peak_bytes"] is None for s in doc["steps"])
    True
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from mixsize_ray.train.live_metrics import Progress, StepTiming

STEP_TRACE_JSON = "step_trace.json"
PHASES = ("warmup", "train_epoch", "validate", "calibrate", "sweep")
"""The :class:`~mixsize_ray.train.loop.TrainingLoop` methods :meth:`StepTrace.attach` times."""


@dataclass
class TracedStep:
    """One step: ``size`` (px), ``images`` (views on this rank), ``wait`` and ``host`` (the loop's host
    seconds waiting for the batch / for the whole step), ``peak_bytes``, ``new_graphs``, ``epoch_first``
    (the first step of its phase), and ``seconds`` (filled in by :meth:`StepTrace.to_dict`)."""

    size: int
    images: int
    wait: float
    host: float
    peak_bytes: int | None
    new_graphs: int | None
    epoch_first: bool
    seconds: float | None = None


class StepTrace:
    """The step and phase record of one rank on ``device``; ``then`` receives every live-metrics call
    after it (``loop.live`` before :meth:`attach`), ``compiled`` counts dynamo graphs per step."""

    def __init__(self, device: torch.device | str, then: Any = None, compiled: bool = False):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.then = then
        self.compiled = compiled
        self.context: dict[str, Any] = {}  # what ran: set by attach
        self.steps: list[TracedStep] = []
        self.phases: list[dict[str, Any]] = []
        self._marks: list[tuple[Any, Any]] = []  # (start, end) clock marks of each step
        self._mark: Any = None  # where the next step starts
        self._first = True
        self._graphs_at = self._graphs()
        self._t0 = time.perf_counter()

    @classmethod
    def attach(cls, loop: Any) -> StepTrace:
        """Trace ``loop`` (a :class:`~mixsize_ray.train.loop.TrainingLoop`): its steps through ``loop.live``
        and its :data:`PHASES`, each wrapped on this instance (the class is untouched). Returns the trace,
        which is ``loop.live`` from now on; its ``context`` names the loop's class, the model's (e.g.
        ``DistributedDataParallel``), rank, world size, process-group backend and precision."""
        trace = cls(loop.device, then=loop.live, compiled=bool(loop.cfg.train.compile))
        trace.context = {"loop": f"{type(loop).__module__}.{type(loop).__qualname__}",
                         "model": type(loop.model).__name__, "rank": loop.rank, "world_size": loop.world_size,
                         "backend": dist.get_backend() if dist.is_available() and dist.is_initialized() else None,
                         "amp": loop.precision.amp, "channels_last": loop.channels_last}
        for name in PHASES:
            setattr(loop, name, trace.timed(name, getattr(loop, name)))
        loop.live = trace
        return trace

    # ---- the live-metrics interface (TrainingLoop.live) ------------------------------------------------
    def step(self, timing: StepTiming) -> None:
        """Close the running step: its end mark, peak memory and new graphs; pass ``timing`` on."""
        end = self._now()
        peak = None
        if self.cuda:
            peak = int(torch.cuda.max_memory_allocated(self.device))
            torch.cuda.reset_peak_memory_stats(self.device)
        graphs = self._graphs()
        new = None if graphs is None or self._graphs_at is None else graphs - self._graphs_at
        self._graphs_at = graphs
        self.steps.append(TracedStep(int(timing.size), int(timing.images), float(timing.wait), float(timing.seconds),
                                     peak, new, self._first))
        self._marks.append((self._mark, end))
        self._mark, self._first = end, False
        if self.then is not None:
            self.then.step(timing)

    def flush(self, progress: Progress) -> None:
        if self.then is not None:
            self.then.flush(progress)

    def calibration(self, seconds: float) -> None:
        if self.then is not None:
            self.then.calibration(seconds)

    # ---- phases ----------------------------------------------------------------------------------------
    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time the block as phase ``name`` (device synced at both ends); its first step starts here."""
        self._sync()
        t0 = time.perf_counter()
        self._mark, self._first = self._now(), True
        self._graphs_at = self._graphs()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            yield
        finally:
            self._sync()
            self.phases.append({"name": name, "start": t0 - self._t0, "seconds": time.perf_counter() - t0})

    def timed(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` run as phase ``name``."""
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name):
                return fn(*args, **kwargs)
        return run

    # ---- output ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Steps (with ``seconds``) and phases as plain data; reads the CUDA events (one sync)."""
        self._sync()
        for st, (start, end) in zip(self.steps, self._marks, strict=True):
            if st.seconds is None:
                st.seconds = (start.elapsed_time(end) / 1e3 if self.cuda else end - start) if start is not None \
                    else st.host
        return {**self.context, "device": str(self.device),
                "clock": "cuda events on the current stream" if self.cuda else "perf_counter",
                "steps": [asdict(s) for s in self.steps], "phases": list(self.phases)}

    def save(self, folder: str | Path) -> Path:
        """Write :meth:`to_dict` to ``folder/step_trace.json``."""
        path = Path(folder) / STEP_TRACE_JSON
        path.write_text(json.dumps(self.to_dict()))
        return path

    # ---- clocks ----------------------------------------------------------------------------------------
    def _now(self) -> Any:
        if not self.cuda:
            return time.perf_counter()
        ev = torch.cuda.Event(enable_timing=True)
        ev.record(torch.cuda.current_stream(self.device))
        return ev

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def _graphs(self) -> int | None:
        if not self.compiled:
            return None
        from torch._dynamo.utils import counters

        return int(counters["stats"]["unique_graphs"])
