"""Which parameters get weight decay: conv and linear weights only (the paper and the official code).

The paper (section 5, ResNet training) applies "L2 regularization over weights of convolutional layers", and
the official code's ``weight_decay_config`` (eladhoffer/convNet.pytorch, ``models/resnet.py``:
``{'value': 1e-4, 'log': False, 'filter': {'parameter_name': is_not_bn, 'module': is_not_bias}}`` style
filters) leaves BatchNorm parameters and biases undecayed. ``on="all"`` keeps the plain
``torch.optim.SGD(params, weight_decay=...)`` behaviour (every parameter decayed) for users who want it.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.LazyLinear(2))
    >>> _ = net(torch.zeros(1, 3, 8, 8))
    >>> [(len(g["params"]), g["weight_decay"]) for g in param_groups(net, 1e-4)]
    [(2, 0.0001), (4, 0.0)]
"""

from __future__ import annotations

from typing import Any

from torch import nn

from mixsize_ray.core.choices import WEIGHT_DECAY_ON
from mixsize_ray.errors import ConfigError

_DECAYED = (nn.modules.conv._ConvNd, nn.Linear)


def decayed_names(model: nn.Module) -> set[str]:
    """Names (as in ``model.named_parameters()``) of the conv and linear ``weight`` tensors."""
    out = set()
    for mod_name, mod in model.named_modules():
        if isinstance(mod, _DECAYED) and getattr(mod, "weight", None) is not None:
            out.add(f"{mod_name}.weight" if mod_name else "weight")
    return out


def param_groups(model: nn.Module, weight_decay: float, on: str = "weights") -> list[dict[str, Any]]:
    """Optimizer parameter groups: ``[{decayed, weight_decay}, {the rest, 0.0}]``.

    Args:
        model: the module (a DDP or compiled wrapper is fine: names are matched on its own modules).
        weight_decay: L2 coefficient (>= 0) for the decayed group.
        on: ``"weights"`` (conv/linear weights only; BatchNorm and biases get 0) or ``"all"``
            (one group, every parameter decayed).

    Returns:
        groups for ``torch.optim.SGD`` / ``AdamW``; frozen parameters (``requires_grad=False``) are left out.
    """
    if on not in WEIGHT_DECAY_ON:
        raise ConfigError("optim.weight_decay_on", f"one of {list(WEIGHT_DECAY_ON)}", on)
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if on == "all":
        return [{"params": [p for _, p in params], "weight_decay": float(weight_decay)}]
    names = decayed_names(model)
    decay = [p for n, p in params if n in names]
    rest = [p for n, p in params if n not in names]
    return [{"params": decay, "weight_decay": float(weight_decay)}, {"params": rest, "weight_decay": 0.0}]


__all__ = ["WEIGHT_DECAY_ON", "decayed_names", "param_groups"]
