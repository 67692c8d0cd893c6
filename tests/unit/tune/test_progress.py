"""One line per trial: p shares (not Optuna's u draws), objectives, seconds; picklable for Tune's state."""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

from mixsize_ray.tune.progress import TrialLines, trial_params_text
from mixsize_ray.tune.spec import enqueue_params, load_space

ROOT = Path(__file__).resolve().parents[3]


def test_lines_show_p_and_objectives(capsys):
    spec = load_space(ROOT / "search_spaces/quickstart.yaml")
    config = {**enqueue_params(spec, {"mode": "D+", "probs": [0.2, 0.3, 0.3, 0.2], "smoothing_alpha": 0.9,
                                      "lr": 0.05}), "trial_number": 3}
    mode, text = trial_params_text(spec, config)
    assert mode == "D+" and text.startswith("p 16:.20 24:.30 32:.30 40:.20") and "lr 0.05" in text
    assert "u_16" not in text
    cb = pickle.loads(pickle.dumps(TrialLines(spec)))  # Tune pickles its callbacks
    trial = SimpleNamespace(trial_id="t3", config=config, last_result={
        "obj_top1_cal_band_16_48": 0.8123, "obj_top1_cal_32": 0.95, "val_top1": 0.95, "step": 1500})
    cb.on_trial_start(0, [], trial)
    cb.on_trial_complete(0, [], trial)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("trial 0003 start  D+") and "p 16:.20" in out[0]
    assert out[1].startswith("trial 0003 done   D+") and "top1_cal_band_16_48 0.8123" in out[1]
    assert "top1_cal_32 0.9500" in out[1] and "steps 1500" in out[1] and out[1].endswith(" s")
    assert len(out) == 2


def test_a_retried_trial_says_why_and_how(capsys, tmp_path):
    spec = load_space(ROOT / "search_spaces/quickstart.yaml")
    err = tmp_path / "error.txt"
    err.write_text("Traceback ...\nray.exceptions.ActorDiedError: The actor died because its node has died.\n")
    trial = SimpleNamespace(trial_id="t2", config={"trial_number": 2, "regime.mode": "B+"}, last_result={},
                            error_file=str(err), num_failures=1)
    TrialLines(spec).on_trial_recover(0, [], trial)
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("trial 0002 retry  after a failure (ray.exceptions.ActorDiedError: The actor died")
    assert line.endswith("resuming from its last checkpoint (1 of at most 1 retries)")
    TrialLines(spec).on_trial_recover(0, [], SimpleNamespace(trial_id="t1", config={"trial_number": 1}))
    assert "(its process or node was lost)" in capsys.readouterr().out


def test_max_failures_defaults_to_one_retry_and_is_checked(tmp_path):
    import pytest
    import yaml

    from mixsize_ray.errors import ConfigError

    raw = yaml.safe_load((ROOT / "search_spaces/quickstart.yaml").read_text())
    assert load_space(ROOT / "search_spaces/quickstart.yaml").search.max_failures == 1
    raw["search"]["max_failures"] = -1
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="search.max_failures"):
        load_space(tmp_path / "s.yaml")


def test_pbt_prints_one_line_per_trial_and_segment_with_the_p_it_trained(capsys):
    from mixsize_ray.tune.progress import SegmentLines
    from mixsize_ray.tune.spec import parse_space

    spec = load_space(ROOT / "search_spaces/quickstart.yaml")
    spec = parse_space({**spec.raw, "search": {**spec.raw["search"], "scheduler": "pbt"}})
    cb = pickle.loads(pickle.dumps(SegmentLines(spec)))
    trial = SimpleNamespace(trial_id="t1", config={"regime.mode": "B+", "optim.lr": 0.0412,
                                                   "optim.smoothing_alpha": 0.87, "probs": [0.31, 0.22, 0.27, 0.20],
                                                   "trial_number": 1}, last_result={})
    cb.on_trial_start(0, [], trial)
    cb.on_trial_result(0, [], trial, {"epochs_done": 2, "val_top1": 0.4531, "final": 0})
    cb.on_trial_result(0, [], trial, {"epochs_done": 4, "val_top1": 0.5, "final": 1})  # its "done" line says it
    start, segment = capsys.readouterr().out.splitlines()
    assert start.startswith("trial 0001 start  B+     p 16:.31 24:.22 32:.27 40:.20")
    assert segment.startswith("trial 0001 epoch 2  B+     p 16:.31 24:.22 32:.27 40:.20")
    assert "lr 0.0412" in segment and "smoothing_alpha 0.87" in segment and segment.endswith("val_top1 0.4531")
