"""Real MLflow tracking of real Ray Train runs: a `mlflow server` (sqlite store, proxied artifacts) on a
free loopback port, a 2-worker smoke run logged to it and read back through MlflowClient (params, the
accuracy-vs-size curve with step = size, artifacts, the model predicting at two sizes with their own BN
statistics), a resume that reattaches to the same run, the real UI in headless Chromium, and a server
that goes away mid-run (training goes on, the spool keeps everything, `mixsize-ray mlflow-sync` sends it)."""

from __future__ import annotations

import copy
import json
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import pytest
import torch

from mixsize_ray.cli import main
from mixsize_ray.config import config_from_dict, load_config
from mixsize_ray.tracking.model import tracking_uri
from mixsize_ray.tracking.server import start_server, stop_server, wait_healthy
from mixsize_ray.tracking.spool import Spool
from mixsize_ray.train.checkpoint import load_checkpoint
from mixsize_ray.train.launch import apply_smoke, launch
from tests.browser import chromium
from tests.integration.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
EXPERIMENT = "itest-tracking"
pytestmark = pytest.mark.integration

SETS = [
    "ray.num_workers=2", "train.epochs=2", "train.max_steps_per_epoch=8", "data.train_size=1024",
    "train.sweep_sizes=[16,32,48]", "train.calibrate_batches=2", "train.num_to_keep=5",
    "tracking.enabled=true", f"tracking.experiment={EXPERIMENT}", "tracking.retries=2", "tracking.timeout_s=5",
]


def tracked_cfg(out: Path, name: str, uri: str, *extra: str):
    cfg = apply_smoke(load_config(ROOT / "search_spaces/cifar_s28_dplus.yaml"))
    return config_from_dict(cfg.to_dict(), [*SETS, f"train.output_dir={out}", f"train.name={name}",
                                            f"tracking.uri={uri}", *extra])


