"""A changed regime on resume: refused for a plain re-run of the same name, allowed only through a scheduler's
Start, and only in the keys that Start names."""

from __future__ import annotations

import pytest

from mixsize_ray.config import load_config
from mixsize_ray.errors import ConfigError
from mixsize_ray.train.checkpoint import save_checkpoint
from mixsize_ray.train.preflight import Start, preflight

BASE = ["tracking.enabled=false", "data.train_size=640"]


def cfg_at(tmp_path, name, *extra):
    return load_config("search_spaces/cifar_s28_dplus.yaml",
                       [*BASE, f"train.output_dir={tmp_path}", f"train.name={name}", *extra])


def donor(tmp_path):
    cfg = cfg_at(tmp_path, "donor")
    return str(save_checkpoint(tmp_path / "donor" / "checkpoint_1", {"epoch": 0, "step": 0, "global_step": 5},
                               config_yaml=cfg.to_yaml()))


def test_plain_rerun_with_another_regime_is_refused(tmp_path):
    donor(tmp_path)
    changed = cfg_at(tmp_path, "donor", "optim.lr=0.5")
    with pytest.raises(ConfigError, match="optim.lr"):
        preflight(changed)
    with pytest.raises(ConfigError, match="optim.lr"):  # a Start does not lift the check on the run's own checkpoint
        preflight(changed, start=Start(donor(tmp_path), may_change=("optim.lr",)))


def test_start_allows_only_the_keys_it_names(tmp_path):
    path = donor(tmp_path)
    new = cfg_at(tmp_path, "child", "optim.lr=0.5")
    facts = preflight(new, start=Start(path, stop_after_epoch=1, may_change=("optim.lr",)))
    assert facts.resume is None and facts.start.checkpoint == path
    with pytest.raises(ConfigError, match="start.checkpoint") as e:
        preflight(new, start=Start(path, may_change=("regime.probs",)))
    assert "optim.lr" in str(e.value)
    with pytest.raises(ConfigError, match="start.checkpoint"):
        preflight(cfg_at(tmp_path, "child2"), start=Start(str(tmp_path / "nowhere")))
