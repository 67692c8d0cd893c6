"""Loader pixels -> model inputs on the device: copy, normalise, memory format.

The loaders send pixels (uint8 ``[N, 3, S, S]`` in ImageNet style, in channels_last memory:
:func:`~mixsize_ray.data.loader.stack_pixels`), not normalised float32: a quarter of the bytes through the
workers' shared memory, the pinned buffer and the host-to-device copy, and no per-image float work in the
loader. :class:`DeviceInputs` finishes them where the model runs: a non-blocking copy, then
:class:`~mixsize_ray.data.transforms.Normalization` (the kernels the per-image transform used, so the values are
bit-identical to normalising in the loader), in the model's memory format (channels_last on CUDA: no extra
copy, the pixels already are; contiguous NCHW otherwise, the layout CPU runs always had).

Example:
    >>> from mixsize_ray.data.transforms import Normalization
    >>> inputs = DeviceInputs(Normalization.of("imagenet"))
    >>> x = inputs(torch.zeros(2, 3, 8, 8, dtype=torch.uint8).contiguous(memory_format=torch.channels_last))
    >>> x.dtype, x.is_contiguous()
    (torch.float32, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mixsize_ray.data.transforms import Normalization


@dataclass(frozen=True)
class DeviceInputs:
    """``pixels [N, 3, S, S]`` on the host -> normalised float32 ``[N, 3, S, S]`` on ``device``, channels_last
    memory when ``channels_last``, else contiguous. See the module doc."""

    normalization: Normalization
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    channels_last: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", torch.device(self.device))

    @property
    def pin_memory(self) -> bool:
        """Whether loaders feeding this device should pin their batches (a CUDA device)."""
        return self.device.type == "cuda"

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        # layout first, on the 1-byte pixels (a no-op for channels_last), then the elementwise float kernels
        return self.normalization(pixels.to(self.device, non_blocking=True).contiguous(memory_format=fmt))
