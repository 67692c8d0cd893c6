"""A PBT trial's schedule: rows, mutation count, the stepped table, MLflow metrics at step = epoch, the figure."""

from __future__ import annotations

from mlflow import MlflowClient

from mixsize_ray.tracking import keys
from mixsize_ray.tune.pbt_trainable import segment_end
from mixsize_ray.tune.schedules import log_schedule, mutations, plot, row, table

ROWS = [row(0, "trial_0001", "trial_0001", {16: 0.5, 32: 0.5}, {"optim.lr": 0.1, "optim.smoothing_alpha": 0.9}, 3),
        row(1, "trial_0001", "trial_0001-e001", {16: 0.5, 32: 0.5}, {"optim.lr": 0.1, "optim.smoothing_alpha": 0.9}, 6),
        row(2, "trial_0000", "trial_0000-e002", {16: 0.3, 32: 0.7}, {"optim.lr": 0.08, "optim.smoothing_alpha": 0.8}, 9)]


def test_mutations_and_table():
    assert mutations(ROWS) == 1 and mutations(ROWS[:2]) == 0
    t = table(ROWS)
    assert t["epoch"] == [0, 1, 2] and t["p_16"] == [0.5, 0.5, 0.3] and t["lr"] == [0.1, 0.1, 0.08]


def test_segments_end_on_multiples_of_the_interval():
    assert [segment_end(e, 1, 3) for e in range(3)] == [0, 1, 2]
    assert [segment_end(e, 3, 7) for e in range(7)] == [2, 2, 2, 5, 5, 5, 6]


def test_logged_to_mlflow_as_stepped_metrics_and_table(tmp_path):
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    c = MlflowClient(uri)
    run = c.create_run(c.create_experiment("s", artifact_location=str(tmp_path / "art")))
    fig = plot({"trial_0000": ROWS}, tmp_path / "s.png")
    log_schedule(uri, run.info.run_id, ROWS, figure=fig)
    hist = c.get_metric_history(run.info.run_id, keys.schedule_p_key(32))
    assert sorted((m.step, m.value) for m in hist) == [(0, 0.5), (1, 0.5), (2, 0.7)]
    assert [m.value for m in c.get_metric_history(run.info.run_id, keys.SCHEDULE_LR)] == [0.1, 0.1, 0.08]
    arts = {a.path for a in c.list_artifacts(run.info.run_id, keys.SCHEDULE_SECTION)}
    assert {keys.SCHEDULE_TABLE, keys.SCHEDULE_FIGURE.rsplit("/", 1)[0] + "/s.png"} <= arts
    assert fig.stat().st_size > 0
