"""The PBT explore step: p stays on the simplex above its floor, alpha and LR stay in their ranges, the same seed
gives the same sequence, and only regimes the budget solver accepts come out."""

from __future__ import annotations

import copy
import random

import pytest

from mixsize_ray.tune.dims import Dimension
from mixsize_ray.tune.perturb import (
    Explorer,
    infeasible,
    initial_population,
    perturb_probs,
    perturb_value,
    project_floor,
)
from mixsize_ray.tune.spec import load_space, parse_space


@pytest.fixture(scope="module")
def spec():
    raw = copy.deepcopy(load_space("search_spaces/quickstart.yaml").raw)
    raw["search"].update(scheduler="pbt", num_samples=4, pbt={"resample_probability": 0.3, "seed": 5})
    return parse_space(raw)


@pytest.mark.parametrize("seed", range(20))
def test_perturbed_p_stays_on_the_simplex_above_the_floor(seed):
    rng = random.Random(seed)
    p = [0.7, 0.1, 0.1, 0.1]
    for _ in range(30):
        p = perturb_probs(p, rng, sigma=1.5, floor=0.05, resample_probability=0.2)
        assert abs(sum(p) - 1) < 1e-12 and min(p) >= 0.05 - 1e-12 and len(p) == 4


def test_project_floor_keeps_ratios_of_free_shares():
    p = project_floor([0.01, 0.2, 0.6], 0.1)
    assert p[0] == 0.1 and abs(p[2] / p[1] - 3) < 1e-12 and abs(sum(p) - 1) < 1e-12
    with pytest.raises(ValueError, match="floor"):
        project_floor([1, 1], 0.6)


def test_perturbation_moves_p_and_zero_sigma_does_not():
    same = perturb_probs([0.4, 0.6], random.Random(0), sigma=1e-12, floor=0.05)
    assert all(abs(a - b) < 1e-9 for a, b in zip(same, [0.4, 0.6], strict=True))
    assert perturb_probs([0.4, 0.6], random.Random(0), sigma=1.0, floor=0.05) != [0.4, 0.6]


def test_float_values_stay_in_their_range():
    d = Dimension("optim.lr", "optim.lr", "float", low=0.03, high=0.1, log=True)
    rng = random.Random(2)
    v = 0.05
    for _ in range(200):
        v = perturb_value(v, d, rng, (0.5, 2.0), 0.3)
        assert 0.03 <= v <= 0.1


def test_same_seed_same_sequence(spec):
    donor = initial_population(spec)[0]
    a, b = Explorer(spec), Explorer(spec)
    assert [a(donor) for _ in range(3)] == [b(donor) for _ in range(3)]
    assert initial_population(spec) == initial_population(spec)


def test_population_enqueue_first_fixed_arm_skipped(spec):
    pop = initial_population(spec)
    assert [m["trial_number"] for m in pop] == [0, 1, 2, 3]
    assert pop[0]["regime.mode"] == "D+" and pop[0]["probs"] == pytest.approx([0.2, 0.3, 0.3, 0.2])
    assert pop[1]["regime.mode"] == "B+"  # the enqueued fixed control is not a PBT member
    assert all(infeasible(spec, m) is None for m in pop)


def test_explorer_gives_feasible_members_in_range(spec):
    ex = Explorer(spec)
    lr, alpha = spec.dim("optim.lr"), spec.dim("optim.smoothing_alpha")
    for member in initial_population(spec):
        for _ in range(5):
            member = ex(member)
            assert infeasible(spec, member) is None
            assert min(member["probs"]) >= spec.simplex.floor - 1e-12 and abs(sum(member["probs"]) - 1) < 1e-12
            assert lr.low <= member["optim.lr"] <= lr.high and alpha.low <= member["optim.smoothing_alpha"] <= alpha.high


def test_explorer_keeps_donor_p_when_no_perturbation_is_feasible(spec, monkeypatch):
    import mixsize_ray.tune.perturb as perturb

    monkeypatch.setattr(perturb, "infeasible", lambda s, m: "mean size out of range")
    donor = initial_population(spec)[0]
    assert Explorer(spec)(donor)["probs"] == donor["probs"]


def test_infeasible_names_a_violated_constraint(spec):
    member = {**initial_population(spec)[0], "probs": [0.85, 0.05, 0.05, 0.05]}  # mean size ~18 < 20
    assert "mean_size" in infeasible(spec, member)