class Server:
    """A real `mlflow server` on a free loopback port; restartable on the same port and store."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self) -> Server:
        self.proc = start_server(f"sqlite:///{self.folder}/mlflow.db", port=self.port,
                                 artifacts_destination=str(self.folder / "artifacts"),
                                 log_file=self.folder / "server.log", cwd=self.folder)
        try:
            wait_healthy(self.url, timeout_s=120, proc=self.proc)
        except BaseException:
            stop_server(self.proc)
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)

    def client(self):
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.url)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("mlflow-server")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tracked(ray_local, shapes_cache, server, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    summary = launch(tracked_cfg(out, "tracked", server.url))
    client = server.client()
    return SimpleNamespace(out=out, summary=summary, client=client, run=client.get_run(summary.mlflow_run_id))


def test_run_has_tags_and_the_flat_config(tracked):
    run = tracked.run
    assert run.info.status == "FINISHED" and run.info.run_name == "tracked"
    tags = run.data.tags
    assert (tags["mode"], tags["sampling"], tags["dataset"], tags["model"]) == ("D+", "step", "shapes", "resnet20")
    p = run.data.params
    assert p["regime.p_32"] == "0.3" and p["regime.p_16"] == "0.2" and p["regime.sizes"] == "[40, 32, 24, 16]"
    assert p["train.epochs"] == "2" and p["ray.num_workers"] == "2"


def test_curve_is_a_metric_whose_steps_are_the_sizes(tracked):
    c, rid = tracked.client, tracked.run.info.run_id
    sweep = json.loads(Path(tracked.summary.sweep_json).read_text())
    want = {r["size"]: r for r in sweep["sizes"]}
    for key, field in (("accuracy_vs_size/top1", "top1"), ("accuracy_vs_size/top1_calibrated", "top1_calibrated")):
        hist = c.get_metric_history(rid, key)
        assert sorted(m.step for m in hist) == [16, 32, 48], key
        assert all(m.value == pytest.approx(want[m.step][field]) for m in hist)
    metrics = tracked.run.data.metrics
    assert metrics["at_size/top1_32"] == pytest.approx(want[32]["top1"])
    assert metrics["at_size/top1_calibrated_48"] == pytest.approx(want[48]["top1_calibrated"])
    per_gflop = {m.step: m.value for m in c.get_metric_history(rid, "flops_vs_size/top1_per_gflop")}
    assert per_gflop[16] == pytest.approx(want[16]["top1_per_gflop"])
    assert [m.step for m in c.get_metric_history(rid, "train/loss")] == [0, 1]  # per epoch
    assert [m.step for m in c.get_metric_history(rid, "val/top1")] == [0, 1]


def test_artifacts_and_checkpoint_run_id(tracked, tmp_path):
    c, rid = tracked.client, tracked.run.info.run_id
    names = {f.path for f in c.list_artifacts(rid)}
    assert {"sweep.json", "sweep.png", "regime_table.json", "regime.json", "config.yaml"} <= names
    got = json.loads(Path(c.download_artifacts(rid, "sweep.json", str(tmp_path))).read_text())
    assert got == json.loads(Path(tracked.summary.sweep_json).read_text())
    table = json.loads(Path(c.download_artifacts(rid, "regime_table.json", str(tmp_path))).read_text())
    assert [row[0] for row in table["data"]] == [40, 32, 24, 16] and "batch" in table["columns"]
    assert Path(c.download_artifacts(rid, "sweep.png", str(tmp_path))).read_bytes()[:4] == b"\x89PNG"
    assert load_checkpoint(tracked.summary.checkpoint)["mlflow_run_id"] == rid


def test_logged_model_predicts_at_two_sizes_with_their_statistics(tracked, server):
    import mlflow.pytorch

    from mixsize_ray.core.calibration import SizeAwareModel

    (out,) = tracked.run.outputs.model_outputs
    with tracking_uri(server.url):
        model = mlflow.pytorch.load_model(f"models:/{out.model_id}")
    assert isinstance(model, SizeAwareModel) and model.cache.sizes == [16, 32, 48]
    model.eval()
    torch.manual_seed(0)
    for size in (16, 48):
        x = torch.rand(4, 3, size, size)
        with torch.no_grad():
            got = model(x)
        assert model.current_size == size and got.shape == (4, 10)
        plain = copy.deepcopy(model.model).eval()
        model.cache.apply(plain, size)
        with torch.no_grad():
            assert torch.allclose(got, plain(x), atol=1e-5)
            model.cache.apply(plain, 32)  # one size's statistics for every size: a different answer
            assert not torch.allclose(got, plain(x), atol=1e-4)


def _chromium(tmp_path):
    return chromium(tmp_path)


def _wait_for_text(driver, text: str, timeout_s: float = 90) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout_s, poll_frequency=0.5).until(lambda d: text in d.page_source)


def test_mlflow_ui_shows_the_run_and_its_curve(tracked, server, tmp_path):
    rid, exp = tracked.run.info.run_id, tracked.run.info.experiment_id
    key = "accuracy_vs_size/top1_calibrated"
    ARTIFACTS.mkdir(exist_ok=True)
    driver = _chromium(tmp_path)
    from selenium.webdriver.common.by import By

    try:
        driver.get(f"{server.url}/#/experiments/{exp}/runs/{rid}")
        _wait_for_text(driver, "Search metrics")
        assert "tracked" in driver.page_source and "Finished" in driver.page_source
        box = driver.find_element(By.CSS_SELECTOR, "input[placeholder='Search metrics']")
        box.send_keys(key)  # the run's metrics table, filtered to the curve's key
        _wait_for_text(driver, key)
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
        time.sleep(2)  # let the page settle before the picture
        driver.save_screenshot(str(ARTIFACTS / "mlflow_run_page.png"))
        q = {"runs": [rid], "metric": key, "experiments": [exp], "plot_metric_keys": [key], "plot_layout": {},
             "deselected_curves": [], "last_linear_y_axis_range": []}
        query = "&".join(f"{k}={quote(json.dumps(v))}" for k, v in q.items())
        driver.get(f"{server.url}/#/metric?{query}&x_axis=step&y_axis_scale=linear&line_smoothness=1"
                   "&show_point=true")
        _wait_for_text(driver, key)
        time.sleep(3)
        driver.save_screenshot(str(ARTIFACTS / "mlflow_curve_chart.png"))
    finally:
        driver.quit()
    for name in ("mlflow_run_page.png", "mlflow_curve_chart.png"):
        assert (ARTIFACTS / name).stat().st_size > 10_000


def test_the_chart_view_opens_on_the_accuracy_vs_size_section(tracked, server, tmp_path):
    """The experiment's chart view, as a user opens it (no search typed): the first section is
    accuracy_vs_size, expanded, drawing the run's calibrated curve; the other sections come after it."""
    exp = tracked.run.info.experiment_id
    ARTIFACTS.mkdir(exist_ok=True)
    driver = _chromium(tmp_path)
    from selenium.webdriver.common.by import By

    try:
        driver.get(f"{server.url}/#/experiments/{exp}/runs?compareRunsMode=CHART")
        _wait_for_text(driver, "tracked (accuracy_vs_size/top1_calibrated)")  # a drawn chart's legend entry
        time.sleep(2)
        driver.save_screenshot(str(ARTIFACTS / "mlflow_chart_view.png"))
        lines = driver.find_element(By.TAG_NAME, "body").text.splitlines()
    finally:
        driver.quit()
    sections = [name for name in ("accuracy_vs_size", "at_size", "flops_vs_size", "step_time", "train", "val",
                                  "Model metrics", "System metrics") if name in lines]
    assert sections[0] == "accuracy_vs_size" and len(sections) >= 6, sections
    first = lines.index("accuracy_vs_size")
    assert all(lines.index(s) > first for s in sections[1:])
    assert (ARTIFACTS / "mlflow_chart_view.png").stat().st_size > 10_000


