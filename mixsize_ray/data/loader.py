"""One DataLoader for all sizes: the batch sampler yields ``(index, size, view)`` items so sizes reach workers.

The step schedule (``core/schedule.py``) decides, per step, the size S, the GLOBAL batch B, the duplicates D and
the B global dataset indices. :class:`MixSizeBatchSampler` turns a step into this rank's items
``[(i0, S, 0), ..., (i0, S, D-1), (i1, S, 0), ...]`` (sample-major); :class:`SizedViewDataset` decodes each sample
once and applies the size-S training transform D times (D independent augmentations, the "duplicates" of
MixSize); :func:`mixsize_collate` stacks them into a :class:`Batch` of ``images [b*D, 3, S, S]`` where
``b = B / world_size``: the PIXELS (uint8 in ImageNet style), in channels_last memory, which the worker copies to
its device and normalises there (:class:`~mixsize_ray.data.device_inputs.DeviceInputs`). There is one
DataLoader, one set of workers and no per-size copy of the dataset.

Steps are duck-typed: any object with ``size: int``, ``batch: int`` (global), ``duplicates: int``,
``indices: Sequence[int] | torch.Tensor`` (the ``batch`` global indices) and ``step: int``.

Also here: :class:`LoaderWorkers` (how a loader loads) and, for BN calibration, :class:`CalibrationDraw` and
:class:`CalibrationBatches`. :class:`mixsize_ray.data.presets.DataPreset` builds the loaders of a dataset.

Example:
    >>> loader = DataPreset("cifar", 64).train_loader(dataset, schedule)  # doctest: +SKIP
    >>> for batch in loader:  # doctest: +SKIP
    ...     logits = model(inputs(batch.images))  # [b*D, num_classes], S = batch.size; inputs: DeviceInputs
    ...     loss = criterion(logits, batch.targets)
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler

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
        seed: the augmentation seed: each step's items carry the seed derived from ``(seed, rank, epoch,
            step)`` (:class:`StepItems`); None leaves augmentation to the loading process's torch RNG.

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
        images: pixels ``[b*D, 3, S, S]`` (uint8 in ImageNet style, float in [0, 1] in CIFAR style) in
            channels_last memory (:func:`stack_pixels`), sample-major (the D views of a sample are consecutive);
            :class:`~mixsize_ray.data.device_inputs.DeviceInputs` normalises them on the device.
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


def stack_pixels(images: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[3, S, S]`` images -> ``[N, 3, S, S]`` in channels_last memory (strides of ``[N, S, S, 3]``), one copy:
    the layout a decoded image already has (``pil_to_tensor`` is a view of the HWC array), the one a
    channels_last model reads, and the one a pinned host-to-device copy keeps.

    Example:
        >>> x = stack_pixels([torch.zeros(3, 4, 4, dtype=torch.uint8)] * 2)
        >>> x.shape, x.is_contiguous(memory_format=torch.channels_last)
        (torch.Size([2, 3, 4, 4]), True)
    """
    return torch.stack([im.permute(1, 2, 0) for im in images]).permute(0, 3, 1, 2)


