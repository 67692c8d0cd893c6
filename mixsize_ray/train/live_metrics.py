"""Live MixSize metrics from a training worker, through ``ray.util.metrics`` (names in
:mod:`mixsize_ray.train.live_names`).

:class:`LiveMetrics` keeps each step's host numbers (size, seconds, images, data wait) in a list and sends
them at the loop's progress reads (every ``log_every`` steps and at the epoch's end), so a step costs one
list append and no device sync; Ray's metrics agent exports what it has every few seconds anyway.

Example (a recording stand-in for ``ray.util.metrics``):
    >>> class Rec:
    ...     def __init__(self, name, description="", tag_keys=None, boundaries=None):
    ...         self.name, self.calls = name, []
    ...     def inc(self, value=1.0, tags=None): self.calls.append((value, tags))
    ...     def set(self, value, tags=None): self.calls.append((value, tags))
    ...     def observe(self, value, tags=None): self.calls.append((value, tags))
    >>> import types
    >>> live = LiveMetrics(LiveRun("demo", rank=0), types.SimpleNamespace(Counter=Rec, Gauge=Rec, Histogram=Rec))
    >>> live.step(StepTiming(size=16, seconds=0.2, images=64, wait=0.01))
    >>> live.step(StepTiming(size=32, seconds=0.2, images=16, wait=0.0))
    >>> live.step(StepTiming(size=16, seconds=0.3, images=64, wait=0.02))
    >>> live.flush(Progress(grad_norm=2.0, grad_norm_smoothed=1.5, realised_budget=1.0))
    >>> sorted((t["size"], v) for v, t in live.metric("mixsize_steps").calls)
    [('16', 2.0), ('32', 1.0)]
    >>> live.metric("mixsize_current_size").calls
    [(16, {'run': 'demo', 'rank': '0'})]
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from mixsize_ray.train import live_names as names


@dataclass(frozen=True)
class LiveRun:
    """Whose metrics: the run (``train.name``) and this worker's rank (rank 0 also sends run-wide values)."""

    run: str
    rank: int


@dataclass(frozen=True)
class StepTiming:
    """One training step on this rank: image ``size`` (px), host ``seconds`` since the previous step ended
    (``wait`` of them spent waiting for the batch), ``images`` fed (views: batch x duplicates)."""

    size: int
    seconds: float
    images: int
    wait: float


@dataclass(frozen=True)
class Progress:
    """Run-wide values at a progress read (None: not known, e.g. without gradient smoothing)."""

    grad_norm: float | None = None
    grad_norm_smoothed: float | None = None
    realised_budget: float | None = None


def _ray_metrics() -> Any:
    import ray.util.metrics

    return ray.util.metrics


class LiveMetrics:
    """The live metrics of one worker; ``factory`` provides ``Counter``, ``Gauge`` and ``Histogram`` (default:
    ``ray.util.metrics``, which needs a Ray worker or driver)."""

    def __init__(self, who: LiveRun, factory: Any = None):
        factory = factory or _ray_metrics()
        self.who = who
        self._tags = {names.RUN: who.run, names.RANK: str(who.rank)}
        self._metrics: dict[str, Any] = {}
        for m in names.ALL:
            kind = {"counter": factory.Counter, "gauge": factory.Gauge, "histogram": factory.Histogram}[m.kind]
            kwargs = {"boundaries": list(m.boundaries)} if m.kind == "histogram" else {}
            self._metrics[m.name] = kind(m.name, description=m.description, tag_keys=m.tags, **kwargs)
        self._pending: list[StepTiming] = []

    def metric(self, name: str) -> Any:
        """The ``ray.util.metrics`` object of ``name``."""
        return self._metrics[name]

    def _tags_of(self, m: names.LiveMetric, size: int | None = None) -> dict[str, str]:
        tags = {k: v for k, v in self._tags.items() if k in m.tags}
        if size is not None:
            tags[names.SIZE] = str(int(size))
        return tags

    def start(self, target_shares: dict[int, float]) -> None:
        """The regime's expected share of steps per size (rank 0 only sends it)."""
        if self.who.rank != 0:
            return
        m = names.TARGET_SHARE
        for size, share in target_shares.items():
            self.metric(m.name).set(float(share), tags=self._tags_of(m, size))

    def step(self, timing: StepTiming) -> None:
        """Keep one step's numbers until the next :meth:`flush` (host values only)."""
        self._pending.append(timing)

    def flush(self, progress: Progress) -> None:
        """Send the kept steps (counters by size, one histogram observation per step) and ``progress``."""
        steps: dict[int, int] = defaultdict(int)
        images: dict[int, int] = defaultdict(int)
        wait = 0.0
        hist = self.metric(names.STEP_SECONDS.name)
        for t in self._pending:
            steps[t.size] += 1
            images[t.size] += t.images
            wait += t.wait
            hist.observe(t.seconds, tags=self._tags_of(names.STEP_SECONDS, t.size))
        for size, n in steps.items():
            self.metric(names.STEPS.name).inc(float(n), tags=self._tags_of(names.STEPS, size))
            self.metric(names.IMAGES.name).inc(float(images[size]), tags=self._tags_of(names.IMAGES, size))
        if self._pending:
            if wait > 0:
                self.metric(names.LOADER_WAIT.name).inc(wait, tags=self._tags_of(names.LOADER_WAIT))
            last = self._pending[-1].size
            self.metric(names.CURRENT_SIZE.name).set(last, tags=self._tags_of(names.CURRENT_SIZE))
        self._pending = []
        if self.who.rank != 0:
            return
        for m, v in ((names.GRAD_NORM, progress.grad_norm), (names.GRAD_NORM_SMOOTHED, progress.grad_norm_smoothed),
                     (names.REALISED_BUDGET, progress.realised_budget)):
            if v is not None and v == v:  # NaN: not known yet
                self.metric(m.name).set(float(v), tags=self._tags_of(m))

    def calibration(self, seconds: float) -> None:
        """The latest BN calibration took ``seconds`` (rank 0 sends it)."""
        if self.who.rank == 0:
            m = names.CALIBRATION_SECONDS
            self.metric(m.name).set(float(seconds), tags=self._tags_of(m))
