"""CIFAR ResNets (He et al. 2016, section 4.2): depth 6n+2, three stages of 16/32/64 channels.

Shortcuts use option B (1x1 convolution + BN where the shape changes, identity elsewhere). Global average
pooling makes the network accept any input side; ``min_size = 8`` (the last stage then sees 2x2).

Example:
    >>> m = cifar_resnet(20, num_classes=10)
    >>> m(torch.zeros(2, 3, 24, 24)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn

from mixsize_ray.models.init import kaiming_init_


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual: ``[N, C_in, H, W] -> [N, C_out, H/stride, W/stride]``."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for small images: ``[N, 3, S, S] -> logits [N, num_classes]`` for any ``S >= 1``.

    Attributes:
        min_size: 8, the smallest recommended input side (total stride 4, the last stage sees 2x2).
    """

    min_size: int = 8

    def __init__(
        self, depth: int, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"depth: expected 6n+2 with n >= 1 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.depth = depth
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers: list[nn.Module] = []
        c_in = widths[0]
        for stage, c_out in enumerate(widths):
            for i in range(n):
                layers.append(BasicBlock(c_in, c_out, stride=2 if stage > 0 and i == 0 else 1))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        kaiming_init_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layers(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def cifar_resnet(depth: int, num_classes: int = 10) -> CifarResNet:
    """A CIFAR ResNet of ``depth`` (6n+2) layers with Kaiming-normal initialisation."""
    return CifarResNet(depth, num_classes)
