"""Config: YAML load, overrides, one-line errors naming the field."""

from __future__ import annotations

import pytest
import yaml

from mixsize_ray.config import Config, load_config
from mixsize_ray.errors import ConfigError


def test_defaults_and_roundtrip(tmp_path):
    cfg = load_config(None)
    assert isinstance(cfg, Config) and cfg.data.name == "shapes" and cfg.regime.mode == "fixed"
    p = tmp_path / "c.yaml"
    p.write_text(cfg.to_yaml())
    assert load_config(p).to_dict() == cfg.to_dict()


def test_overrides_parse_yaml_values(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({"regime": {"sizes": [16, 32], "probs": [0.5, 0.5], "mode": "B+"}}))
    cfg = load_config(p, ["regime.base_batch=32", "optim.smoothing_alpha=0.9", "train.sweep_sizes=[16,24]"])
    assert cfg.regime.base_batch == 32 and cfg.optim.smoothing_alpha == 0.9
    assert cfg.train.sweep_sizes == [16, 24]
    flat = cfg.flat()
    assert flat["regime.p_16"] == 0.5 and flat["regime.mode"] == "B+"


@pytest.mark.parametrize(
    "overrides, field",
    [
        (["regime.mode=C+"], "regime.mode"),
        (["regime.sampling=uniform"], "regime.sampling"),
        (["regime.probs=[0.5]", "regime.sizes=[16,32]"], "regime.probs"),
        (["model.name=vgg"], "model.name"),
        (["data.name=mnist"], "data.name"),
        (["optim.lr=-1"], "optim.lr"),
        (["optim.smoothing_alpha=1.0"], "optim.smoothing_alpha"),
        (["train.epochs=0"], "train.epochs"),
        (["train.epochs=1.5"], "train.epochs"),
        (["ray.num_workers=0"], "ray.num_workers"),
        (["regime.bogus=1"], "regime.bogus"),
        (["nosection.key=1"], "--set"),
        (["regime.sizes"], "--set"),
        (["train.amp=fp8"], "train.amp"),
        (["ray.use_gpu=maybe"], "ray.use_gpu"),
    ],
)
def test_invalid_values_name_the_field(overrides, field):
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    msg = str(err.value)
    assert msg.startswith(field), msg
    assert "expected" in msg and "got" in msg and "\n" not in msg


def test_unknown_section_and_bad_files(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("models: {name: resnet20}\n")
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(p)
    p.write_text("regime: [1, 2\n")
    with pytest.raises(ConfigError, match="valid YAML"):
        load_config(p)
    with pytest.raises(ConfigError, match="existing YAML file"):
        load_config(tmp_path / "missing.yaml")
