"""The RNG state a checkpoint carries for one rank: torch's CPU generator and, on a GPU, the device's.

Augmentation does not depend on it (the loader seeds it per step); the model's own randomness (dropout,
stochastic depth) does, so a mid-epoch resume restores it to continue step for step.

Example:
    >>> import torch
    >>> s = rng_state(torch.device("cpu"))
    >>> a = torch.rand(2); set_rng_state(s, torch.device("cpu")); b = torch.rand(2)
    >>> bool((a == b).all()), s["cuda"] is None
    (True, True)
"""

from __future__ import annotations

from typing import Any

import torch


def rng_state(device: torch.device) -> dict[str, Any]:
    """``{"cpu": ByteTensor, "cuda": ByteTensor | None}``: the generators this rank's training draws from."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return {"cpu": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore :func:`rng_state`'s generators (the CUDA one only on a CUDA device, where it was saved)."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
