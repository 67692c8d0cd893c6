"""StepTrace on a real TrainingLoop: every step and phase recorded, the live metrics still fed, the class
untouched; the standalone trace's clocks and the file the worker writes."""

from __future__ import annotations

import json

import pytest

from mixsize_ray.config import load_config
from mixsize_ray.train.live_metrics import StepTiming
from mixsize_ray.train.loop import TrainingLoop
from mixsize_ray.train.step_trace import PHASES, STEP_TRACE_JSON, StepTrace

SETS = ["regime.sizes=[16,32]", "regime.probs=[0.5,0.5]", "regime.mode=D+", "regime.base_batch=8",
        "data.train_size=64", "data.test_size=16", "data.num_workers=0", "train.epochs=2",
        "train.max_steps_per_epoch=3", "train.calibrate_batches=1", "train.sweep_sizes=[16,32]",
        "model.name=resnet8", "tracking.enabled=false", "train.step_trace=true"]


class Recorder:
    """A stand-in for LiveMetrics: counts what reaches it."""

    def __init__(self):
        self.steps, self.flushes, self.calibrations = [], 0, 0

    def step(self, timing):
        self.steps.append(timing)

    def flush(self, progress):
        self.flushes += 1

    def calibration(self, seconds):
        self.calibrations += 1


@pytest.fixture
def loop(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXSIZE_RAY_DATA_DIR", str(tmp_path / "data"))
    return TrainingLoop(load_config(None, SETS), log=lambda _m: None)


def test_attach_records_every_step_and_phase_of_the_loop(loop, tmp_path):
    live = Recorder()
    loop.live = live
    trace = StepTrace.attach(loop)
    assert loop.live is trace and trace.then is live
    for name in PHASES:  # wrapped on this instance only; the class keeps its methods
        assert name in vars(loop) and vars(loop)[name].__wrapped__.__func__ is vars(TrainingLoop)[name]
    loop.warmup()
    sizes = [s.size for e in range(2) for s in loop.schedule.epoch_steps(e)]
    while not loop.done:
        loop.train_epoch()
    loop.validate()
    loop.calibrate()
    loop.sweep(progress=False)
    doc = json.loads(trace.save(tmp_path).read_text())
    assert (tmp_path / STEP_TRACE_JSON).is_file()
    assert doc["loop"] == "mixsize_ray.train.loop.TrainingLoop" and doc["world_size"] == 1 and doc["backend"] is None
    assert doc["clock"] == "perf_counter" and doc["amp"] == "none"
    steps = doc["steps"]
    assert len(steps) == loop.global_step == 6 and [s["size"] for s in steps] == sizes
    assert [s["epoch_first"] for s in steps] == [True, False, False, True, False, False]
    assert all(s["seconds"] > 0 and s["peak_bytes"] is None and s["new_graphs"] is None for s in steps)
    assert [s["images"] for s in steps] == [8 * (4 if s == 16 else 1) for s in sizes]  # D+: B x D views
    assert [p["name"] for p in doc["phases"]] == ["warmup", "train_epoch", "train_epoch", "validate", "calibrate",
                                                  "sweep"]
    assert set(PHASES) == {p["name"] for p in doc["phases"]}
    # the live metrics saw every step, each progress read and the calibration
    assert [t.size for t in live.steps] == sizes and live.flushes >= 2 and live.calibrations == 1


def test_a_step_is_timed_from_the_previous_step_or_the_phase_start():
    trace = StepTrace("cpu")
    trace.step(StepTiming(size=8, seconds=0.25, images=2, wait=0.0))  # outside any phase: the loop's host time
    with trace.phase("train_epoch"):
        trace.step(StepTiming(size=8, seconds=0.5, images=2, wait=0.1))
    doc = trace.to_dict()
    assert doc["steps"][0]["seconds"] == 0.25 and doc["steps"][0]["epoch_first"] is True
    assert doc["steps"][1]["epoch_first"] is True and doc["steps"][1]["wait"] == 0.1
    assert [p["name"] for p in doc["phases"]] == ["train_epoch"] and set(doc["phases"][0]) == {"name", "start", "seconds"}
