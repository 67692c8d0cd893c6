"""Search-space YAML parsing: valid spaces, and every kind of bad input refused with one line naming the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mixsize_ray.config import Config
from mixsize_ray.errors import ConfigError
from mixsize_ray.tune.spec import default_params, load_space, parse_space, trial_config

ROOT = Path(__file__).resolve().parents[3]


def test_quickstart_parses():
    spec = load_space(ROOT / "search_spaces/quickstart.yaml")
    assert spec.simplex.sizes == (16, 24, 32, 40) and spec.simplex.floor > 0
    assert spec.modes == ["B+", "D+", "fixed"]
    assert [o.name for o in spec.objectives] == ["top1_cal_band_16_48", "top1_cal_32"] and spec.multi_objective
    assert spec.dim("optim.lr").kind == "float" and spec.dim("optim.lr").log
    assert spec.search.enqueue and spec.sweep_sizes == (16, 24, 32, 40, 48)


def test_dimension_types_follow_the_config(raw_space):
    raw_space["space"]["smoothing_alpha"] = [None, 0.9]
    raw_space["space"]["params"] = {"train.seed": {"low": 0, "high": 2},
                                    "optim.weight_decay": {"low": 1e-5, "high": 1e-3, "log": True},
                                    "optim.label_smoothing": [0.0, 0.1]}
    raw_space["space"]["mode"] = ["B+", "D+", "fixed"]
    raw_space["objectives"] = [{"kind": "target"}, {"kind": "band", "low": 16, "high": 24},
                               {"kind": "size", "size": 16, "calibrated": False}, {"kind": "steps"}]
    spec = parse_space(raw_space)
    assert spec.dim("train.seed").kind == "int" and spec.dim("optim.weight_decay").kind == "float"
    assert spec.dim("optim.smoothing_alpha").choices == (None, 0.9)
    assert spec.multi_objective and [o.mode for o in spec.objectives] == ["max", "max", "max", "min"]
    assert spec.objectives[1].sizes == (16, 24) and spec.objectives[2].name == "top1_16"


def test_fixed_is_a_typed_config_with_defaults(raw_space):
    raw_space["fixed"]["optim"] = {"weight_decay": "1e-4"}  # YAML 1.1 reads 1e-4 as a string
    spec = parse_space(raw_space, overrides=["train.epochs=3"])
    assert isinstance(spec.fixed, Config)
    assert spec.fixed.optim.weight_decay == 1e-4 and spec.fixed.train.epochs == 3
    assert spec.fixed.regime.tolerance == 0.15 and spec.fixed.data.train_size == 512
    assert spec.fixed.optim.momentum == 0.9  # not given: the config's default
    assert spec.base == (32, 32, 1)


def test_trial_config_is_built_in_memory(raw_space, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    raw_space["search"]["trial_seed"] = "per-trial"
    raw_space["fixed"]["train"]["seed"] = 10
    raw_space["search"]["enqueue"] = [{"mode": "D+", "probs": [0.1, 0.2, 0.3, 0.4], "lr": 0.2}]
    spec = parse_space(raw_space)  # checks every bound and the enqueued point
    assert list(tmp_path.iterdir()) == []  # nothing written
    cfg = trial_config(spec, default_params(spec), number=2)
    assert cfg["regime"]["mode"] == "B+" and cfg["regime"]["sizes"] == [16, 24, 32, 40]
    assert cfg["regime"]["probs"] == pytest.approx([0.25] * 4)
    assert (cfg["regime"]["base_size"], cfg["regime"]["base_batch"], cfg["regime"]["base_duplicates"]) == (32, 32, 1)
    assert cfg["optim"]["lr"] == 0.05 and cfg["optim"]["smoothing_alpha"] == 0.5  # the ranges' low ends
    assert cfg["train"]["seed"] == 12 and cfg["train"]["output_dir"] == spec.fixed.train.output_dir
    fixed_arm = trial_config(spec, {**default_params(spec), "regime.mode": "fixed"})
    assert fixed_arm["regime"]["sizes"] == [32] and fixed_arm["regime"]["probs"] == [1.0]


def _set(path: str, value):
    def mutate(raw):
        keys = path.split("/")
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        if value is _DELETE:
            node.pop(keys[-1])
        else:
            node[keys[-1]] = value
    return mutate


_DELETE = object()

INVALID = [
    ("unknown top key", _set("colour", 1), "colour"),
    ("unknown space key", _set("space/colour", 1), "space.colour"),
    ("unknown config key", _set("space/params", {"optim.nope": [1, 2]}), "space.params.optim.nope"),
    ("unknown section", _set("space/params", {"foo.bar": [1, 2]}), "space.params.foo.bar"),
    ("unknown range key", _set("space/lr", {"low": 0.1, "high": 0.2, "scale": 2}), "space.lr.scale"),
    ("low > high", _set("space/lr", {"low": 0.4, "high": 0.05}), "space.lr"),
    ("low == high", _set("space/smoothing_alpha", {"low": 0.5, "high": 0.5}), "space.smoothing_alpha"),
    ("log with low 0", _set("space/lr", {"low": 0, "high": 1, "log": True}), "space.lr.low"),
    ("int range, float bound", _set("space/params", {"train.seed": {"low": 0.5, "high": 2}}),
     "space.params.train.seed.low"),
    ("range on a string key", _set("space/lr_scaling", {"low": 0, "high": 1}), "space.lr_scaling"),
    ("empty choices", _set("space/lr_scaling", []), "space.lr_scaling"),
    ("empty simplex", _set("space/sizes", []), "space.sizes"),
    ("single-size simplex", _set("space/sizes", [32]), "space.sizes"),
    ("duplicate sizes", _set("space/sizes", [16, 16, 32]), "space.sizes"),
    ("floor >= 1/K", _set("space/simplex", {"floor": 0.3}), "space.simplex.floor"),
    ("zero floor without drop", _set("space/simplex", {"floor": 0.0}), "space.simplex.floor"),
    ("budget unreachable", _set("fixed/regime/max_batch", 40), "space.sizes"),
    ("bad mode", _set("space/mode", ["C+"]), "space.mode"),
    ("only the control arm", _set("space/mode", ["fixed"]), "space.mode"),
    # errors name the field by its path in the YAML (the config key is said after it)
    ("value the config refuses", _set("space/lr", {"low": -1.0, "high": 1.0}), "space.lr"),
    ("choice the config refuses", _set("space/smoothing_alpha", [0.5, 1.5]), "space.smoothing_alpha"),
    ("param value the config refuses", _set("space/params", {"optim.weight_decay": [-1.0, 0.1]}),
     "space.params.optim.weight_decay"),
    ("fixed value the config refuses", _set("fixed/optim", {"label_smoothing": 1.5}), "fixed.optim.label_smoothing"),
    ("fixed value of the wrong type", _set("fixed/train/epochs", "two"), "fixed.train.epochs"),
    ("unknown key in fixed", _set("fixed/optim", {"smoothing": {"alpha": 0.9}}), "fixed.optim.smoothing"),
    ("unknown section in fixed", _set("fixed/colour", {"a": 1}), "fixed.colour"),
    ("unknown dataset in fixed", _set("fixed/data/name", "mnist"), "fixed.data.name"),
    ("reserved key in fixed", _set("fixed/regime/sizes", [16, 32]), "fixed.regime.sizes"),
    ("searched key also fixed", _set("fixed/optim", {"lr": 0.1}), "fixed.optim.lr"),
    ("searched alpha also fixed", _set("fixed/optim", {"smoothing_alpha": 0.9}), "fixed.optim.smoothing_alpha"),
    ("shortcut key in params", _set("space/params", {"optim.lr": [0.1, 0.2]}), "space.params.optim.lr"),
    ("objective size not evaluated", _set("objectives", [{"kind": "target", "size": 20}]), "objectives[0].size"),
    ("band outside the sweep", _set("objectives", [{"kind": "band", "low": 41, "high": 47}]), "objectives[0]"),
    ("band low >= high", _set("objectives", [{"kind": "band", "low": 32, "high": 16}]), "objectives[0]"),
    ("unknown objective", _set("objectives", [{"kind": "top5"}]), "objectives[0].kind"),
    ("size objective without size", _set("objectives", [{"kind": "size"}]), "objectives[0].size"),
    ("duplicate objectives", _set("objectives", [{"kind": "target"}, {"kind": "target", "size": 32}]),
     "objectives"),
    ("unknown constraint", _set("constraints/colour", 1), "constraints.colour"),
    ("constraint low >= high", _set("constraints/mean_size", {"low": 30, "high": 20}), "constraints.mean_size"),
    ("compute ratio <= 0", _set("constraints/compute_ratio", {"max": 0}), "constraints.compute_ratio.max"),
    ("unknown search key", _set("search/colour", 1), "search.colour"),
    ("unknown sampler", _set("search/sampler", "cmaes2"), "search.sampler"),
    ("zero samples", _set("search/num_samples", 0), "search.num_samples"),
    ("bad name", _set("name", "a b"), "name"),
    ("missing space", _set("space", _DELETE), "space"),
    ("enqueue probs length", _set("search/enqueue", [{"probs": [0.5, 0.5]}]), "search.enqueue.probs"),
    ("enqueue probs under floor", _set("search/enqueue", [{"probs": [0.01, 0.33, 0.33, 0.33]}]),
     "search.enqueue.probs"),
    ("enqueue unknown key", _set("search/enqueue", [{"colour": 1}]), "search.enqueue.colour"),
    ("asha bad factor", _set("search/asha", {"reduction_factor": 1}), "search.asha.reduction_factor"),
]


@pytest.mark.parametrize("mutate, field", [pytest.param(m, f, id=i) for i, m, f in INVALID])
def test_invalid_space_is_one_line_naming_the_field(raw_space, mutate, field):
    mutate(raw_space)
    with pytest.raises(ConfigError) as err:
        parse_space(raw_space)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(field + ": expected "), msg


def _cli(args, cwd):
    return subprocess.run([sys.executable, "-m", "mixsize_ray.cli", "tune", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=180)


@pytest.mark.parametrize("mutate, needle", [
    (_set("space/lr", {"low": 0.4, "high": 0.05}), "space.lr"),
    (_set("search/storage", "sqlite:////nonexistent-dir/sub/optuna.db"), "search.storage"),
    (_set("space/sizes", [32]), "space.sizes"),
])
def test_cli_bad_input_exits_2_before_anything_starts(raw_space, tmp_path, mutate, needle):
    mutate(raw_space)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(raw_space))
    out = tmp_path / "out"
    proc = _cli([str(space), "--out", str(out)], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mixsize-ray: error: ") and needle in lines[0]
    assert not out.exists() or not any(out.iterdir())  # no experiment folder, no trial


def test_cli_resume_without_an_earlier_search(raw_space, tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(raw_space))
    proc = _cli([str(space), "--out", str(tmp_path / "out"), "--resume"], tmp_path)
    assert proc.returncode == 2 and "--resume" in proc.stderr
