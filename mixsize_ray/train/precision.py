"""What ``train.amp`` and ``train.channels_last`` mean on a device: one decision for training, validation,
calibration and the sweep.

``auto`` (the default of both) is what a GPU user expects: bf16 autocast where the CUDA device supports it
(Ampere and newer) and channels_last memory format on CUDA; on a CPU both are off, so CPU runs (the tests,
this project's reproductions) are unchanged. Explicit settings apply on CUDA only, as before.

Example:
    >>> import torch
    >>> resolve("auto", "auto", torch.device("cpu"))
    Precision(amp='none', channels_last=False)
    >>> resolve("bf16", True, torch.device("cpu")).amp
    'none'
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Precision:
    """``amp``: none, bf16 or fp16 (autocast dtype); ``channels_last``: NHWC model and inputs."""

    amp: str
    channels_last: bool

    @property
    def dtype(self) -> torch.dtype | None:
        return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp)

    def autocast(self, device: torch.device) -> Any:
        """The autocast context for ``device`` (a no-op without AMP)."""
        return nullcontext() if self.dtype is None else torch.autocast(device.type, dtype=self.dtype)


def resolve(amp: str, channels_last: bool | str, device: torch.device) -> Precision:
    """``train.amp`` / ``train.channels_last`` on ``device``: ``auto`` amp is bf16 on a CUDA device with bf16
    support, else none; ``auto`` channels_last is on for CUDA. Both are off on a non-CUDA device."""
    if device.type != "cuda":
        return Precision("none", False)
    if amp == "auto":
        amp = "bf16" if torch.cuda.is_bf16_supported() else "none"
    return Precision(amp, channels_last in (True, "auto"))
