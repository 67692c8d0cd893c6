"""The serving-size choice on hand-made curves: exact sizes under each limit, ties, the AND of limits, and
the one-line errors (naming the limit and what the curve offers)."""

from __future__ import annotations

import math

import pytest

from mixsize_ray.errors import ConfigError
from mixsize_ray.serve.selection import Candidate, Constraint, meets, pick_size

# the most accurate size under 0.05 GFLOPs is 20, not the largest affordable 24
CURVE = [Candidate(32, 0.90, 0.08, {1: 4.0, 32: 40.0}), Candidate(16, 0.60, 0.02, {1: 1.0, 32: 9.0}),
         Candidate(24, 0.78, 0.05, {1: 2.5, 32: 25.0}), Candidate(20, 0.80, 0.03, {1: 3.0, 32: 14.0})]


def test_no_limit_picks_the_best_top1():
    choice = pick_size(CURVE, Constraint())
    assert choice.picked.size == 32 and choice.qualifying == (16, 20, 24, 32) and choice.best_top1 == 0.90
    assert [c.size for c in choice.candidates] == [16, 20, 24, 32]


@pytest.mark.parametrize("budget, size", [(0.05, 20), (0.049, 20), (0.03, 20), (0.029, 16), (0.08, 32), (1.0, 32)])
def test_max_gflops_picks_the_most_accurate_size_within_budget(budget, size):
    choice = pick_size(CURVE, Constraint(max_gflops=budget))
    assert choice.picked.size == size
    assert set(choice.qualifying) == {c.size for c in CURVE if c.gflops <= budget}


@pytest.mark.parametrize("points, size", [(0, 32), (9.99, 32), (10, 20), (12, 20), (30, 16), (100, 16)])
def test_within_picks_the_cheapest_qualifying_size(points, size):
    # 0.90 - 12 points = 0.78: size 24 qualifies at the boundary, but 20 is cheaper and qualifies too
    choice = pick_size(CURVE, Constraint(within_points=points))
    assert choice.picked.size == size
    if points == 12:
        assert choice.qualifying == (20, 24, 32)


def test_within_is_in_points_not_a_fraction():
    assert pick_size(CURVE, Constraint(within_points=0.5)).picked.size == 32  # 0.5 points, not 50 %


def test_latency_limit_uses_the_named_batch():
    assert pick_size(CURVE, Constraint(max_latency_ms=3.0)).picked.size == 20  # batch 1: 16, 20, 24 qualify
    assert pick_size(CURVE, Constraint(max_latency_ms=15.0, latency_batch=32)).picked.size == 20
    assert pick_size(CURVE, Constraint(max_latency_ms=25.0, latency_batch=32)).picked.size == 20
    assert pick_size(CURVE, Constraint(max_latency_ms=2.6)).picked.size == 24  # 20 is slower at batch 1


def test_limits_combine_as_and():
    k = Constraint(max_gflops=0.06, within_points=20)  # within: >= 0.70 -> 20, 24, 32; budget: 16, 20, 24
    choice = pick_size(CURVE, k)
    assert choice.qualifying == (20, 24) and choice.picked.size == 20


def test_ties_on_top1_go_to_the_cheaper_size_and_ties_on_cost_to_the_more_accurate():
    tied = [Candidate(24, 0.85, 0.05), Candidate(32, 0.85, 0.08), Candidate(16, 0.5, 0.02)]
    assert pick_size(tied, Constraint()).picked.size == 24
    same_cost = [Candidate(24, 0.80, 0.05), Candidate(25, 0.84, 0.05), Candidate(32, 0.85, 0.08)]
    assert pick_size(same_cost, Constraint(within_points=6)).picked.size == 25
    same_everything = [Candidate(25, 0.84, 0.05), Candidate(24, 0.84, 0.05)]
    assert pick_size(same_everything, Constraint(within_points=1)).picked.size == 24


def test_float_noise_at_the_within_boundary_still_qualifies():
    curve = [Candidate(16, 0.83, 0.02), Candidate(32, 0.85, 0.08)]  # 0.85 - 0.02 = 0.8299999999999...
    assert pick_size(curve, Constraint(within_points=2)).picked.size == 16
    assert meets(curve[0], Constraint(within_points=1.99), 0.85) is False


@pytest.mark.parametrize(
    "constraint, field, offer",
    [
        (Constraint(max_gflops=0.01), "--max-gflops", "0.02 GFLOPs (size 16)"),
        (Constraint(max_latency_ms=0.5), "--max-latency-ms", "1 ms at batch 1 (size 16)"),
        (Constraint(max_latency_ms=5.0, latency_batch=32), "--max-latency-ms", "9 ms at batch 32 (size 16)"),
        (Constraint(max_gflops=0.05, within_points=5), "limits", "within 5 points"),
    ],
)
def test_no_size_qualifies_is_one_line_naming_the_limit_and_the_best_offer(constraint, field, offer):
    with pytest.raises(ConfigError) as err:
        pick_size(CURVE, constraint)
    msg = str(err.value)
    assert msg.startswith(field) and offer in msg and "\n" not in msg


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"max_gflops": -1}, "--max-gflops"), ({"max_gflops": 0}, "--max-gflops"),
        ({"max_gflops": math.nan}, "--max-gflops"), ({"max_gflops": math.inf}, "--max-gflops"),
        ({"max_gflops": True}, "--max-gflops"), ({"max_latency_ms": -0.5}, "--max-latency-ms"),
        ({"within_points": -1}, "--within"), ({"within_points": 101}, "--within"),
        ({"within_points": "1"}, "--within"), ({"latency_batch": 0}, "--latency-batch"),
    ],
)
def test_invalid_limits_are_refused(kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}: expected"):
        Constraint(**kwargs)


def test_a_curve_without_what_the_limit_needs_is_refused():
    with pytest.raises(ConfigError, match="--max-gflops"):
        pick_size([Candidate(16, 0.5, None)], Constraint(max_gflops=1.0))
    with pytest.raises(ConfigError, match="--latency-batch"):
        pick_size([Candidate(16, 0.5, 0.1, {1: 1.0})], Constraint(max_latency_ms=1.0, latency_batch=32))
    with pytest.raises(ConfigError, match="curve"):
        pick_size([], Constraint())
