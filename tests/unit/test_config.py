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


def test_plain_data_that_is_not_a_mapping_is_a_one_line_error():
    from mixsize_ray.config import config_from_dict

    for raw in ([["regime", {}]], "regime: {}", 3):
        with pytest.raises(ConfigError, match=r"^config: expected a YAML mapping of sections, got '(list|str|int)'"):
            config_from_dict(raw)
    assert config_from_dict(None).to_dict() == load_config(None).to_dict()


def test_allowed_values_are_the_ones_the_code_uses():
    """config.py validates against the names declared next to the code (one definition each)."""
    import mixsize_ray.config as c
    from mixsize_ray import models
    from mixsize_ray.core import lr, regime, weight_decay
    from mixsize_ray.data import datasets, transforms
    from mixsize_ray.models import MODELS

    assert c.MODES is regime.MODES and c.SAMPLINGS is regime.SAMPLINGS
    # the torch-free names (core/choices.py) are exactly what each registry implements
    assert tuple(datasets._INFO) == datasets.DATASETS
    assert all(callable(transforms.size_transform(st, 24, train=True)) for st in transforms.STYLES)
    assert tuple(models._BUILDERS) == MODELS
    assert c.DATASETS is datasets.DATASETS and c.MODELS is MODELS and c.WEIGHT_DECAY_ON is weight_decay.WEIGHT_DECAY_ON
    assert (c.LR_SCHEDULES, c.LR_SCALINGS, c.LR_SCALING_BY) == (lr.SCHEDULE_KINDS, lr.SCALING_RULES, lr.SCALING_BY)
    assert c.DATA_STYLES == ("auto", *transforms.STYLES)
    for field, value in [("model.name", "wrn28_10"), ("data.name", "cifar100"), ("optim.schedule", "constant"),
                         ("regime.sampling", "image-fraction"), ("data.style", "imagenet")]:
        assert load_config(None, [f"{field}={value}"]).flat()[field] == value
    with pytest.raises(ConfigError, match=r"optim.schedule: expected one of \['step', 'cosine', 'constant'\]"):
        load_config(None, ["optim.schedule=linear"])


def test_regime_section_is_the_core_regime_spec():
    import dataclasses

    from mixsize_ray.config import RegimeConfig
    from mixsize_ray.core.regime import RegimeSpec

    assert issubclass(RegimeConfig, RegimeSpec)
    assert [(f.name, f.type) for f in dataclasses.fields(RegimeConfig)] == [
        (f.name, f.type) for f in dataclasses.fields(RegimeSpec)]
    assert dataclasses.asdict(RegimeConfig()) == dataclasses.asdict(RegimeSpec()) == {
        "sizes": [32], "probs": [1.0], "base_size": 32, "base_batch": 128, "base_duplicates": 1, "mode": "fixed",
        "sampling": "step", "tolerance": 0.1, "max_batch": None, "max_duplicates": None}
