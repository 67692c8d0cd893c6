"""Params flattening and run tags."""

from __future__ import annotations

from mixsize_ray.config import load_config
from mixsize_ray.tracking.params import param_value, regime_table_columns, run_params, run_tags

SETS = ["regime.sizes=[16,32,48]", "regime.probs=[0.25,0.5,0.25]", "regime.mode=B+", "regime.base_size=32"]


def test_params_are_the_flat_config_as_strings():
    cfg = load_config(None, SETS)
    p = run_params(cfg)
    assert set(p) == set(cfg.flat())
    assert all(isinstance(v, str) for v in p.values())
    assert p["regime.sizes"] == "[16, 32, 48]"
    assert p["regime.p_16"] == "0.25" and p["regime.p_32"] == "0.5" and p["regime.p_48"] == "0.25"
    assert p["regime.mode"] == "B+" and p["optim.lr"] == "0.1" and p["train.sweep_sizes"] == "None"
    assert p["tracking.enabled"] == "True"


def test_param_value_forms():
    assert param_value([0.2, 0.3]) == "[0.2, 0.3]"
    assert param_value(None) == "None"
    assert param_value(3) == "3"
    assert len(param_value("x" * 10000)) == 6000  # MLflow's limit


def test_tags_name_the_regime_and_nest_under_a_parent():
    cfg = load_config(None, [*SETS, "tracking.parent_run_id=" + "a" * 32])
    tags = run_tags(cfg, run_dir="/runs/x")
    assert tags["mode"] == "B+" and tags["sampling"] == "step"
    assert tags["dataset"] == "shapes" and tags["model"] == "resnet20"
    assert tags["run_dir"] == "/runs/x" and tags["mlflow.parentRunId"] == "a" * 32
    assert "mlflow.parentRunId" not in run_tags(load_config(None, SETS))


def test_regime_table_columns_one_row_per_size():
    from mixsize_ray.core.regime import regime_from_config

    table = regime_from_config(load_config(None, SETS), world_size=2).solve().to_json()
    cols = regime_table_columns(table)
    assert cols["size"] == [16, 32, 48]
    assert len({len(v) for v in cols.values()}) == 1
    assert cols["batch"][0] > cols["batch"][2]  # B+: small images, big batches


def test_no_environment_secret_reaches_params_or_tags(monkeypatch):
    from mixsize_ray.config import load_config
    from mixsize_ray.tracking.params import run_params, run_tags

    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", secret)
    cfg = load_config(None, ["tracking.uri=sqlite:///x.db"])
    logged = {**run_params(cfg), **run_tags(cfg, run_dir="/runs/x")}
    assert not [k for k, v in logged.items() if secret in str(v)]
    assert not [k for k in logged if "secret" in k.lower() or "token" in k.lower() or "password" in k.lower()]
