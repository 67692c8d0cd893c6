"""One rank's share of an evaluation split, read at one size or at every size of a sweep in one pass.

Evaluation at ImageNet scale is mostly decoding: 50,000 JPEGs per size. :class:`EvalSource` makes every rank
and every loader worker share it, and a sweep decode each image once:

* the split is sharded by rank, ``range(rank, n, world_size)``: every image is evaluated exactly once (no
  padded duplicates, unlike ``DistributedSampler``), so summing the ranks' counts gives the single-rank result;
* ``source(S)`` loads the shard at size S with ``workers`` (``data.num_workers``, pinned memory on a GPU);
* ``source.together(sizes)`` loads it once for all sizes (:class:`~mixsize_ray.data.transforms.EvalViews`:
  each size's images bit-identical to ``source(S)``'s), in batches that hold about as many pixels as one batch
  at the largest size (:func:`together_batch_size`), so memory does not grow with the number of sizes;
* the loaders send pixels (uint8 in ImageNet style, channels_last) and ``inputs``
  (:class:`~mixsize_ray.data.device_inputs.DeviceInputs`) copies them to the device and normalises them
  there: both yield normalised images on ``inputs.device``, equal to the evaluation transform's.

Example:
    >>> from mixsize_ray.data.datasets import build_dataset
    >>> from mixsize_ray.data.presets import DataPreset
    >>> test = build_dataset("shapes", None, "test", size=7)
    >>> half = EvalSource(DataPreset.for_dataset("shapes"), test, batch_size=4, rank=1, world_size=2)
    >>> len(half.shard), [x.shape[0] for x, _ in half(24)]
    (3, [3])
    >>> views, y = next(iter(half.together([16, 24])))  # 4 * 24^2 // (16^2 + 24^2) = 2 images per batch
    >>> {s: tuple(x.shape) for s, x in views.items()}, y.tolist() == [test[i][1] for i in (1, 3)]
    ({16: (2, 3, 16, 16), 24: (2, 3, 24, 24)}, True)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from mixsize_ray.data.device_inputs import DeviceInputs
from mixsize_ray.data.loader import (
    IN_PROCESS,
    LoaderWorkers,
    TransformedDataset,
    collate_pixels,
    stack_pixels,
)
from mixsize_ray.data.transforms import EvalViews
from mixsize_ray.errors import ConfigError


def together_batch_size(batch_size: int, sizes: Sequence[int]) -> int:
    """Images per batch of a one-pass sweep over ``sizes``: ``batch_size`` scaled by max(S)^2 / sum(S^2), at
    least 1, so that a batch of every size holds about the pixels of one ``batch_size`` batch at the largest.

    Example:
        >>> together_batch_size(256, [224]), together_batch_size(256, [32 * m for m in range(1, 14)])
        (256, 52)
    """
    largest = max(sizes) ** 2
    return max(1, batch_size * largest // sum(s * s for s in sizes))


def collate_views(items: Sequence[tuple[Sequence[torch.Tensor], int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``(views [one [3, S, S] per size], label)`` items -> ``([pixels [N, 3, S, S] per size], targets [N])``,
    each size stacked channels_last (:func:`~mixsize_ray.data.loader.stack_pixels`)."""
    per_size = [stack_pixels([it[0][k] for it in items]) for k in range(len(items[0][0]))]
    return per_size, torch.tensor([int(it[1]) for it in items], dtype=torch.int64)


class OnDevice:
    """A re-iterable of ``(images, targets)`` batches with ``inputs`` applied to the images (:func:`len`: the
    loader's)."""

    def __init__(self, loader: DataLoader, inputs: DeviceInputs) -> None:
        self.loader, self.inputs = loader, inputs

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for pixels, targets in self.loader:
            yield self.inputs(pixels), targets


class EvalSource:
    """Rank ``rank``'s shard of ``dataset`` (``range(rank, n, world_size)``) with ``preset``'s evaluation
    transform: ``self(S)`` -> ``(images [b, 3, S, S], targets [b])`` batches, the images normalised on
    ``inputs.device`` (default: the CPU with ``preset``'s normalisation); :meth:`together` -> one pass for every
    size. See the module doc."""

    def __init__(self, preset: Any, dataset: Dataset, batch_size: int, *, rank: int = 0, world_size: int = 1,
                 workers: LoaderWorkers = IN_PROCESS, inputs: DeviceInputs | None = None) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError("train.eval_batch_size", "an int >= 1", batch_size)
        if not 0 <= rank < world_size:
            raise ConfigError("rank", f"0 <= rank < world_size ({world_size})", rank)
        self.preset, self.batch_size, self.workers = preset, batch_size, workers
        self.inputs = inputs if inputs is not None else DeviceInputs(preset.normalization)
        self.shard = Subset(dataset, range(rank, len(dataset), world_size))  # type: ignore[arg-type]

    def _loader(self, transform: Any, batch_size: int, collate: Any = collate_pixels) -> DataLoader:
        return DataLoader(TransformedDataset(self.shard, transform), batch_size=batch_size, shuffle=False,
                          collate_fn=collate, num_workers=self.workers.num_workers,
                          pin_memory=self.workers.pin_memory)

    def pixels(self, size: int) -> DataLoader:
        """The host side of :meth:`__call__`: ``(pixels [b, 3, S, S] channels_last, targets [b])`` batches as the
        loader workers deliver them (pinned on a GPU), before they cross to the device."""
        return self._loader(self.preset.pixels(size, train=False), self.batch_size)

    def __call__(self, size: int) -> OnDevice:
        return OnDevice(self.pixels(size), self.inputs)

    def together(self, sizes: Sequence[int]) -> Iterator[tuple[dict[int, torch.Tensor], torch.Tensor]]:
        """One pass over the shard for every size: per batch ``({S: images [b, 3, S, S]}, targets [b])``,
        size S's images equal to ``self(S)``'s (in batches of :func:`together_batch_size`)."""
        sizes = list(sizes)
        p = self.preset
        loader = self._loader(EvalViews(p.style, sizes, p.native), together_batch_size(self.batch_size, sizes),
                              collate_views)
        for views, targets in loader:
            yield {s: self.inputs(x) for s, x in zip(sizes, views, strict=True)}, targets
