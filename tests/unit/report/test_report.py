"""`mixsize-ray report` from a real MLflow store holding runs logged by the project's own tracker: the right
runs and numbers are read back, every section is drawn, the page is self-contained and opens in headless
Chromium without a single network request."""

from __future__ import annotations

import json

import pytest

from mixsize_ray.cli import main
from mixsize_ray.config import load_config
from mixsize_ray.core.regime import regime_from_config
from mixsize_ray.errors import ConfigError
from mixsize_ray.report import figures as fg
from mixsize_ray.report.runs import Selection, select
from mixsize_ray.tracking.params import SEARCH_TAG, run_params
from mixsize_ray.tracking.tracker import RunTracker
from tests.browser import ARTIFACTS, chromium

CURVES = {"fixed": {16: 0.10, 24: 0.35, 32: 0.99, 40: 0.50}, "D+": {16: 0.70, 24: 0.90, 32: 0.97, 40: 0.85},
          "B+": {16: 0.65, 24: 0.86, 32: 0.95, 40: 0.80}}


def _log_run(client, uri, exp, mode, tmp_path, parent=None):
    sets = ["regime.sizes=[32]", "regime.probs=[1.0]"] if mode == "fixed" else \
        ["regime.sizes=[16,24,32,40]", "regime.probs=[0.2,0.3,0.3,0.2]", f"regime.mode={mode}"]
    cfg = load_config(None, [*sets, "regime.base_batch=32", f"train.name=run-{mode}"])
    tags = {"mlflow.parentRunId": parent} if parent else {}
    rid = client.create_run(exp, run_name=f"run-{mode}", tags=tags).info.run_id
    for k, v in run_params(cfg).items():
        client.log_param(rid, k, v)
    t = RunTracker(uri, rid, tmp_path / f"spool-{mode}", retries=1, wait_s=0, log=lambda m: None)
    t.log_start(regime_from_config(cfg).solve().to_json(), cfg.to_yaml())
    for e in range(3):
        t.log_epoch({"epoch": e, "loss": 2.0 - 0.5 * e, "val_top1": 0.3 * (e + 1), "lr": 0.1 / (e + 1),
                     "grad_norm": 1.0 + e, "grad_norm_smoothed": 1.2, "realised_budget": 0.99,
                     "step_time_32": 0.2, **({"step_time_16": 0.21} if mode != "fixed" else {})})
    doc = {"sizes": [{"size": s, "top1": v - 0.05, "top5": 1.0, "top1_calibrated": v, "top5_calibrated": 1.0,
                      "gflops": 0.04 * (s / 32) ** 2, "top1_per_gflop": v / (0.04 * (s / 32) ** 2)}
                     for s, v in CURVES[mode].items()]}
    t.log_sweep(doc, [], epoch=2)
    t.close()
    client.set_terminated(rid)
    return rid


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from mlflow import MlflowClient

    d = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{d}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("rep", artifact_location=(d / "art").as_uri())
    ids = {m: _log_run(client, uri, exp, m, d) for m in ("fixed", "D+")}
    parent = client.create_run(exp, run_name="s1", tags={SEARCH_TAG: "s1"}).info.run_id
    (d / "trials.csv").write_text("trial,status,mode,obj_band,obj_top1_32\n0,ok,D+,0.85,0.97\n1,ok,fixed,0.48,0.99\n"
                                  "2,infeasible,B+,0,0\n")
    (d / "importances.json").write_text(json.dumps({"band": {"p_16": {"importance": 0.8, "reason": None},
                                                             "lr": {"importance": 0.0, "reason": "constant"}}}))
    client.log_artifact(parent, str(d / "trials.csv"))
    client.log_artifact(parent, str(d / "importances.json"))
    child = _log_run(client, uri, exp, "B+", d, parent=parent)
    return uri, client, ids, child, d


def test_the_runs_come_back_with_their_numbers(store):
    uri, _, ids, child, _ = store
    runs, search = select(uri, Selection(experiment="rep"))
    assert search is None and [r.run_id for r in runs] == [ids["fixed"], ids["D+"], child]  # not the search parent
    fixed, mixed, _ = runs
    assert fixed.curve_of("accuracy_vs_size/top1_calibrated") == CURVES["fixed"]
    assert mixed.size_shares == {16: 0.2, 24: 0.3, 32: 0.3, 40: 0.2}
    assert mixed.history["train/loss"] == [(0, 2.0), (1, 1.5), (2, 1.0)]
    assert mixed.step_time == {16: 0.21, 32: 0.2}
    assert [e["size"] for e in mixed.regime["entries"]] == [16, 24, 32, 40]


