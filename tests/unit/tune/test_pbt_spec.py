"""search.scheduler: pbt and its search.pbt block: parsed, defaulted, and every bad value refused naming its field."""

from __future__ import annotations

import copy

import pytest

from mixsize_ray.errors import ConfigError
from mixsize_ray.tune.pbt_options import PBTOptions, parse_pbt
from mixsize_ray.tune.spec import load_space, parse_space

QUICK = load_space("search_spaces/quickstart.yaml").raw


def with_search(**search):
    raw = copy.deepcopy(QUICK)
    raw["search"] = {**raw["search"], **search}
    return raw


def test_static_search_is_the_default():
    spec = parse_space(copy.deepcopy(QUICK))
    assert spec.search.scheduler == "optuna" and spec.search.pbt is None


def test_pbt_block_parsed_with_defaults_and_seed():
    spec = parse_space(with_search(scheduler="pbt", seed=4, pbt={"perturbation_interval": 2, "mutate": ["probs"]}))
    assert spec.search.pbt == PBTOptions(perturbation_interval=2, mutate=("probs",), seed=4)
    assert parse_pbt(None, 0).mode == "max" and parse_pbt({"metric": "loss"}, 0).mode == "min"


@pytest.mark.parametrize(("search", "field"), [
    ({"scheduler": "hyperband"}, "search.scheduler"),
    ({"scheduler": "pbt", "pbt": {"perturbation_interval": 0}}, "search.pbt.perturbation_interval"),
    ({"scheduler": "pbt", "pbt": {"perturbation_interval": 6}}, "search.pbt.perturbation_interval"),
    ({"scheduler": "pbt", "pbt": {"quantile_fraction": 0.6}}, "search.pbt.quantile_fraction"),
    ({"scheduler": "pbt", "pbt": {"quantile_fraction": 0}}, "search.pbt.quantile_fraction"),
    ({"scheduler": "pbt", "pbt": {"resample_probability": 1.5}}, "search.pbt.resample_probability"),
    ({"scheduler": "pbt", "pbt": {"probs_sigma": 0}}, "search.pbt.probs_sigma"),
    ({"scheduler": "pbt", "pbt": {"factors": []}}, "search.pbt.factors"),
    ({"scheduler": "pbt", "pbt": {"metric": "top5"}}, "search.pbt.metric"),
    ({"scheduler": "pbt", "pbt": {"mutate": ["momentum"]}}, "search.pbt.mutate"),
    ({"scheduler": "pbt", "pbt": {"seed": -1}}, "search.pbt.seed"),
    ({"scheduler": "pbt", "pbt": {"interval": 1}}, "search.pbt.interval"),
    ({"scheduler": "pbt", "pbt": [1]}, "search.pbt"),
    ({"scheduler": "pbt", "asha": True}, "search.asha"),
    ({"pbt": {"perturbation_interval": 1}}, "search.pbt"),
    ({"scheduler": "pbt", "num_samples": 1}, "search.num_samples"),
])
def test_invalid_pbt_options_name_their_field(search, field):
    with pytest.raises(ConfigError) as e:
        parse_space(with_search(**search))
    assert e.value.field == field and "\n" not in str(e.value)


def test_smoke_variant_keeps_one_perturbation(tmp_path):
    import yaml

    from mixsize_ray.tune.search import load_search_space

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(with_search(scheduler="pbt", pbt={"perturbation_interval": 2})))
    spec = load_search_space(p, smoke=True)
    assert spec.fixed.train.epochs == 3 and spec.search.pbt.perturbation_interval == 2