def collate_pixels(items: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(image [3, S, S], label)`` items -> ``(pixels [N, 3, S, S] channels_last, targets [N] int64)``: the
    evaluation loaders' collate (:func:`stack_pixels`)."""
    return stack_pixels([it[0] for it in items]), torch.tensor([int(it[1]) for it in items], dtype=torch.int64)


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
    stacked = stack_pixels(images)
    targets = torch.tensor([int(it[1]) for it in items], dtype=torch.int64)
    return Batch(stacked, targets, int(stacked.shape[-1]), dup)


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: seed Python's and numpy's RNGs from the worker's torch seed (base seed + worker id)."""
    del worker_id
    s = torch.initial_seed() % 2**32
    random.seed(s)
    np.random.seed(s)


@dataclass(frozen=True)
class LoaderWorkers:
    """How a DataLoader loads: ``num_workers`` processes (0 = in the calling process), pinned host memory for
    faster copies to a GPU, workers kept alive between epochs.

    Example:
        >>> LoaderWorkers(2, pin_memory=True)
        LoaderWorkers(num_workers=2, pin_memory=True, persistent_workers=False)
    """

    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ConfigError("data.num_workers", "an int >= 0", self.num_workers)


IN_PROCESS = LoaderWorkers()
"""Load in the calling process, unpinned: the default of every loader."""


def build_loader(
    dataset: Dataset,
    transform_for_size: Callable[[int], Callable[[Any], torch.Tensor]],
    sampler: MixSizeBatchSampler,
    workers: LoaderWorkers = IN_PROCESS,
) -> DataLoader:
    """The training DataLoader yielding one :class:`Batch` per step of ``sampler`` (this rank's share).

    ``transform_for_size(S)`` is the training transform at size S (e.g.
    ``DataPreset.transforms(train=True)``); ``sampler`` holds the schedule, the rank and the seed.

    Augmentation randomness: with a ``sampler.seed``, every step's views are drawn from torch's RNG seeded by
    ``(seed, rank, epoch, step)`` (:class:`StepItems`), whichever worker (or the main process) builds them, so
    runs are repeatable, ranks, epochs and steps all differ, and a run resumed mid-epoch repeats the
    uninterrupted run's augmentations step for step. The loader's own generator (seeded by ``(seed, rank)``)
    only draws the workers' base seed, so creating an iterator leaves torch's global RNG untouched. Workers
    also seed numpy and ``random`` (:func:`seed_worker`).

    Example:
        >>> data = [(torch.full((3, 4, 4), float(i)), i) for i in range(8)]
        >>> steps = lambda: [type("Step", (), dict(size=4, batch=4, duplicates=2, indices=[0, 1, 2, 3], step=0))]
        >>> (batch,) = build_loader(data, lambda s: lambda x: x, MixSizeBatchSampler(steps, seed=0))
        >>> batch.images.shape, batch.targets.tolist()
        (torch.Size([8, 3, 4, 4]), [0, 0, 1, 1, 2, 2, 3, 3])
    """
    generator = torch.Generator()
    generator.manual_seed(_derived_seed(sampler.seed or 0, sampler.rank, 0x10AD))
    return DataLoader(
        SizedViewDataset(dataset, transform_for_size),
        batch_sampler=sampler,
        collate_fn=mixsize_collate,
        num_workers=workers.num_workers,
        pin_memory=workers.pin_memory,
        persistent_workers=workers.persistent_workers and workers.num_workers > 0,
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


@dataclass(frozen=True)
class CalibrationDraw:
    """Which training images BN calibration forwards: ``num_batches`` batches of ``batch_size`` images,
    sampled and augmented from ``seed``.

    Example:
        >>> CalibrationDraw(64, 200, seed=1000)
        CalibrationDraw(batch_size=64, num_batches=200, seed=1000)
    """

    batch_size: int
    num_batches: int
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("batch_size", "num_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"calibration.{name}", "an int >= 1", value)


def _own_stream(items: Iterator[Any], seed: int) -> Iterator[Any]:
    """``items`` pulled one by one with torch's CPU RNG in a stream of its own, seeded by ``seed``: what runs
    between two items (the caller's code, which may draw random numbers) neither moves the stream nor is
    moved by it. The caller's RNG is as it was around every pull."""
    state = torch.Generator().manual_seed(seed).get_state()
    while True:
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(state)
            item = next(items, _DONE)
            state = torch.get_rng_state()
        if item is _DONE:
            return
        yield item


_DONE = object()


class CalibrationBatches:
    """Iterable of ``draw.num_batches`` image tensors ``[draw.batch_size, 3, S, S]``: ``transform`` (the
    TRAINING augmentation at S) applied to training images.

    Samples ``batch_size * num_batches`` indices at random (without replacement; cycling through fresh
    permutations if the dataset is smaller), seeded by ``draw.seed``: every iteration yields the same samples
    and the same augmentations. Loaded in this process (``num_workers=0``), the augmentation draws from a
    torch RNG stream of its own (:func:`torch.random.fork_rng` around each batch), so what ran before or runs
    between batches does not change the images, and the caller's RNG is left as it was.

    Example:
        >>> import torch
        >>> data = [(torch.full((3, 8, 8), float(i)), i % 2) for i in range(10)]
        >>> cal = CalibrationBatches(data, lambda x: x + torch.rand(()), CalibrationDraw(4, 2, seed=1))
        >>> [x.shape for x in cal], all(torch.equal(a, b) for a, b in zip(cal, cal))
        ([torch.Size([4, 3, 8, 8]), torch.Size([4, 3, 8, 8])], True)
    """

    def __init__(
        self, dataset: Dataset, transform: Callable[[Any], torch.Tensor], draw: CalibrationDraw, num_workers: int = 0
    ) -> None:
        self.dataset = TransformedDataset(dataset, transform)
        self.draw = draw
        self.num_workers = LoaderWorkers(num_workers).num_workers

    def __len__(self) -> int:
        return self.draw.num_batches

    def __iter__(self) -> Iterator[torch.Tensor]:
        d = self.draw
        g = torch.Generator()
        g.manual_seed(_derived_seed(d.seed, 0xCA1B))
        sampler = RandomSampler(self.dataset, num_samples=d.batch_size * d.num_batches, generator=g)
        loader = DataLoader(
            self.dataset,
            batch_size=d.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            worker_init_fn=seed_worker,
            generator=g,
        )
        batches = iter(loader) if self.num_workers > 0 else _own_stream(iter(loader), _derived_seed(d.seed, 0xA06))
        for images, _ in batches:
            yield images
