"""The data side of a run in one small object, in the spirit of torchvision's classification presets.

:class:`DataPreset` says how images of one dataset become tensors at any size S (augmentation style, native
side, normalisation) and builds the three loaders a run needs from it:

* :meth:`DataPreset.train_loader` — the one mixed-size training loader (:func:`~mixsize_ray.data.loader.build_loader`),
  yielding pixels that the device normalises (:attr:`DataPreset.normalization`,
  :class:`~mixsize_ray.data.device_inputs.DeviceInputs`);
* :meth:`DataPreset.eval_loader` — sequential normalised ``(images [b, 3, S, S], targets [b])`` in this process
  (what a run evaluates through: :class:`~mixsize_ray.data.eval_source.EvalSource`, pixels normalised on the device);
* :meth:`DataPreset.calibration_source` — ``S -> [B, 3, S, S]`` training-augmented batches for BN calibration
  (:class:`CalibrationSource`), drawn by a :class:`~mixsize_ray.data.loader.CalibrationDraw`.

The two other small objects are :class:`~mixsize_ray.data.loader.LoaderWorkers` (how a loader loads) and
:class:`~mixsize_ray.data.loader.CalibrationDraw` (which images calibration sees).

Example:
    >>> from mixsize_ray.data.datasets import build_dataset
    >>> preset = DataPreset.for_dataset("shapes")
    >>> preset.style, preset.native, preset.mean
    ('cifar', 64, (0.5, 0.5, 0.5))
    >>> test = build_dataset("shapes", None, "test", size=20)
    >>> x, y = next(iter(preset.eval_loader(test, 24, batch_size=8)))
    >>> x.shape, y.shape
    (torch.Size([8, 3, 24, 24]), torch.Size([8]))
    >>> source = preset.calibration_source(test, CalibrationDraw(batch_size=4, num_batches=2, seed=0))
    >>> [b.shape for b in source(16)]
    [torch.Size([4, 3, 16, 16]), torch.Size([4, 3, 16, 16])]
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mixsize_ray.core.calibration import resize_batches
from mixsize_ray.data.datasets import dataset_info, normalization
from mixsize_ray.data.loader import (
    IN_PROCESS,
    CalibrationBatches,
    CalibrationDraw,
    LoaderWorkers,
    MixSizeBatchSampler,
    StepLike,
    TransformedDataset,
    build_loader,
)
from mixsize_ray.data.transforms import STYLES, Normalization, SharedCrop, pixel_transform, size_transform
from mixsize_ray.errors import ConfigError

__all__ = ["DataPreset", "CalibrationSource"]


@dataclass(frozen=True)
class DataPreset:
    """How images of one dataset become normalised tensors ``[3, S, S]`` at any size S.

    Attributes:
        style: ``"cifar"`` (pad-crop-flip at the native side, then resize to S) or ``"imagenet"``
            (``RandomResizedCrop(S)``; evaluation resizes to ``int(8/7*S)`` and center crops).
        native: CIFAR style: the side the random crop keeps before the resize (64 for shapes, 32 for CIFAR);
            None crops back to each image's own side. Not used in ImageNet style.
        mean, std: per-channel normalisation of RGB in [0, 1]; None: CIFAR-10's (cifar) or ImageNet's.

    Example:
        >>> from PIL import Image
        >>> preset = DataPreset("cifar", native=32)
        >>> preset.transform(16, train=True)(Image.new("RGB", (32, 32))).shape
        torch.Size([3, 16, 16])
    """

    style: str
    native: int | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ConfigError("data.style", f"one of {list(STYLES)}", self.style)
        for name in ("mean", "std"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in value))

    @classmethod
    def for_dataset(cls, name: str) -> DataPreset:
        """The preset of dataset ``name`` as published: its style, native side (CIFAR style) and normalisation.

        Example:
            >>> DataPreset.for_dataset("imagefolder").native is None
            True
        """
        info = dataset_info(name)
        mean, std = normalization(name)
        return cls(info.style, info.native_resolution if info.style == "cifar" else None, mean, std)

    def transform(self, size: int, *, train: bool) -> Callable[[Any], torch.Tensor]:
        """The transform at ``size``: :func:`~mixsize_ray.data.transforms.size_transform` with this preset."""
        return size_transform(self.style, size, self.native, train=train, mean=self.mean, std=self.std)

    def pixels(self, size: int, *, train: bool) -> Callable[[Any], torch.Tensor]:
        """The transform at ``size`` up to the pixels (:func:`~mixsize_ray.data.transforms.pixel_transform`):
        :meth:`transform` is this then :attr:`normalization`."""
        return pixel_transform(self.style, size, self.native, train=train)

    @property
    def normalization(self) -> Normalization:
        """This preset's per-channel normalisation, applied to pixel batches on the device.

        Example:
            >>> DataPreset.for_dataset("shapes").normalization.mean
            (0.5, 0.5, 0.5)
        """
        return Normalization.of(self.style, self.mean, self.std)

    def transforms(self, *, train: bool) -> Callable[[int], Callable[[Any], torch.Tensor]]:
        """A picklable ``size -> pixel transform`` factory (what :func:`~mixsize_ray.data.loader.build_loader`
        takes)."""
        return functools.partial(self.pixels, train=train)

    def train_loader(
        self,
        dataset: Dataset,
        steps_fn: Callable[[], Sequence[StepLike]],
        *,
        rank: int = 0,
        world_size: int = 1,
        workers: LoaderWorkers = IN_PROCESS,
        seed: int = 0,
    ) -> DataLoader:
        """The mixed-size training loader: one :class:`~mixsize_ray.data.loader.Batch` of pixels ``images
        [b*D, 3, S, S]`` (channels_last; :attr:`normalization` finishes them on the device) per step of
        ``steps_fn()`` on this rank; augmentation seeded per ``(seed, rank, epoch, step)``."""
        sampler = MixSizeBatchSampler(steps_fn, rank=rank, world_size=world_size, seed=seed)
        return build_loader(dataset, self.transforms(train=True), sampler, workers)

    def eval_loader(
        self,
        dataset: Dataset,
        size: int,
        batch_size: int,
        *,
        workers: LoaderWorkers = IN_PROCESS,
        sampler: Sampler[int] | None = None,
    ) -> DataLoader:
        """A sequential loader of ``(images [b, 3, size, size], targets [b] int64)`` with the evaluation
        transform at ``size``. ``sampler`` (e.g. a ``DistributedSampler(shuffle=False)``) shards it across ranks.
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError("eval.batch_size", "an int >= 1", batch_size)
        return DataLoader(
            TransformedDataset(dataset, self.transform(size, train=False)),
            batch_size=batch_size,
            shuffle=False,
            sampler=sampler,
            num_workers=workers.num_workers,
            pin_memory=workers.pin_memory,
        )

    def calibration_batches(
        self, dataset: Dataset, size: int, draw: CalibrationDraw, num_workers: int = 0
    ) -> CalibrationBatches:
        """``draw.num_batches`` batches ``[draw.batch_size, 3, size, size]`` of ``dataset`` with the TRAINING
        augmentation at ``size``, the same at every iteration (:class:`~mixsize_ray.data.loader.CalibrationBatches`)."""
        return CalibrationBatches(dataset, self.transform(size, train=True), draw, num_workers)

    def calibration_source(self, dataset: Dataset, draw: CalibrationDraw, num_workers: int = 0) -> CalibrationSource:
        """``size -> training-augmented batches [B, 3, size, size]`` of ``dataset`` drawn by ``draw``: what
        BN calibration at each size of a sweep forwards (see :class:`CalibrationSource`)."""
        return CalibrationSource(self, dataset, draw, num_workers)