def test_worker_killed_after_its_mlflow_write_loses_and_duplicates_nothing(tracked, server, tmp_path):
    """Rank 0 dies hard (``os._exit``) right after epoch 0 reached MLflow and before its checkpoint was
    reported; Ray Train restarts the worker group (``train.max_failures=1``, the default). The run finishes
    with the uninterrupted run's losses, one MLflow run, every epoch and curve point once, one READY model."""
    cfg = tracked_cfg(tmp_path, "faulty", server.url, "train.inject_fault=after_log@0", "train.max_failures=1")
    summary = launch(cfg)
    assert (tmp_path / "faulty" / ".fault-after_log-0").is_file()  # the fault did fire
    c, rid = tracked.client, summary.mlflow_run_id
    runs = c.search_runs([tracked.run.info.experiment_id], filter_string="tags.`train.name` = 'faulty'")
    assert [r.info.run_id for r in runs] == [rid] and c.get_run(rid).info.status == "FINISHED"
    ref = tracked.run.info.run_id
    for key in ("train/loss", "train/top1", "val/top1"):
        got = [(m.step, m.value) for m in c.get_metric_history(rid, key)]
        want = [(m.step, m.value) for m in c.get_metric_history(ref, key) if m.step < 2]
        assert sorted(got) == sorted(want), key  # same values, each epoch once
    assert sorted(m.step for m in c.get_metric_history(rid, "accuracy_vs_size/top1_calibrated")) == [16, 32, 48]
    models = c.search_logged_models([tracked.run.info.experiment_id], filter_string=f"source_run_id = '{rid}'")
    assert [str(m.status).rsplit(".", 1)[-1] for m in models] == ["READY"]


