"""The one mixed-size DataLoader: sampler layout, rank slicing, sizes in workers, D views, collate; the preset's
evaluation and calibration loaders."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import pytest
import torch
from torch.utils.data import get_worker_info

from mixsize_ray.data.datasets import normalization
from mixsize_ray.data.loader import (
    Batch,
    CalibrationBatches,
    CalibrationDraw,
    LoaderWorkers,
    MixSizeBatchSampler,
    SizedViewDataset,
    build_loader,
    mixsize_collate,
)
from mixsize_ray.data.presets import DataPreset
from mixsize_ray.data.shapes import ShapesDataset
from mixsize_ray.errors import ConfigError
from tests.unit.data.steps import Step


@dataclass
class Schedule:
    """Stand-in for core/schedule.py: a fixed list of steps per epoch, with a call counter."""

    steps: list[Step]
    calls: int = field(default=0)

    def __call__(self):
        self.calls += 1
        return self.steps


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return ShapesDataset(tmp_path_factory.mktemp("shapes"), "train", size=64, seed=0)


MEAN, STD = normalization("shapes")
PRESET = DataPreset("cifar", 64, MEAN, STD)
TRAIN = PRESET.transforms(train=True)


def test_sampler_items_are_sample_major():
    s = MixSizeBatchSampler(lambda: [Step(24, 3, 2, [5, 9, 1])])
    (items,) = list(s)
    assert items == [(5, 24, 0), (5, 24, 1), (9, 24, 0), (9, 24, 1), (1, 24, 0), (1, 24, 1)]


def test_sampler_calls_steps_fn_at_every_iteration():
    sched = Schedule([Step(16, 2, 1, torch.tensor([0, 1]), 0), Step(32, 2, 1, [2, 3], 1)])
    s = MixSizeBatchSampler(sched)
    assert len(s) == 2
    assert [it for batch in s for it in batch] == [(0, 16, 0), (1, 16, 0), (2, 32, 0), (3, 32, 0)]
    sched.steps = [Step(24, 1, 2, [9], 0)]  # what set_epoch on the owner's schedule does
    assert list(s) == [[(9, 24, 0), (9, 24, 1)]] and len(s) == 1


def test_ranks_get_disjoint_contiguous_halves():
    steps = [Step(16, 8, 2, list(range(10, 18)), 0), Step(32, 4, 1, [3, 1, 4, 1], 1)]
    r0 = list(MixSizeBatchSampler(lambda: steps, rank=0, world_size=2))
    r1 = list(MixSizeBatchSampler(lambda: steps, rank=1, world_size=2))
    for step, a, b in zip(steps, r0, r1, strict=True):
        ia = [i for i, _, v in a if v == 0]
        ib = [i for i, _, v in b if v == 0]
        assert ia + ib == list(step.indices)  # rank 0 first half, rank 1 second half
        assert len(a) == len(b) == step.batch // 2 * step.duplicates
        assert {s for _, s, _ in a + b} == {step.size}
    assert not {i for i, _, _ in r0[0]} & {i for i, _, _ in r1[0]}


def test_batch_not_divisible_by_world_size_is_a_clear_error():
    s = MixSizeBatchSampler(lambda: [Step(16, 6, 1, list(range(6)), step=7)], rank=1, world_size=4)
    with pytest.raises(
        ConfigError, match=r"step 7: batch: expected a global batch divisible by world_size=4, got 6"
    ):
        list(s)


@pytest.mark.parametrize(
    "kwargs",
    [{"rank": 2, "world_size": 2}, {"rank": -1, "world_size": 1}, {"rank": 0, "world_size": 0}],
)
def test_invalid_rank_or_world_size(kwargs):
    with pytest.raises(ConfigError):
        MixSizeBatchSampler(list, **kwargs)


def test_indices_must_match_batch():
    with pytest.raises(ConfigError, match="exactly batch=4 indices"):
        list(MixSizeBatchSampler(lambda: [Step(16, 4, 1, [0, 1, 2])]))


class RecordingTransforms:
    """A size -> transform factory that logs, to files, where transforms are built and applied."""

    def __init__(self, log_dir, inner):
        self.log_dir, self.inner = log_dir, inner

    def __call__(self, size):
        info = get_worker_info()
        with open(self.log_dir / "build.log", "a") as f:
            f.write(f"{os.getpid()} {info.id if info else -1} {size}\n")
        inner = self.inner(size)
        log = self.log_dir / "apply.log"

        def apply(img):
            wi = get_worker_info()
            with open(log, "a") as f:
                f.write(f"{os.getpid()} {wi.id if wi else -1} {size}\n")
            return inner(img)

        return apply


def test_sizes_reach_two_workers_and_each_batch_has_its_step_size(shapes, tmp_path):
    sizes = [16, 24, 32, 40, 16, 48, 24, 32]
    steps = [Step(s, 4, 2, [(7 * k + j) % 64 for j in range(4)], k) for k, s in enumerate(sizes)]
    loader = build_loader(shapes, RecordingTransforms(tmp_path, TRAIN), MixSizeBatchSampler(lambda: steps, seed=1),
                          LoaderWorkers(2))
    assert len(loader) == len(steps)
    batches = list(loader)
    for step, b in zip(steps, batches, strict=True):
        assert isinstance(b, Batch)
        assert b.images.shape == (8, 3, step.size, step.size) and b.images.dtype == torch.float32
        assert b.size == step.size and b.duplicates == 2 and b.batch_size == 4
        expected = [shapes.targets[i] for i in step.indices for _ in range(2)]
        assert b.targets.tolist() == expected and b.targets.dtype == torch.int64
    applied = [line.split() for line in (tmp_path / "apply.log").read_text().splitlines()]
    assert len(applied) == sum(s.batch * s.duplicates for s in steps)
    assert {int(pid) for pid, _, _ in applied}.isdisjoint({os.getpid()})  # only workers transformed
    assert {int(w) for _, w, _ in applied} == {0, 1}
    assert {int(s) for _, _, s in applied} == set(sizes)
    builds = [tuple(line.split()) for line in (tmp_path / "build.log").read_text().splitlines()]
    assert len(builds) == len(set(builds))  # built once per (worker, size): cached inside the worker
    assert all(int(pid) != os.getpid() for pid, _, _ in builds)


def test_views_are_distinct_augmentations_of_the_same_sample(shapes):
    D, B = 2, 16
    steps = [Step(64, B, D, list(range(B)), 0)]
    (b,) = list(build_loader(shapes, TRAIN, MixSizeBatchSampler(lambda: steps, seed=0)))
    views = b.images.view(B, D, 3, 64, 64)
    assert all(not torch.equal(views[i, 0], views[i, 1]) for i in range(B))
    assert torch.equal(b.targets.view(B, D)[:, 0], b.targets.view(B, D)[:, 1])
    # colour quantiles of the central region survive a +-4 px shift and a flip: each view is much closer to
    # the other view of its sample than to any other sample's view
    centre = b.images[:, :, 8:56, 8:56].flatten(2)  # [B*D, 3, 48*48]
    feats = (
        torch.quantile(centre, torch.tensor([0.1, 0.5, 0.9]), dim=2).permute(1, 0, 2).flatten(1)
    )  # [B*D, 9]
    dist = torch.cdist(feats, feats)
    rows, partner = torch.arange(B * D), torch.arange(B * D) ^ 1  # sample-major: rows 2i, 2i+1 are one sample
    d_partner = dist[rows, partner]
    dist[rows, partner] = float("inf")
    dist.fill_diagonal_(float("inf"))
    assert (d_partner < 0.6 * dist.min(1).values).all(), d_partner / dist.min(1).values


def test_getitems_decodes_each_sample_once(shapes):
    class Counting(torch.utils.data.Dataset):
        calls = 0

        def __len__(self):
            return len(shapes)

        def __getitem__(self, i):
            Counting.calls += 1
            return shapes[i]

    steps = [Step(32, 5, 3, [1, 2, 3, 4, 5], 0)]
    (b,) = list(build_loader(Counting(), TRAIN, MixSizeBatchSampler(lambda: steps, seed=0)))
    assert b.images.shape == (15, 3, 32, 32) and Counting.calls == 5
    assert SizedViewDataset(shapes, TRAIN)[(3, 24, 1)][0].shape == (3, 24, 24)


def test_two_ranks_cover_each_step_and_seeds_are_repeatable(shapes):
    steps = [Step(32, 8, 2, list(range(8, 16)), 0), Step(16, 8, 2, list(range(16, 24)), 1)]

    def load(rank, seed):
        return list(PRESET.train_loader(shapes, lambda: steps, rank=rank, world_size=2, workers=LoaderWorkers(1),
                                        seed=seed))

    r0, r1 = load(0, 5), load(1, 5)
    for step, a, b in zip(steps, r0, r1, strict=True):
        got = a.targets[::2].tolist() + b.targets[::2].tolist()
        assert got == [shapes.targets[i] for i in step.indices]
        assert a.images.shape[0] == b.images.shape[0] == 8
    again, other = load(0, 5), load(0, 6)
    assert all(torch.equal(x.images, y.images) for x, y in zip(r0, again, strict=True))
    assert not torch.equal(r0[0].images, other[0].images)
    # in-process loading (the per-step seed travels with the items) gives the workers' images
    in_process = list(PRESET.train_loader(shapes, lambda: steps, rank=0, world_size=2, seed=5))
    assert all(torch.equal(x.images, y.images) for x, y in zip(r0, in_process, strict=True))


def test_collate_validates_layout():
    img = torch.zeros(3, 8, 8)
    b = mixsize_collate([(img, 1, 0), (img, 1, 1), (img + 1, 2, 0), (img + 1, 2, 1)])
    assert b.images.shape == (4, 3, 8, 8) and b.size == 8 and b.duplicates == 2 and b.batch_size == 2
    assert b.targets.tolist() == [1, 1, 2, 2]
    with pytest.raises(ValueError, match="share one size"):
        mixsize_collate([(img, 1, 0), (torch.zeros(3, 9, 9), 1, 0)])
    with pytest.raises(ValueError, match="views must repeat"):
        mixsize_collate([(img, 1, 0), (img, 1, 0), (img, 1, 1)])


def test_batch_is_pin_memory_friendly():
    b = Batch(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64), 4, 1)
    moved = b.to("cpu")
    assert isinstance(moved, Batch) and moved.size == 4 and moved.duplicates == 1
    if not torch.cuda.is_available():
        pytest.skip("pinning needs CUDA")
    from torch.utils.data._utils.pin_memory import pin_memory

    pinned = pin_memory(b)
    assert isinstance(pinned, Batch) and pinned.images.is_pinned() and pinned.size == 4


def test_eval_loader_is_sequential_at_size(shapes):
    loader = PRESET.eval_loader(shapes, 24, batch_size=10)
    batches = list(loader)
    assert [len(t) for _, t in batches] == [10] * 6 + [4]
    assert all(x.shape[1:] == (3, 24, 24) for x, _ in batches)
    assert torch.cat([t for _, t in batches]).tolist() == shapes.targets
    first_again = next(iter(loader))[0]
    assert torch.equal(first_again, batches[0][0])  # deterministic


def test_calibration_batches_count_shape_and_repeatability(shapes):
    cal = PRESET.calibration_batches(shapes, 16, CalibrationDraw(batch_size=24, num_batches=4, seed=2), num_workers=1)
    assert len(cal) == 4
    a = list(cal)
    b = list(cal)
    assert len(a) == 4 and all(x.shape == (24, 3, 16, 16) for x in a)  # 96 > 64 images: cycles the dataset
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    c = list(PRESET.calibration_batches(shapes, 16, CalibrationDraw(24, 4, seed=3), num_workers=1))
    assert not torch.equal(a[0], c[0])


def test_in_process_calibration_has_an_rng_stream_of_its_own(shapes):
    cal = PRESET.calibration_batches(shapes, 16, CalibrationDraw(8, 3, seed=2))
    torch.manual_seed(0)
    a = list(cal)
    torch.manual_seed(1)  # what ran before does not matter
    caller = torch.get_rng_state()
    b = []
    for x in cal:  # nor does the caller drawing random numbers between batches
        b.append(x)
        torch.rand(5)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True)) and len(b) == 3
    # the caller's stream went on as if no augmentation had run: three draws of 5
    torch.set_rng_state(caller)
    torch.rand(15)
    after_three = torch.get_rng_state()
    torch.set_rng_state(caller)
    list(cal)
    assert torch.equal(torch.get_rng_state(), caller)
    torch.set_rng_state(caller)
    for _ in cal:
        torch.rand(5)
    assert torch.equal(torch.get_rng_state(), after_three)
    # the batches are training-augmented: the same samples through the evaluation transform differ
    plain = CalibrationBatches(shapes, PRESET.transform(16, train=False), CalibrationDraw(8, 3, seed=2))
    assert not torch.equal(next(iter(plain)), a[0])


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: LoaderWorkers(-1), "data.num_workers"),
        (lambda: CalibrationDraw(0, 4), "calibration.batch_size"),
        (lambda: CalibrationDraw(8, 0), "calibration.num_batches"),
        (lambda: CalibrationDraw(8, 2.5), "calibration.num_batches"),
        (lambda: PRESET.eval_loader([], 16, batch_size=0), "eval.batch_size"),
        (lambda: DataPreset("tiny"), "data.style"),
    ],
)
def test_invalid_loader_options(make, field):
    with pytest.raises(ConfigError, match=field):
        make()
