"""Step schedule: identical on every rank, shares converge to p, exact resume, image-fraction coverage."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from mixsize_ray.core.regime import SizeRegime
from mixsize_ray.core.schedule import StepSchedule
from mixsize_ray.errors import ConfigError


def make(sampling="step", n=4096, seed=0, world=1, probs=(0.2, 0.3, 0.3, 0.2), **kw):
    table = SizeRegime([40, 32, 24, 16], list(probs), base_size=32, base_batch=16, mode="B+",
                       sampling=sampling, world_size=world, num_images=n).solve()
    return StepSchedule(table, num_images=n, seed=seed, **kw)


def seq(steps):
    return [(s.size, s.batch, s.duplicates, tuple(s.indices.tolist())) for s in steps]


def test_same_sequence_on_simulated_ranks():
    # each "rank" builds its own schedule object from the same (seed, epoch): identical steps
    ranks = [make(world=2) for _ in range(2)]
    for epoch in range(3):
        a, b = (seq(r.epoch_steps(epoch)) for r in ranks)
        assert a == b
    assert seq(ranks[0].epoch_steps(0)) != seq(ranks[0].epoch_steps(1))  # epochs differ
    assert seq(make(seed=1).epoch_steps(0)) != seq(make(seed=0).epoch_steps(0))  # seeds differ


def test_rank_slices_are_disjoint_and_cover_the_step():
    s = make(world=2).epoch_steps(0)[0]
    r0, r1 = s.rank_indices(0, 2), s.rank_indices(1, 2)
    assert len(r0) == len(r1) == s.batch // 2
    assert set(r0.tolist()).isdisjoint(r1.tolist())
    assert torch.equal(torch.cat([r0, r1]), s.indices)
    with pytest.raises(ConfigError, match="multiple of the world size 3"):
        s.rank_indices(0, 3)  # batches here are 10/16/28/64: none divides by 3


def test_step_shares_converge_to_p():
    sched = make(n=200_000)
    counts = Counter(s.size for s in sched.epoch_steps(0))
    n = sum(counts.values())
    for size, p in zip([40, 32, 24, 16], [0.2, 0.3, 0.3, 0.2], strict=True):
        share = counts[size] / n
        # binomial 5-sigma bound
        assert abs(share - p) < 5 * math.sqrt(p * (1 - p) / n), (size, share, p)


def test_each_image_at_most_once_per_epoch_in_step_mode():
    steps = make().epoch_steps(0)
    idx = torch.cat([s.indices for s in steps]).tolist()
    assert len(idx) == len(set(idx))
    assert all(s.batch == {40: 10, 32: 16, 24: 28, 16: 64}[s.size] for s in steps)


def test_resume_continues_the_exact_sequence():
    full = make(seed=3)
    uninterrupted = [seq(full.epoch_steps(e)) for e in range(3)]
    resumed = make(seed=3)  # a fresh process: no shared state
    resumed.set_epoch(1, start_step=7)
    tail = seq(resumed())
    assert tail == uninterrupted[1][7:]
    assert [s.step for s in resumed()][:2] == [7, 8]


def test_image_fraction_covers_each_image_once():
    sched = make(sampling="image-fraction", n=1000)
    steps = sched.epoch_steps(0)
    idx = torch.cat([s.indices for s in steps]).tolist()
    assert sorted(idx) == list(range(1000))  # world size 1: every image exactly once
    imgs = Counter()
    for s in steps:
        imgs[s.size] += s.batch
    for size, p in zip([40, 32, 24, 16], [0.2, 0.3, 0.3, 0.2], strict=True):
        assert imgs[size] == round(p * 1000)
    # interleaved, not grouped by size
    sizes = [s.size for s in steps]
    assert sizes != sorted(sizes) and sizes != sorted(sizes, reverse=True)


def test_image_fraction_world_size_keeps_multiples():
    sched = make(sampling="image-fraction", n=1001, world=2)
    steps = sched.epoch_steps(0)
    assert all(s.batch % 2 == 0 for s in steps)
    idx = torch.cat([s.indices for s in steps]).tolist()
    assert len(idx) == len(set(idx)) and len(idx) >= 1001 - 4 * 2


def test_epoch_and_progressive_modes():
    ep = make(sampling="epoch")
    for e in range(4):
        assert len({s.size for s in ep.epoch_steps(e)}) == 1
    prog = make(sampling="progressive", epochs=10)
    sizes = [prog.epoch_steps(e)[0].size for e in range(10)]
    assert sizes == sorted(sizes)  # small to large
    # shares of epochs follow p: 16 (0.2) -> 2 epochs, 24 (0.3) -> 3, 32 (0.3) -> 3, 40 (0.2) -> 2
    assert Counter(sizes) == {16: 2, 24: 3, 32: 3, 40: 2}


def test_max_steps_and_too_small_dataset():
    assert len(make(max_steps_per_epoch=5).epoch_steps(0)) == 5
    with pytest.raises(ConfigError, match="data.train_size"):
        make(n=5)
