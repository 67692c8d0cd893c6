"""One DataLoader for all sizes: the batch sampler yields ``(index, size, view)`` items so sizes reach workers.

The step schedule (``core/schedule.py``) decides, per step, the size S, the GLOBAL batch B, the duplicates D and
the B global dataset indices. :class:`MixSizeBatchSampler` turns a step into this rank's items
``[(i0, S, 0), ..., (i0, S, D-1), (i1, S, 0), ...]`` (sample-major); :class:`SizedViewDataset` decodes each sample
once and applies the size-S training transform D times (D independent augmentations, the "duplicates" of
MixSize); :func:`mixsize_collate` stacks them into a :class:`Batch` of ``images [b*D, 3, S, S]`` where
``b = B / world_size``. There is one DataLoader, one set of workers and no per-size copy of the dataset.

Steps are duck-typed: any object with ``size: int``, ``batch: int`` (global), ``duplicates: int``,
``indices: Sequence[int] | torch.Tensor`` (the ``batch`` global indices) and ``step: int``.

Example:
    >>> loader = build_loader(dataset, SizeTransforms("cifar", 64), schedule_steps)  # doctest: +SKIP
    >>> for batch in loader:  # doctest: +SKIP
    ...     logits = model(batch.images)          # [b*D, num_classes], S = batch.size
    ...     loss = criterion(logits, batch.targets)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

from mixsize_ray.data.transforms import eval_transform, train_transform
from mixsize_ray.errors import ConfigError

Item = tuple[int, int, int]
"""A sampler item: ``(dataset index, size S, view v in range(D))``."""


class StepLike(Protocol):
    """The fields of a schedule step the loader reads."""

    size: int
    batch: int
    duplicates: int
    indices: Sequence[int] | torch.Tensor
    step: int


def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0] >> 1)


class StepItems(list):
    """One step's items plus ``seed``: the augmentation seed of that step on this rank.

    Seeding per step (not per epoch) makes a resumed epoch's augmentations equal an uninterrupted run's from
    the resumed step on, whichever DataLoader worker builds the batch.
    """

    seed: int | None = None


class MixSizeBatchSampler(Sampler[list[Item]]):
    """Yields, per schedule step, this rank's items ``(index, size, view)`` in sample-major order.

    Args:
        steps_fn: ``() -> Sequence[step]``, called at every ``__iter__`` (and by ``__len__``), so the owner can
            ``set_epoch`` (or resume) the schedule between epochs.
        rank, world_size: this rank takes the contiguous slice ``indices[rank*b:(rank+1)*b]``, ``b = batch //
            world_size``, of each step; the global batch must be divisible by ``world_size``.

    Each batch has ``b * duplicates`` items: ``[(i0,S,0), (i0,S,1), ..., (i0,S,D-1), (i1,S,0), ...]``.
    """

    def __init__(
        self, steps_fn: Callable[[], Sequence[StepLike]], rank: int = 0, world_size: int = 1,
        seed: int | None = None,
    ) -> None:
        self.seed = seed
        if not isinstance(world_size, int) or world_size < 1:
            raise ConfigError("world_size", "an int >= 1", world_size)
        if not isinstance(rank, int) or not 0 <= rank < world_size:
            raise ConfigError("rank", f"an int in [0, {world_size - 1}]", rank)
        self.steps_fn = steps_fn
        self.rank = rank
        self.world_size = world_size

    def items(self, step: StepLike) -> list[Item]:
        """This rank's ``b * D`` items of one step (see the class docstring)."""
        batch, size, dup = int(step.batch), int(step.size), int(step.duplicates)
        name = f"step {getattr(step, 'step', '?')}"
        if batch % self.world_size:
            raise ConfigError(
                f"{name}: batch", f"a global batch divisible by world_size={self.world_size}", batch
            )
        if size < 1 or dup < 1:
            raise ConfigError(f"{name}: (size, duplicates)", "ints >= 1", (size, dup))
        indices = step.indices.tolist() if isinstance(step.indices, torch.Tensor) else list(step.indices)
        if len(indices) != batch:
            raise ConfigError(f"{name}: indices", f"exactly batch={batch} indices", f"{len(indices)} indices")
        b = batch // self.world_size
        mine = indices[self.rank * b : (self.rank + 1) * b]
        return [(int(i), size, v) for i in mine for v in range(dup)]

    def __iter__(self) -> Iterator[list[Item]]:
        for step in self.steps_fn():
            items = StepItems(self.items(step))
            if self.seed is not None:
                items.seed = _derived_seed(self.seed, self.rank, getattr(step, "epoch", 0), step.step)
            yield items

    def __len__(self) -> int:
        return len(self.steps_fn())


