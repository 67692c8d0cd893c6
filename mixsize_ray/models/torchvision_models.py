"""torchvision ImageNet models (random init, ``weights=None``) with ``num_classes`` set.

They end in adaptive average pooling, so any input side works; ``min_size = 32`` (total stride 32: the last
stage then sees 1x1).

Example:
    >>> import torch
    >>> m = torchvision_model("resnet18", num_classes=10)
    >>> m(torch.zeros(2, 3, 64, 64)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

from torch import nn
from torchvision import models as tvm

TORCHVISION_MODELS: tuple[str, ...] = ("resnet18", "resnet50", "efficientnet_b0")
TORCHVISION_MIN_SIZE = 32


def torchvision_model(name: str, num_classes: int) -> nn.Module:
    """torchvision's ``name`` with random weights and a ``num_classes`` head; sets ``model.min_size = 32``."""
    if name not in TORCHVISION_MODELS:
        raise ValueError(f"name: expected one of {list(TORCHVISION_MODELS)}, got {name!r}")
    model = getattr(tvm, name)(weights=None, num_classes=num_classes)
    model.min_size = TORCHVISION_MIN_SIZE
    return model