def test_a_search_brings_its_trials_and_importances(store):
    uri, _, _, child, _ = store
    runs, search = select(uri, Selection(search="s1"), experiment="rep")
    assert [r.run_id for r in runs] == [child]
    assert [t["trial"] for t in search.trials] == ["0", "1", "2"]
    assert search.importances["band"]["p_16"]["importance"] == 0.8
    fig = fg.pareto(search, ("obj_band", "obj_top1_32"))
    front = fig.data[1]
    assert sorted(zip(front.x, front.y, strict=True)) == [(0.48, 0.99), (0.85, 0.97)]  # trial 2 is dominated


def test_the_curve_figure_has_one_solid_trace_per_run_and_sizes_in_pixels(store):
    uri, *_ = store
    runs, _ = select(uri, Selection(run_ids=tuple(store[2][m] for m in ("fixed", "D+"))))
    fig = fg.accuracy_vs_size(runs)
    solid = [t for t in fig.data if t.line.dash == "solid"]
    assert [t.name for t in solid] == ["run-fixed (fixed)", "run-D+ (D+)"]
    assert list(solid[1].x) == [16, 24, 32, 40] and list(solid[1].y) == pytest.approx([70, 90, 97, 85])
    assert fig.layout.xaxis.ticksuffix == " px"
    flops = fg.accuracy_vs_gflops(runs).data[0]
    assert list(flops.x) == pytest.approx([0.01, 0.0225, 0.04, 0.0625])


def test_the_picked_serving_size_is_starred_on_the_gflops_plot(store):
    uri, client, ids, *_ = store
    client.set_tag(ids["D+"], "serve.size", "24")  # what `mixsize-ray pick --register` records
    try:
        runs, _ = select(uri, Selection(run_ids=(ids["fixed"], ids["D+"])))
    finally:
        client.delete_tag(ids["D+"], "serve.size")
    assert [r.serving_size for r in runs] == [None, 24]
    stars = [t for t in fg.accuracy_vs_gflops(runs).data if t.marker.symbol == "star"]
    assert len(stars) == 1 and stars[0].name == "run-D+ (D+) serves 24px"
    assert list(stars[0].x) == pytest.approx([0.0225]) and list(stars[0].y) == pytest.approx([90])


def test_selection_needs_exactly_one_source():
    with pytest.raises(ConfigError, match="exactly one"):
        Selection(experiment="a", search="b")
    with pytest.raises(ConfigError, match="exactly one"):
        Selection()


def test_cli_writes_a_self_contained_page_that_chromium_opens_offline(store, tmp_path, capsys):
    uri, *_ = store
    out = tmp_path / "report.html"
    assert main(["report", "--tracking-uri", uri, "--search", "s1", "--search-experiment", "rep",
                 "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    html = out.read_text()
    assert "<script src=" not in html and "<link " not in html  # nothing to fetch
    for section in ("curve", "gflops", "regime", "training", "budget", "pareto", "importances", "trials", "runs"):
        assert f'<section id="{section}">' in html, section
    driver = chromium(tmp_path)
    try:
        driver.get(out.as_uri())
        traces = driver.execute_script("return document.getElementById('fig-curve').data.length")
        fetched = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith('file:'))")
        ARTIFACTS.mkdir(exist_ok=True)
        png = driver.get_screenshot_as_png()
        (ARTIFACTS / "report.png").write_bytes(png)
        rows = driver.execute_script("return document.querySelectorAll('#runs-table tbody tr').length")
    finally:
        driver.quit()
    assert traces == 2 and rows == 1  # the one trial run: calibrated and uncalibrated traces
    assert fetched == []
    from io import BytesIO

    from PIL import Image

    img = Image.open(BytesIO(png)).convert("L")
    lo, hi = img.getextrema()
    assert hi - lo > 100  # not a blank page


def test_cli_refuses_a_missing_store_and_creates_nothing(tmp_path, capsys):
    db = tmp_path / "none.db"
    assert main(["report", "--tracking-uri", f"sqlite:///{db}", "--experiment", "x", "--out",
                 str(tmp_path / "r.html")]) == 2
    assert "--tracking-uri: expected an existing MLflow store" in capsys.readouterr().err
    assert not db.exists() and not (tmp_path / "r.html").exists()