class SizedViewDataset(Dataset):
    """Wraps a dataset of ``(PIL image, label)``; item ``(index, size, view)`` -> ``(tensor [3,S,S], label, view)``.

    The transform of each size is built lazily by ``transform_for_size(size)`` and cached in the process that
    uses it (each DataLoader worker builds its own). Every view is a separate call of the random transform,
    hence an independent augmentation. :meth:`__getitems__` (used by the DataLoader for a whole batch) decodes
    each sample once for its D consecutive views.

    Returns a 3-tuple: the view number lets :func:`mixsize_collate` recover D without extra state.
    """

    def __init__(
        self, base: Dataset, transform_for_size: Callable[[int], Callable[[Any], torch.Tensor]]
    ) -> None:
        self.base = base
        self.transform_for_size = transform_for_size
        self._transforms: dict[int, Callable[[Any], torch.Tensor]] = {}

    def transform(self, size: int) -> Callable[[Any], torch.Tensor]:
        """The cached transform of ``size`` (built on first use in this process)."""
        t = self._transforms.get(size)
        if t is None:
            t = self._transforms[size] = self.transform_for_size(size)
        return t

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, item: Item) -> tuple[torch.Tensor, int, int]:
        index, size, view = item
        img, label = self.base[index]
        return self.transform(size)(img), int(label), int(view)

    def __getitems__(self, items: list[Item]) -> list[tuple[torch.Tensor, int, int]]:
        seed = getattr(items, "seed", None)
        if seed is None:
            return self._views(items)
        with torch.random.fork_rng(devices=[]):  # the step's own augmentation stream; caller's RNG untouched
            torch.manual_seed(seed)
            return self._views(items)

    def _views(self, items: list[Item]) -> list[tuple[torch.Tensor, int, int]]:
        out: list[tuple[torch.Tensor, int, int]] = []
        last: tuple[int, Any, int] | None = None
        for index, size, view in items:
            if last is None or last[0] != index:
                img, label = self.base[index]
                last = (index, img, int(label))
            out.append((self.transform(size)(last[1]), last[2], int(view)))
        return out


class Batch(NamedTuple):
    """One step's batch on one rank. A NamedTuple of tensors and ints: DataLoader ``pin_memory`` pins the
    tensors and keeps the type.

    Attributes:
        images: float ``[b*D, 3, S, S]``, sample-major (the D views of a sample are consecutive).
        targets: int64 ``[b*D]``.
        size: S. duplicates: D.
    """

    images: torch.Tensor
    targets: torch.Tensor
    size: int
    duplicates: int

    @property
    def batch_size(self) -> int:
        """b: distinct samples in this batch (``len(images) // duplicates``)."""
        return self.images.shape[0] // self.duplicates

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch with images and targets moved to ``device``."""
        return self._replace(
            images=self.images.to(device, non_blocking=non_blocking),
            targets=self.targets.to(device, non_blocking=non_blocking),
        )


def mixsize_collate(items: Sequence[tuple[torch.Tensor, int, int]]) -> Batch:
    """Stack ``(image [3,S,S], label, view)`` items of one step into a :class:`Batch`.

    D is ``max(view) + 1``; the views must follow the sample-major pattern ``0..D-1, 0..D-1, ...`` and all
    images must share one size, else ``ValueError``.
    """
    if not items:
        raise ValueError("mixsize_collate: empty batch")
    images = [it[0] for it in items]
    shapes = {tuple(im.shape) for im in images}
    if len(shapes) != 1:
        raise ValueError(
            f"mixsize_collate: images of one batch must share one size, got shapes {sorted(shapes)}"
        )
    views = [int(it[2]) for it in items]
    dup = max(views) + 1
    if len(items) % dup or views != list(range(dup)) * (len(items) // dup):
        raise ValueError(
            f"mixsize_collate: views must repeat 0..{dup - 1} sample by sample, got {views[:12]}..."
        )
    stacked = torch.stack(images)
    targets = torch.tensor([int(it[1]) for it in items], dtype=torch.int64)
    return Batch(stacked, targets, int(stacked.shape[-1]), dup)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed Python's and numpy's RNGs from the worker's torch seed (base seed + worker id)."""
    del worker_id
    s = torch.initial_seed() % 2**32
    random.seed(s)
    np.random.seed(s)


