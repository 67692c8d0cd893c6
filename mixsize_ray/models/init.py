"""Weight initialisation shared by the CIFAR-style networks (He et al.)."""

from __future__ import annotations

from torch import nn


def kaiming_init_(model: nn.Module, linear_weight: bool = True) -> None:
    """Kaiming-normal (fan_out, relu) convs, BN weight 1 / bias 0, Linear bias 0 and, if ``linear_weight``,
    Kaiming-normal Linear weights (else PyTorch's default Linear weight init is kept)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_weight:
                nn.init.kaiming_normal_(m.weight)
            nn.init.zeros_(m.bias)
