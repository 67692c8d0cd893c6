"""Live metrics from the training loop: the numbers sent equal what the epoch did, with no extra host sync.

The real export (a Ray head's metrics port, scraped by Prometheus) is tested in
tests/integration/test_live_metrics.py; here a recording stand-in for ``ray.util.metrics`` receives the
calls, so each value can be checked exactly.
"""

from __future__ import annotations

import types
from collections import Counter

import pytest

from mixsize_ray.train import live_names as names
from mixsize_ray.train.live_metrics import LiveMetrics, LiveRun, Progress, StepTiming
from tests.unit.train.test_loop_syncs import SyncCounter, counting, loop_with_batches, syncs_in_epoch  # noqa: F401


class Recorder:
    """Stands in for a ray.util.metrics class; keeps every call."""

    made: dict[str, Recorder] = {}

    def __init__(self, name, description="", tag_keys=None, boundaries=None):
        self.name, self.tag_keys, self.boundaries, self.calls = name, tuple(tag_keys or ()), boundaries, []
        Recorder.made[name] = self

    def _call(self, value, tags):
        assert set(tags) == set(self.tag_keys), (self.name, tags)  # Ray refuses missing or unknown tags
        self.calls.append((value, dict(tags)))

    inc = set = observe = _call


FACTORY = types.SimpleNamespace(Counter=Recorder, Gauge=Recorder, Histogram=Recorder)


def _by_size(rec: Recorder) -> dict[int, float]:
    out: Counter = Counter()
    for v, tags in rec.calls:
        out[int(tags["size"])] += v
    return dict(out)


def test_an_epoch_sends_its_steps_images_times_and_norms(tmp_path, monkeypatch):
    loop, batches = loop_with_batches(tmp_path, monkeypatch, steps=12)
    loop.log_every = 5
    live = LiveMetrics(LiveRun("live", rank=0), FACTORY)
    live.start({e.size: e.step_share for e in loop.table.entries})
    loop.live = live
    metrics = loop.train_epoch()

    sizes = Counter(b.size for b in batches)
    images = Counter()
    for b in batches:
        images[b.size] += b.images.shape[0]
    assert _by_size(live.metric(names.STEPS.name)) == dict(sizes)
    assert _by_size(live.metric(names.IMAGES.name)) == dict(images)
    hist = live.metric(names.STEP_SECONDS.name)
    assert len(hist.calls) == 12 and Counter(int(t["size"]) for _, t in hist.calls) == sizes
    assert sorted(v for v, _ in hist.calls) == pytest.approx(sorted(t for ts in loop.last_step_times.values()
                                                                    for t in ts))
    assert hist.boundaries == list(names.STEP_SECONDS_BOUNDARIES)
    # the last values sent are the epoch's
    assert live.metric(names.GRAD_NORM.name).calls[-1][0] == pytest.approx(metrics["grad_norm"])
    assert live.metric(names.GRAD_NORM_SMOOTHED.name).calls[-1][0] == pytest.approx(metrics["grad_norm_smoothed"])
    assert live.metric(names.REALISED_BUDGET.name).calls[-1][0] == pytest.approx(metrics["realised_budget"])
    assert live.metric(names.CURRENT_SIZE.name).calls[-1][0] == batches[-1].size
    # one flush per progress read: steps 0, 5, 10, 11 (the last) and the epoch's end
    assert len(live.metric(names.GRAD_NORM.name).calls) == 5
    shares = {int(t["size"]): v for v, t in live.metric(names.TARGET_SHARE.name).calls}
    assert shares == {16: pytest.approx(0.5), 32: pytest.approx(0.5)}
    assert all(t == {"run": "live", "rank": "0", "size": str(s)} for s in sizes
               for _, t in live.metric(names.STEPS.name).calls if t["size"] == str(s))


def test_live_metrics_add_no_host_sync(tmp_path, monkeypatch, counting):  # noqa: F811 - the imported fixture
    plain, _ = loop_with_batches(tmp_path, monkeypatch, steps=12)
    watched, _ = loop_with_batches(tmp_path, monkeypatch, steps=12)
    watched.live = LiveMetrics(LiveRun("live", rank=0), FACTORY)
    for loop in (plain, watched):
        loop.log_every = 4
    n_plain, _ = syncs_in_epoch(plain, counting)
    n_watched, _ = syncs_in_epoch(watched, counting)
    assert n_watched == n_plain


def test_calibration_time_is_sent(tmp_path, monkeypatch):
    loop, _ = loop_with_batches(tmp_path, monkeypatch, steps=2)
    loop.live = LiveMetrics(LiveRun("live", rank=0), FACTORY)
    loop.cfg.train.calibrate_batches = 1
    loop.calibrate([16, 24])
    (seconds, tags), = loop.live.metric(names.CALIBRATION_SECONDS.name).calls
    assert seconds > 0 and tags == {"run": "live"}


def test_other_ranks_send_their_own_counts_only():
    live = LiveMetrics(LiveRun("r", rank=1), FACTORY)
    live.start({16: 1.0})
    live.step(StepTiming(16, 0.1, 8, 0.05))
    live.flush(Progress(grad_norm=1.0, grad_norm_smoothed=1.0, realised_budget=1.0))
    live.calibration(3.0)
    assert live.metric(names.STEPS.name).calls == [(1.0, {"run": "r", "rank": "1", "size": "16"})]
    assert live.metric(names.LOADER_WAIT.name).calls == [(0.05, {"run": "r", "rank": "1"})]
    for m in (names.TARGET_SHARE, names.GRAD_NORM, names.REALISED_BUDGET, names.CALIBRATION_SECONDS):
        assert live.metric(m.name).calls == [], m.name  # run-wide values: rank 0 sends them


def test_a_nan_norm_is_not_sent_and_an_empty_flush_sends_nothing():
    live = LiveMetrics(LiveRun("r", rank=0), FACTORY)
    live.flush(Progress(grad_norm=float("nan"), grad_norm_smoothed=None, realised_budget=None))
    assert all(not live.metric(m.name).calls for m in names.ALL)