def test_driver_killed_before_its_first_checkpoint_leaves_one_run(tracked, server, tmp_path, shapes_cache):
    """SIGKILL `mixsize-ray train` once its MLflow run exists but before any checkpoint: nothing names the run
    yet. The re-run of the same command continues THAT run (no second run of the name, none left RUNNING)
    and every epoch is logged once."""
    import os
    import signal
    import subprocess
    import sys

    c, exp = tracked.client, tracked.run.info.experiment_id
    argv = [sys.executable, "-m", "mixsize_ray.cli", "train", str(ROOT / "search_spaces/cifar_s28_dplus.yaml"), "--smoke"]
    for sv in [*SETS, f"train.output_dir={tmp_path}", "train.name=early-kill", f"tracking.uri={server.url}"]:
        argv += ["--set", sv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MIXSIZE_RAY_DATA_DIR": str(shapes_cache)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    name_filter = "tags.`train.name` = 'early-kill'"
    try:
        deadline = time.monotonic() + 300
        while not c.search_runs([exp], filter_string=name_filter):
            assert proc.poll() is None and time.monotonic() < deadline, "no MLflow run within 300 s"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not list((tmp_path / "early-kill").glob("checkpoint_*/state.pt")), "the kill came too late"
    (first,) = c.search_runs([exp], filter_string=name_filter)
    summary = launch(tracked_cfg(tmp_path, "early-kill", server.url))
    runs = c.search_runs([exp], filter_string=name_filter)
    assert [r.info.run_id for r in runs] == [first.info.run_id] == [summary.mlflow_run_id]
    assert runs[0].info.status == "FINISHED"
    assert sorted(m.step for m in c.get_metric_history(summary.mlflow_run_id, "train/loss")) == [0, 1]


def test_resume_reattaches_to_the_same_run(tracked, server):
    """Re-running the same name with more epochs continues the MLflow run (no second run, no param error)."""
    rid = tracked.run.info.run_id
    summary = launch(tracked_cfg(tracked.out, "tracked", server.url, "train.epochs=3"))
    assert summary.mlflow_run_id == rid
    c = tracked.client
    runs = c.search_runs([tracked.run.info.experiment_id], filter_string="tags.`train.name` = 'tracked'")
    assert [r.info.run_id for r in runs] == [rid]
    assert [m.step for m in c.get_metric_history(rid, "train/loss")] == [0, 1, 2]
    run = c.get_run(rid)
    assert run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "2" and run.data.tags["changed.train.epochs"] == "2 -> 3"
    assert load_checkpoint(summary.checkpoint)["mlflow_run_id"] == rid


@pytest.mark.slow  # a run whose tracking server dies and comes back
def test_server_gone_mid_run_training_goes_on_and_nothing_is_lost(ray_local, shapes_cache, tmp_path):
    srv = Server(tmp_path / "srv")
    srv.folder.mkdir()
    srv.start()
    out = tmp_path / "runs"

    def kill_after_first_checkpoint():
        deadline = time.monotonic() + 400
        while not list((out / "downed").glob("checkpoint_*/state.pt")) and time.monotonic() < deadline:
            time.sleep(0.2)
        srv.stop()

    killer = threading.Thread(target=kill_after_first_checkpoint, daemon=True)
    killer.start()
    try:
        summary = launch(tracked_cfg(out, "downed", srv.url))
        killer.join(timeout=60)
        # training finished; what could not be sent is in the spool beside the checkpoints
        assert summary.metrics["epoch"] == 1 and summary.checkpoint
        assert summary.metrics["mlflow_pending"] > 0
        spool = Spool(out / "downed" / "mlflow_spool")
        kinds = [r["kind"] for r in spool.records()]
        assert {"metrics", "artifact", "model", "status"} <= set(kinds)
        assert any(r["kind"] == "metrics" and any(m[0] == "train/loss" and m[2] == 1 for m in r["metrics"])
                   for r in spool.records())
        srv.start()  # the server comes back (same port, same store)
        c = srv.client()
        run_id = summary.mlflow_run_id
        assert [m.step for m in c.get_metric_history(run_id, "train/loss")] == [0]  # epoch 0 made it before
        assert main(["mlflow-sync", str(spool.directory)]) == 0
        assert not spool.path.exists()
        run = c.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert [m.step for m in c.get_metric_history(run_id, "train/loss")] == [0, 1]
        assert sorted(m.step for m in c.get_metric_history(run_id, "accuracy_vs_size/top1_calibrated")) == [16, 32, 48]
        assert {"sweep.json", "sweep.png"} <= {f.path for f in c.list_artifacts(run_id)}
        assert len(run.outputs.model_outputs) == 1
    finally:
        srv.stop()
