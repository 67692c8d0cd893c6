"""Jobs on a real `ray start --head` (loopback ports, its own temp dir and auth token, metrics export on),
started once for this module and stopped (that cluster only) after it:

- a real `ray job submit` of a smoke training that must SUCCEED and write its checkpoint and sweep;
- live metrics for real: a 2-worker MixSize training submitted as a Ray job, Ray's endpoint scraped on
  loopback, and Debian's Prometheus running the shipped dashboards/prometheus/prometheus.yml (Ray's
  service-discovery file) against that head. Every PromQL expression of dashboards/grafana/mixsize.json must
  then return data through Prometheus' HTTP API. Its series are told apart by the run's name (``run="live"``)
  and its queries by the time window of its own job, so the other job on the head does not count for it."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from mixsize_ray.train import live_names
from tests.integration.conftest import free_port
from tests.integration.ray_head import BIN, ray_head
from tests.services import require_tool
from tests.unit.dashboards.test_grafana import exprs, fill_variables

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a Ray head, two jobs, Prometheus
RUN = "live"
TRAIN = ["--set", "regime.sizes=[16,24,32]", "--set", "regime.probs=[0.3,0.3,0.4]", "--set", "regime.mode=B+",
         "--set", "regime.base_size=32", "--set", "regime.base_batch=32", "--set", "data.train_size=1536",
         "--set", "data.test_size=128", "--set", "data.num_workers=0", "--set", "train.epochs=2",
         "--set", "train.calibrate_batches=2", "--set", "train.sweep_sizes=[16,32]", "--set", "ray.num_workers=2",
         "--set", "tracking.enabled=false", "--set", f"train.name={RUN}"]


def _get(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback only
        return r.read().decode()


@pytest.fixture(scope="module")
def head(tmp_path_factory, shapes_cache):
    """One head for the module's jobs (a head's start and stop cost tens of seconds on 2 cores)."""
    with ray_head(tmp_path_factory.mktemp("head"), shapes_cache, metrics=True,
                  extra_env={"RAY_metrics_report_interval_ms": "1000"}) as h:
        yield h


def test_ray_job_submit_smoke_train_succeeds(head, tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.run(
        [str(BIN / "ray"), "job", "submit", "--address", head.address, "--working-dir", str(ROOT), "--",
         "mixsize-ray", "train", "search_spaces/cifar_s28_dplus.yaml", "--smoke",
         "--set", "ray.num_workers=2", "--set", "tracking.enabled=false", "--set", f"train.output_dir={out}",
         "--set", "train.name=job"],
        env=head.env, capture_output=True, text=True, timeout=540,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "succeeded" in log
    listing = subprocess.run([str(BIN / "ray"), "job", "list", "--address", head.address], env=head.env,
                             capture_output=True, text=True).stdout
    assert "SUCCEEDED" in listing
    # the job ran on this cluster (its temp dir) and wrote the checkpoint + sweep
    ckpts = sorted((out / "job").glob("checkpoint_*/sweep.json"))
    assert ckpts, log[-3000:]
    assert any(head.temp_dir.glob("session_*/logs/job-driver-*.log"))


@pytest.fixture
def prometheus(tmp_path):
    """Starts Prometheus on 127.0.0.1 with the shipped config pointed at a head's temp dir."""
    binary = require_tool("prometheus", "prometheus")
    procs = []

    def start(temp_dir: Path) -> str:
        cfg = yaml.safe_load((ROOT / "dashboards/prometheus/prometheus.yml").read_text())
        cfg["global"]["scrape_interval"] = cfg["global"]["evaluation_interval"] = "1s"
        cfg["scrape_configs"][0]["file_sd_configs"][0]["files"] = [str(temp_dir / "prom_metrics_service_discovery.json")]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(cfg))
        port = free_port()
        proc = subprocess.Popen([binary, f"--config.file={tmp_path / 'prometheus.yml'}",
                                 f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.path={tmp_path / 'tsdb'}"],
                                stdout=open(tmp_path / "prometheus.log", "w"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                _get(f"{url}/-/ready", timeout=2)
                return url
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "prometheus.log").read_text()
                time.sleep(0.5)

    yield start
    for proc in procs:  # stopped by PID
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _series(text: str) -> set[str]:
    """Metric names of a Prometheus text exposition that carry ``run="live"``."""
    return {line.split("{", 1)[0] for line in text.splitlines()
            if line.startswith("ray_mixsize_") and f'run="{RUN}"' in line}


def _finite_points(prom: str, expr: str, start: float, end: float) -> int:
    query = urllib.parse.urlencode({"query": expr, "start": start, "end": end, "step": "1"})
    doc = json.loads(_get(f"{prom}/api/v1/query_range?{query}"))
    assert doc["status"] == "success", doc
    return sum(1 for s in doc["data"]["result"] for _, v in s["values"] if math.isfinite(float(v)))


def test_a_training_feeds_every_dashboard_query(head, tmp_path, prometheus):
    deadline = time.monotonic() + 60  # the head writes the service-discovery file with its dashboard
    while not (head.temp_dir / "prom_metrics_service_discovery.json").exists():
        assert time.monotonic() < deadline, "no prom_metrics_service_discovery.json"
        time.sleep(1)
    prom = prometheus(head.temp_dir)
    start = time.time()
    log = tmp_path / "job.log"
    job = subprocess.Popen(
        [str(BIN / "ray"), "job", "submit", "--address", head.address, "--working-dir", str(ROOT), "--",
         "mixsize-ray", "train", "search_spaces/cifar_s28_bplus.yaml", *TRAIN,
         "--set", f"train.output_dir={tmp_path / 'runs'}"],
        env=head.env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    # Ray's own endpoint, on loopback, polled while the job runs (a gauge goes with its worker):
    # every exported series of every live metric shows up for this run
    seen: set[str] = set()
    deadline = time.monotonic() + 540
    while job.poll() is None:
        assert time.monotonic() < deadline, "the job did not end in 540 s"
        try:
            seen |= _series(_get(f"http://127.0.0.1:{head.metrics_port}/metrics", timeout=5))
        except OSError:
            pass
        time.sleep(0.5)
    assert job.returncode == 0, log.read_text()[-4000:]
    want = {s for m in live_names.ALL for s in m.series}
    assert want <= seen, f"missing on Ray's endpoint: {sorted(want - seen)}"
    time.sleep(4)  # a few more scrapes after the last export
    end = time.time()

    # the same data through Prometheus: every query of the Grafana dashboard returns finite points
    empty = [e for e in exprs() if _finite_points(prom, fill_variables(e, "10s"), start, end) == 0]
    assert not empty, "queries without data:\n" + "\n".join(empty)
    targets = json.loads(_get(f"{prom}/api/v1/targets"))["data"]["activeTargets"]
    assert targets and all(t["health"] == "up" for t in targets if str(head.metrics_port) in t["scrapeUrl"])
