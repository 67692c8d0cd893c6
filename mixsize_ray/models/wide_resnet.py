"""Wide ResNet (Zagoruyko & Komodakis 2016): WRN-d-k with pre-activation blocks, widths 16, 16k, 32k, 64k.

Global average pooling makes it accept any input side; ``min_size = 8``.

Example:
    >>> m = wide_resnet(16, 2, num_classes=10)
    >>> m(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
from torch import nn

from mixsize_ray.models.init import kaiming_init_


class WideBlock(nn.Module):
    """Pre-activation block BN-ReLU-conv3x3-(dropout)-BN-ReLU-conv3x3 with a 1x1 shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = torch.relu(self.bn1(x))
        skip = x if self.shortcut is None else self.shortcut(o)
        o = self.conv1(o)
        o = self.conv2(self.dropout(torch.relu(self.bn2(o))))
        return o + skip


class WideResNet(nn.Module):
    """WRN-depth-widen: ``[N, 3, S, S] -> logits [N, num_classes]`` for any ``S >= 1``.

    Attributes:
        min_size: 8, the smallest recommended input side (total stride 4).
    """

    min_size: int = 8

    def __init__(self, depth: int = 28, widen: int = 10, num_classes: int = 10, dropout: float = 0.0) -> None:
        super().__init__()
        if (depth - 4) % 6 or depth < 10:
            raise ValueError(f"depth: expected 6n+4 with n >= 1 (16, 22, 28, 40), got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        layers: list[nn.Module] = []
        c_in = widths[0]
        for stage, c_out in enumerate(widths[1:]):
            for i in range(n):
                layers.append(WideBlock(c_in, c_out, 2 if stage > 0 and i == 0 else 1, dropout))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(c_in)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)
        kaiming_init_(self, linear_weight=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.conv1(x))
        x = torch.relu(self.bn(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def wide_resnet(depth: int = 28, widen: int = 10, num_classes: int = 10, dropout: float = 0.0) -> WideResNet:
    """A WRN-``depth``-``widen`` (default WRN-28-10, no dropout)."""
    return WideResNet(depth, widen, num_classes, dropout)