class CalibrationSource:
    """``source(S)`` -> ``draw.num_batches`` training-augmented image batches ``[draw.batch_size, 3, S, S]``.

    CIFAR style (with a native side): the augmentation (pad-crop-flip at the native side, then resize to S)
    does not depend on S before its last step, so the native-side batches are decoded and augmented ONCE,
    on first use, and every size is an antialiased resize of them
    (:func:`~mixsize_ray.core.calibration.resize_batches`). ImageNet style (``RandomResizedCrop(S)``) loads
    per size. Either way every call with the same S yields the same images.

    Example:
        >>> from mixsize_ray.data.datasets import build_dataset
        >>> train = build_dataset("shapes", None, "train", size=16)
        >>> source = DataPreset.for_dataset("shapes").calibration_source(train, CalibrationDraw(4, 2, seed=0))
        >>> [x.shape[-1] for x in source(24)], all(torch.equal(a, b) for a, b in zip(source(24), source(24)))
        ([24, 24], True)
    """

    def __init__(self, preset: DataPreset, dataset: Dataset, draw: CalibrationDraw, num_workers: int = 0) -> None:
        self.preset, self.dataset, self.draw, self.num_workers = preset, dataset, draw, num_workers
        self._base: list[torch.Tensor] | None = None

    def __call__(self, size: int) -> Iterable[torch.Tensor]:
        if not self._resizes:
            return self.preset.calibration_batches(self.dataset, size, self.draw, self.num_workers)
        return resize_batches(self._native_batches(), size)

    @property
    def _resizes(self) -> bool:
        return self.preset.style == "cifar" and self.preset.native is not None

    def _native_batches(self) -> list[torch.Tensor]:
        if self._base is None:
            self._base = list(self.preset.calibration_batches(self.dataset, self.preset.native, self.draw,
                                                              self.num_workers))
        return self._base

    def together(self, sizes: Sequence[int]) -> Iterator[dict[int, torch.Tensor]]:
        """One pass over the calibration images for every size of ``sizes``: per batch,
        ``{S: [B, 3, S, S]}``. Size S's batches equal ``self(S)``'s: CIFAR style, the same native batches
        resized; ImageNet style, each image decoded and its crop and flip drawn once, from the same RNG
        stream as ``self(S)`` draws them (:class:`~mixsize_ray.data.transforms.SharedCrop`), then resized to
        every size.

        Example:
            >>> from mixsize_ray.data.datasets import build_dataset
            >>> train = build_dataset("shapes", None, "train", size=16)
            >>> source = DataPreset.for_dataset("shapes").calibration_source(train, CalibrationDraw(4, 2, seed=0))
            >>> first = next(source.together([16, 24]))
            >>> {s: x.shape[-1] for s, x in first.items()}, torch.equal(first[24], next(iter(source(24))))
            ({16: 16, 24: 24}, True)
        """
        sizes = list(sizes)
        if self._resizes:
            for x in self._native_batches():
                yield {s: next(resize_batches([x], s)) for s in sizes}
            return
        crop = SharedCrop(sizes, self.preset.mean, self.preset.std)
        for views in CalibrationBatches(self.dataset, crop, self.draw, self.num_workers):
            yield dict(zip(sizes, views, strict=True))
