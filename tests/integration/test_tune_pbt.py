"""A real PBT size-schedule search on a real local Ray cluster: 2 trials, a perturbation every epoch, 3 epochs
of a few steps. The logged schedule shows a mutation, and the exploited trial resumed exactly from the copied
checkpoint (its first epoch after the exploit starts at the donor's global step, from the donor's weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient

from mixsize_ray.config import config_from_dict
from mixsize_ray.train.checkpoint import load_checkpoint
from mixsize_ray.train.loop import TrainingLoop
from mixsize_ray.tune.search import load_search_space, run_search

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a PBT population must train, report and exploit
EPOCHS, STEPS = 3, 3


def write_space(tmp: Path, db: Path) -> Path:
    raw = {
        "name": "pbt2",
        "fixed": {
            "data": {"name": "shapes", "train_size": 256, "test_size": 64, "num_workers": 0},
            "model": {"name": "resnet20"}, "regime": {"tolerance": 0.15},
            "train": {"epochs": EPOCHS, "max_steps_per_epoch": STEPS, "sweep_sizes": [16, 32],
                      "calibrate_batches": 1, "eval_batch_size": 64},
            "ray": {"num_workers": 1},
            "tracking": {"uri": f"sqlite:///{db}", "experiment": "pbt-tests"},
        },
        "space": {"sizes": [16, 24, 32], "simplex": {"floor": 0.05}, "base": {"size": 32, "batch": 16, "duplicates": 1},
                  "mode": ["B+"], "smoothing_alpha": {"low": 0.5, "high": 0.95}, "lr": {"low": 0.02, "high": 0.2}},
        "objectives": [{"kind": "band", "low": 16, "high": 32}],
        "search": {"num_samples": 2, "max_concurrent": 2, "seed": 3, "scheduler": "pbt",
                   "pbt": {"perturbation_interval": 1, "quantile_fraction": 0.5, "resample_probability": 0.0}},
    }
    p = tmp / "pbt2.yaml"
    p.write_text(yaml.safe_dump(raw, sort_keys=False))
    return p


@pytest.fixture(scope="module")
def pbt_search(ray_local, shapes_cache, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pbt")
    db = tmp / "mlflow.db"
    spec = load_search_space(write_space(tmp, db), output_dir=str(tmp / "out"))
    return run_search(spec), db


def test_schedules_logged_with_a_mutation(pbt_search):
    summary, db = pbt_search
    exp = summary.experiment_dir
    doc = json.loads((exp / "schedules.json").read_text())
    assert len(doc["trials"]) == 2 and all(t["status"] == "ok" for t in doc["trials"])
    for t in doc["trials"]:
        assert [r["epoch"] for r in t["schedule"]] == list(range(EPOCHS))
        for r in t["schedule"]:
            assert abs(sum(r["probs"].values()) - 1) < 1e-9 and min(r["probs"].values()) >= 0.05 - 1e-12
    assert max(t["mutations"] for t in doc["trials"]) >= 1
    assert (exp / "schedules.png").stat().st_size > 0 and (exp / "best.yaml").is_file()
    c = MlflowClient(f"sqlite:///{db}")
    mutated = next(t for t in doc["trials"] if t["mutations"] >= 1)
    runs = c.search_runs([c.get_experiment_by_name("pbt-tests").experiment_id],
                         f"tags.mlflow.parentRunId = '{summary.parent_run_id}'")
    by_name = {r.data.tags.get("train.name"): r for r in runs}
    run = by_name[f"trial_{mutated['trial']:04d}"]
    hist = c.get_metric_history(run.info.run_id, "schedule/p_16")
    p16 = {m.step: m.value for m in hist}
    assert sorted(p16) == list(range(EPOCHS))
    assert len({round(v, 12) for v in p16.values()}) >= 2 or any(
        len({round(m.value, 12) for m in c.get_metric_history(run.info.run_id, f"schedule/p_{s}")}) >= 2
        for s in (24, 32))
    assert "schedule/schedule.json" in {a.path for a in c.list_artifacts(run.info.run_id, "schedule")}


def test_exploited_trial_resumes_exactly_from_the_donor_checkpoint(pbt_search):
    summary, _ = pbt_search
    exp = summary.experiment_dir
    trials = exp / "trials"
    doc = json.loads((exp / "schedules.json").read_text())
    exploited = [(t, i) for t in doc["trials"] for i, (a, b) in enumerate(zip(t["schedule"], t["schedule"][1:], strict=False))
                 if b["trial"] == f"trial_{t['trial']:04d}" and a["trial"] != b["trial"]]
    assert exploited, "no trial exploited another (PBT with 2 trials exploits at every perturbation)"
    t, i = exploited[0]
    before, after = t["schedule"][i], t["schedule"][i + 1]
    # the donor's Train checkpoint at the exploit epoch, and the first checkpoint of the exploiting run
    donor_ckpts = sorted((trials / before["run"]).glob("checkpoint_*"))
    donor = next(load_checkpoint(p) for p in donor_ckpts if load_checkpoint(p)["epoch"] == before["epoch"])
    first = load_checkpoint(sorted((trials / after["run"]).glob("checkpoint_*"))[0])
    assert first["epoch"] == before["epoch"] + 1
    assert first["global_step"] == donor["global_step"] + STEPS == after["global_step"]
    assert first["config"]["regime"]["probs"] == list(after["probs"].values())
    # replay: the donor's state + the new config, one epoch without Ray, gives the exploiting run's weights
    cfg = config_from_dict(first["config"])
    loop = TrainingLoop(cfg, log=lambda _m: None)
    loop.load_state_dict(donor)
    loop.train_epoch()
    for k, v in loop.model.state_dict().items():
        assert torch.allclose(v.float(), first["model"][k].float(), atol=1e-5), k
