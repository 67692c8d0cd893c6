"""Models by name. Every model takes ``[N, 3, S, S]`` for any S (global average pooling), returns logits
``[N, num_classes]`` and has an int attribute ``min_size`` (smallest recommended input side).

Example:
    >>> model = build_model("resnet20", num_classes=10)
    >>> model.min_size
    8

Owns the model zoo (CIFAR ResNets, WRN, torchvision ResNet/EfficientNet) and the allowed names ``MODELS``.
May import: torch, torchvision, ``mixsize_ray.errors``. Never ``config``, ``train``, ``tune`` or ``tracking``.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mixsize_ray.core.choices import MODELS
from mixsize_ray.errors import ConfigError
from mixsize_ray.models.cifar_resnet import CifarResNet, cifar_resnet
from mixsize_ray.models.torchvision_models import torchvision_model
from mixsize_ray.models.wide_resnet import WideResNet, wide_resnet

_BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    "resnet8": lambda c: cifar_resnet(8, c),  # one block per stage: the 2-core quickstart's model
    "resnet20": lambda c: cifar_resnet(20, c),
    "resnet44": lambda c: cifar_resnet(44, c),
    "resnet56": lambda c: cifar_resnet(56, c),
    "wrn28_10": lambda c: wide_resnet(28, 10, c, dropout=0.0),
    "resnet18": lambda c: torchvision_model("resnet18", c),
    "resnet50": lambda c: torchvision_model("resnet50", c),
    "efficientnet_b0": lambda c: torchvision_model("efficientnet_b0", c),
}

def build_model(name: str, num_classes: int) -> nn.Module:
    """A freshly initialised model: ``[N, 3, S, S] -> [N, num_classes]``, with ``model.min_size``.

    Raises:
        ConfigError: unknown ``name`` (the message lists :data:`MODELS`) or ``num_classes < 2``.
    """
    if name not in _BUILDERS:
        raise ConfigError("model.name", f"one of {list(MODELS)}", name)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ConfigError("model.num_classes", "an int >= 2", num_classes)
    return _BUILDERS[name](num_classes)


__all__ = ["MODELS", "CifarResNet", "WideResNet", "build_model"]
