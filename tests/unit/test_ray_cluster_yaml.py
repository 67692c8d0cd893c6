"""ray_cluster.yaml validates against Ray's own cluster schema, offline; a broken copy must fail."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = Path(__file__).resolve().parents[2] / "ray_cluster.yaml"


def load():
    return yaml.safe_load(CLUSTER.read_text())


def test_cluster_yaml_is_valid():
    cfg = load()
    validate_config(prepare_config(copy.deepcopy(cfg)))
    assert cfg["provider"]["type"] == "aws"
    assert cfg["docker"]["image"].startswith("rayproject/ray:2.60.0") and "gpu" in cfg["docker"]["image"]
    assert any("pip install" in c and "mixsize-ray" in c for c in cfg["setup_commands"])
    gpu = cfg["available_node_types"]["gpu_worker"]
    assert gpu["min_workers"] == 0 and gpu["max_workers"] >= 1  # autoscaling GPU workers


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c["available_node_types"]["gpu_worker"].__setitem__("min_workers", "two"),
        lambda c: c.__setitem__("not_a_ray_key", 1),
        lambda c: c["provider"].__delitem__("type"),
    ],
)
def test_broken_copy_fails(breakage, tmp_path):
    cfg = load()
    breakage(cfg)
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(cfg))
    with pytest.raises((jsonschema.ValidationError, ValueError, KeyError)):
        validate_config(prepare_config(yaml.safe_load(broken.read_text())))


def test_head_node_type_must_exist():
    cfg = load()
    cfg["head_node_type"] = "missing"
    with pytest.raises(ValueError, match="head_node_type"):
        validate_config(prepare_config(cfg))
