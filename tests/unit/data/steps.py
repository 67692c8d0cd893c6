"""A stand-in for the steps of ``core/schedule.py``: the duck-typed fields the loader reads."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Step:
    size: int
    batch: int  # global, across ranks
    duplicates: int
    indices: list[int] | torch.Tensor  # the `batch` global dataset indices of this step
    step: int = 0