def build_loader(
    dataset: Dataset,
    transform_for_size: Callable[[int], Callable[[Any], torch.Tensor]],
    steps_fn: Callable[[], Sequence[StepLike]],
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    pin_memory: bool = False,
    persistent_workers: bool = False,
    seed: int = 0,
) -> DataLoader:
    """The training DataLoader yielding one :class:`Batch` per schedule step (this rank's share).

    Augmentation randomness: every step's views are drawn from torch's RNG seeded by ``(seed, rank, epoch,
    step)`` (:class:`StepItems`), whichever worker (or the main process) builds them, so runs are repeatable,
    ranks, epochs and steps all differ, and a run resumed mid-epoch repeats the uninterrupted run's
    augmentations step for step. Workers also seed numpy and ``random`` (:func:`seed_worker`).
    """
    if not isinstance(num_workers, int) or num_workers < 0:
        raise ConfigError("data.num_workers", "an int >= 0", num_workers)
    generator = torch.Generator()
    generator.manual_seed(_derived_seed(seed, rank, 0x10AD))
    return DataLoader(
        SizedViewDataset(dataset, transform_for_size),
        batch_sampler=MixSizeBatchSampler(steps_fn, rank=rank, world_size=world_size, seed=seed),
        collate_fn=mixsize_collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=persistent_workers and num_workers > 0,
        worker_init_fn=seed_worker,
        generator=generator,
    )


class TransformedDataset(Dataset):
    """``(PIL image, label)`` -> ``(transform(image) [3,S,S], label)``."""

    def __init__(self, base: Dataset, transform: Callable[[Any], torch.Tensor]) -> None:
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img, label = self.base[index]
        return self.transform(img), int(label)


def eval_loader(
    dataset: Dataset,
    style: str,
    native: int | None,
    size: int,
    batch_size: int,
    num_workers: int = 0,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    pin_memory: bool = False,
    sampler: Sampler[int] | None = None,
) -> DataLoader:
    """A sequential loader of ``(images [b,3,size,size], targets [b] int64)`` with the eval transform at ``size``.

    Pass the same ``mean``/``std`` as in training (see :func:`mixsize_ray.data.datasets.normalization`);
    ``sampler`` (e.g. a ``DistributedSampler(shuffle=False)``) shards evaluation across ranks.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError("eval.batch_size", "an int >= 1", batch_size)
    t = eval_transform(style, size, native, mean=mean, std=std)
    return DataLoader(
        TransformedDataset(dataset, t),
        batch_size=batch_size,
        shuffle=False,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
    )


class CalibrationBatches:
    """Iterable of ``num_batches`` image tensors ``[batch_size, 3, size, size]`` with TRAINING augmentation.

    Samples ``batch_size * num_batches`` indices at random (without replacement; cycling through fresh
    permutations if the dataset is smaller), seeded by ``seed``: every iteration yields the same samples and
    the same augmentations (in-process loading uses an RNG stream of its own, so what ran before does not
    change them).
    """

    def __init__(
        self,
        dataset: Dataset,
        style: str,
        native: int | None,
        size: int,
        batch_size: int,
        num_batches: int,
        num_workers: int = 0,
        seed: int = 0,
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError("calibration.batch_size", "an int >= 1", batch_size)
        if not isinstance(num_batches, int) or num_batches < 1:
            raise ConfigError("calibration.num_batches", "an int >= 1", num_batches)
        self.dataset = TransformedDataset(dataset, train_transform(style, size, native, mean=mean, std=std))
        self.batch_size, self.num_batches = batch_size, num_batches
        self.num_workers, self.seed = num_workers, seed

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[torch.Tensor]:
        g = torch.Generator()
        g.manual_seed(_derived_seed(self.seed, 0xCA1B))
        sampler = RandomSampler(self.dataset, num_samples=self.batch_size * self.num_batches, generator=g)
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            worker_init_fn=seed_worker,
            generator=g,
        )
        if self.num_workers > 0:
            for images, _ in loader:
                yield images
            return
        # In-process augmentation draws from torch's global RNG: give it a stream of its own, seeded by
        # ``seed``, so the same (seed, batches) give the same images whatever ran before (training or not),
        # and leave the caller's RNG as it was between batches.
        caller = torch.get_rng_state()
        torch.manual_seed(_derived_seed(self.seed, 0xA06))
        ours = torch.get_rng_state()
        torch.set_rng_state(caller)
        it = iter(loader)
        while True:
            caller = torch.get_rng_state()
            torch.set_rng_state(ours)
            try:
                images, _ = next(it)
            except StopIteration:
                return
            finally:
                ours = torch.get_rng_state()
                torch.set_rng_state(caller)
            yield images


def calibration_batches(
    dataset: Dataset,
    style: str,
    native: int | None,
    size: int,
    batch_size: int,
    num_batches: int,
    num_workers: int = 0,
    seed: int = 0,
    *,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> CalibrationBatches:
    """Images for BN calibration at ``size``: see :class:`CalibrationBatches` (training split, train augmentation)."""
    return CalibrationBatches(
        dataset, style, native, size, batch_size, num_batches, num_workers, seed, mean=mean, std=std
    )
