"""The shipped Grafana dashboard, checked statically (Grafana itself cannot be installed here): schema,
the ${datasource} variable, unique panel ids, every query filtered by session and run, PromQL that parses
(promtool), and the metric names of mixsize_ray/train/live_names.py on both sides: every series a query
reads is one the workers export, and every exported metric is drawn."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from mixsize_ray.train import live_names
from tests.services import require_tool

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "dashboards" / "grafana"
DASHBOARD = json.loads((GRAFANA / "mixsize.json").read_text())
SERIES = re.compile(r"\bray_mixsize_[a-z_]+")


def exprs() -> list[str]:
    return [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]


def test_schema_and_unique_ids():
    for key in ("title", "uid", "panels", "templating", "schemaVersion", "time", "refresh"):
        assert key in DASHBOARD, key
    ids = [p["id"] for p in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    for p in DASHBOARD["panels"]:
        assert p["type"] == "timeseries" and p["title"] and p["targets"], p.get("title")
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
    cells = set()  # panels do not overlap on Grafana's 24-column grid
    for p in DASHBOARD["panels"]:
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, p["title"]
        cells |= mine


def test_datasource_variable_and_filters():
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("SessionName", "run"):
        assert variables[name]["type"] == "query" and variables[name]["includeAll"] and variables[name]["multi"]
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    for p in DASHBOARD["panels"]:
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
    for e in exprs():
        selectors = re.findall(r"ray_mixsize_[a-z_]+\{([^}]*)\}", e)
        assert selectors and len(selectors) == len(SERIES.findall(e)), e  # every series has a selector
        for s in selectors:
            assert 'SessionName=~"$SessionName"' in s and 'run=~"$run"' in s, e


def test_queries_read_exactly_the_exported_metrics():
    exported = {s for m in live_names.ALL for s in m.series}
    queried = {s for e in exprs() for s in SERIES.findall(e)}
    assert queried <= exported, queried - exported  # nothing queried that no worker exports
    drawn = {m.name for m in live_names.ALL if set(m.series) & queried}
    assert drawn == {m.name for m in live_names.ALL}  # every exported metric has a panel


def test_the_panels_users_asked_for():
    titles = {p["title"] for p in DASHBOARD["panels"]}
    assert {"Images/s by size", "p95 step time by size", "Sampled vs target size share",
            "Slowest-rank gap"} <= titles
    p95 = next(p for p in DASHBOARD["panels"] if p["title"] == "p95 step time by size")
    assert p95["targets"][0]["expr"].startswith("histogram_quantile(0.95, sum by (run, size, le)")


def test_promql_parses(tmp_path):
    """promtool parses every expression (as recording rules, with Grafana's variables filled in)."""
    promtool = require_tool("promtool", "prometheus")
    rules = {"groups": [{"name": "mixsize", "rules": [
        {"record": f"mixsize:q{i}", "expr": fill_variables(e)} for i, e in enumerate(exprs())]}]}
    f = tmp_path / "rules.yml"
    f.write_text(yaml.safe_dump(rules))
    out = subprocess.run([promtool, "check", "rules", str(f)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def fill_variables(expr: str, rate_interval: str = "1m") -> str:
    """An expression as Grafana sends it with every session and run selected."""
    return (expr.replace("$__rate_interval", rate_interval).replace("$SessionName", ".+").replace("$run", ".+"))


def test_provisioning_points_at_prometheus_and_the_dashboard_folder():
    ds = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http://127.0.0.1:")
    dash = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "mixsize.yml").read_text())
    (provider,) = dash["providers"]
    assert provider["type"] == "file" and provider["options"]["path"]


@pytest.mark.parametrize("config", ["dashboards/prometheus/prometheus.yml"])
def test_promtool_checks_the_shipped_config(config):
    promtool = require_tool("promtool", "prometheus")
    out = subprocess.run([promtool, "check", "config", str(ROOT / config)], capture_output=True, text=True)
    assert out.returncode == 0 and "SUCCESS" in out.stdout + out.stderr, out.stdout + out.stderr
    sd = yaml.safe_load((ROOT / config).read_text())["scrape_configs"][0]["file_sd_configs"][0]["files"]
    assert sd == ["/tmp/ray/prom_metrics_service_discovery.json"]  # what a default Ray head writes
