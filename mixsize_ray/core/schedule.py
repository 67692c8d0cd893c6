"""The step schedule: which (S, B, D) and which images every step of an epoch uses.

The sequence is a pure function of (seed, epoch) and the solved regime, so every DDP rank computes the
same steps without communication, and a run resumed at (epoch, step) continues the exact sequence.
Each step lists its GLOBAL batch of dataset indices; rank r of W takes the contiguous slice
``indices[r*B/W:(r+1)*B/W]`` (see :mod:`mixsize_ray.data.loader`).

Sampling modes (what p_i means):

* ``step`` (paper): every step draws size i with probability p_i; batches walk one shuffled pass over
  the data; the last batch that does not fit is dropped.
* ``image-fraction`` (official code): each epoch gives a fraction p_i of the images to size i, cuts
  each share into batches of B_i (a last short batch, rounded down to a multiple of the world size, is
  kept) and interleaves all steps in random order: every image is used at most once per epoch, and with
  world size 1 exactly once.
* ``epoch``: one size per epoch, drawn with probabilities p_i.
* ``progressive``: sizes from small to large; size i gets a share p_i of the epochs.

Example:
    >>> from mixsize_ray.core.regime import SizeRegime
    >>> table = SizeRegime([16, 32], [0.5, 0.5], base_size=32, base_batch=8, mode="B+", num_images=64).solve()
    >>> sched = StepSchedule(table, num_images=64, seed=0)
    >>> [s.size for s in sched.epoch_steps(0)][:4]  # doctest: +SKIP
    [32, 16, 32, 32]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from mixsize_ray.core.regime import RegimeTable
from mixsize_ray.errors import ConfigError


@dataclass(frozen=True)
class Step:
    """One training step. ``indices``: int64 tensor [batch] of global dataset indices (all ranks)."""

    epoch: int
    step: int
    size: int
    batch: int
    duplicates: int
    indices: torch.Tensor

    def rank_indices(self, rank: int, world_size: int) -> torch.Tensor:
        """This rank's contiguous share [batch // world_size] of the step's indices."""
        if self.batch % world_size:
            raise ConfigError("batch", f"a multiple of the world size {world_size}", self.batch)
        per = self.batch // world_size
        return self.indices[rank * per : (rank + 1) * per]


def _generator(seed: int, epoch: int, stream: int) -> torch.Generator:
    # distinct, reproducible streams per (seed, epoch, purpose)
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 7 + stream)


class StepSchedule:
    """Deterministic per-epoch step lists for a solved regime.

    Args:
        table: the solved :class:`RegimeTable` (its ``sampling`` picks the mode).
        num_images: training images per epoch (N).
        seed: run seed; with the epoch it fixes the whole sequence.
        epochs: total epochs (needed by ``progressive``).
        max_steps_per_epoch: optional cap (smoke runs).

    The loader calls the schedule itself (``schedule()``) at the start of each pass; ``set_epoch(epoch,
    start_step)`` selects which steps that pass yields.
    """

    def __init__(
        self,
        table: RegimeTable,
        num_images: int,
        seed: int = 0,
        epochs: int = 1,
        max_steps_per_epoch: int | None = None,
    ):
        if num_images < 1:
            raise ConfigError("num_images", ">= 1", num_images)
        min_batch = min(e.batch for e in table.entries)
        if num_images < min_batch:
            raise ConfigError(
                "data.train_size", f">= the smallest step batch {min_batch}", num_images
            )
        self.table = table
        self.num_images = int(num_images)
        self.seed = int(seed)
        self.epochs = int(epochs)
        self.max_steps = max_steps_per_epoch
        self.epoch = 0
        self.start_step = 0
        self._cache: tuple[int, list[Step]] | None = None
        self._probs = torch.tensor([e.prob for e in table.entries], dtype=torch.float64)

    @property
    def sampling(self) -> str:
        return self.table.sampling

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        self.epoch = int(epoch)
        self.start_step = int(start_step)

    def __call__(self) -> list[Step]:
        """Steps of the current epoch from ``start_step`` on (what the loader iterates)."""
        return self.steps(self.epoch, self.start_step)

    def steps(self, epoch: int, start_step: int = 0) -> list[Step]:
        return self.epoch_steps(epoch)[start_step:]

    def __len__(self) -> int:
        return len(self())

    def epoch_steps(self, epoch: int) -> list[Step]:
        """All steps of ``epoch`` (cached for the most recent epoch)."""
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        build = {
            "step": self._step_mode,
            "image-fraction": self._image_fraction_mode,
            "epoch": self._epoch_mode,
            "progressive": self._progressive_mode,
        }[self.sampling]
        plan = build(epoch)
        if self.max_steps is not None:
            plan = plan[: self.max_steps]
        steps = [
            Step(epoch, k, self.table.entries[i].size, int(idx.numel()), self.table.entries[i].duplicates, idx)
            for k, (i, idx) in enumerate(plan)
        ]
        self._cache = (epoch, steps)
        return steps

    # ---- modes: each returns [(entry index, global indices tensor)] ------------------------------------
    def _perm(self, epoch: int) -> torch.Tensor:
        return torch.randperm(self.num_images, generator=_generator(self.seed, epoch, 0))

    def _walk(self, perm: torch.Tensor, choice: Sequence[int]) -> list[tuple[int, torch.Tensor]]:
        out, pos = [], 0
        for i in choice:
            b = self.table.entries[i].batch
            if pos + b > len(perm):
                break
            out.append((int(i), perm[pos : pos + b]))
            pos += b
        return out

    def _step_mode(self, epoch: int) -> list[tuple[int, torch.Tensor]]:
        perm = self._perm(epoch)
        min_batch = min(e.batch for e in self.table.entries)
        n_draw = self.num_images // min_batch + 1
        choice = torch.multinomial(
            self._probs, n_draw, replacement=True, generator=_generator(self.seed, epoch, 1)
        ).tolist()
        return self._walk(perm, choice)

    def _image_fraction_mode(self, epoch: int) -> list[tuple[int, torch.Tensor]]:
        perm = self._perm(epoch)
        w = self.table.world_size
        counts = [int(round(p * self.num_images)) for p in self._probs.tolist()]
        counts[-1] = self.num_images - sum(counts[:-1])
        plan, pos = [], 0
        for i, (n, e) in enumerate(zip(counts, self.table.entries, strict=True)):
            share = perm[pos : pos + max(n, 0)]
            pos += max(n, 0)
            for k in range(0, len(share), e.batch):
                chunk = share[k : k + e.batch]
                keep = len(chunk) - len(chunk) % w
                if keep:
                    plan.append((i, chunk[:keep]))
        order = torch.randperm(len(plan), generator=_generator(self.seed, epoch, 2)).tolist()
        return [plan[j] for j in order]

    def _epoch_mode(self, epoch: int) -> list[tuple[int, torch.Tensor]]:
        i = int(torch.multinomial(self._probs, 1, generator=_generator(self.seed, epoch, 1)).item())
        b = self.table.entries[i].batch
        return self._walk(self._perm(epoch), [i] * (self.num_images // b))

    def _progressive_mode(self, epoch: int) -> list[tuple[int, torch.Tensor]]:
        order = sorted(range(len(self.table.entries)), key=lambda j: self.table.entries[j].size)
        t = (min(epoch, self.epochs - 1) + 0.5) / max(self.epochs, 1)
        cum, i = 0.0, order[-1]
        for j in order:
            cum += float(self._probs[j])
            if t < cum:
                i = j
                break
        b = self.table.entries[i].batch
        return self._walk(self._perm(epoch), [i] * (self.num_images // b))
