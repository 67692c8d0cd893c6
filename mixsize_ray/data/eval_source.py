"""One rank's share of an evaluation split, read at one size or at every size of a sweep in one pass.

Evaluation at ImageNet scale is mostly decoding: 50,000 JPEGs per size. :class:`EvalSource` makes every rank
and every loader worker share it, and a sweep decode each image once:

* the split is sharded by rank, ``range(rank, n, world_size)``: every image is evaluated exactly once (no
  padded duplicates, unlike ``DistributedSampler``), so summing the ranks' counts gives the single-rank result;
* ``source(S)`` loads the shard at size S with ``workers`` (``data.num_workers``, pinned memory on a GPU);
* ``source.together(sizes)`` loads it once for all sizes (:class:`~mixsize_ray.data.transforms.EvalViews`:
  each size's images bit-identical to ``source(S)``'s), in batches that hold about as many pixels as one batch
  at the largest size (:func:`together_batch_size`), so memory does not grow with the number of sizes.

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

from mixsize_ray.data.loader import IN_PROCESS, LoaderWorkers, TransformedDataset
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


class EvalSource:
    """Rank ``rank``'s shard of ``dataset`` (``range(rank, n, world_size)``) with ``preset``'s evaluation
    transform: ``self(S)`` -> ``(images [b, 3, S, S], targets [b])`` batches; :meth:`together` -> one pass for
    every size. See the module doc."""

    def __init__(self, preset: Any, dataset: Dataset, batch_size: int, *, rank: int = 0, world_size: int = 1,
                 workers: LoaderWorkers = IN_PROCESS) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError("train.eval_batch_size", "an int >= 1", batch_size)
        if not 0 <= rank < world_size:
            raise ConfigError("rank", f"0 <= rank < world_size ({world_size})", rank)
        self.preset, self.batch_size, self.workers = preset, batch_size, workers
        self.shard = Subset(dataset, range(rank, len(dataset), world_size))  # type: ignore[arg-type]

    def __call__(self, size: int) -> DataLoader:
        return self.preset.eval_loader(self.shard, size, self.batch_size, workers=self.workers)

    def together(self, sizes: Sequence[int]) -> Iterator[tuple[dict[int, torch.Tensor], torch.Tensor]]:
        """One pass over the shard for every size: per batch ``({S: images [b, 3, S, S]}, targets [b])``,
        size S's images equal to ``self(S)``'s (in batches of :func:`together_batch_size`)."""
        sizes = list(sizes)
        p = self.preset
        views = EvalViews(p.style, sizes, p.native, mean=p.mean, std=p.std)
        loader = DataLoader(TransformedDataset(self.shard, views), shuffle=False,
                            batch_size=together_batch_size(self.batch_size, sizes),
                            num_workers=self.workers.num_workers, pin_memory=self.workers.pin_memory)
        for images, targets in loader:
            yield dict(zip(sizes, images, strict=True)), targets
