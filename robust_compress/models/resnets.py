"""ResNet-18 in its CIFAR form: the architecture of the robust-training literature at 32x32.

ImageNet's ResNet-18 (``torchvision:resnet18``) shrinks a 32x32 image to 8x8 in its stem (a
stride-2 7x7 conv and a max pool). The CIFAR form of He et al. and of the adversarial-training
papers (Madry et al.'s code, Rice et al. 2020, the 2024 fine-tuning study) starts with a 3x3
stride-1 conv and no pool: 11.2M parameters, 0.56 GMACs at 32x32.
"""

from __future__ import annotations

import torch
from torch import nn

from robust_compress.models.specs import BUILTINS


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a shortcut (a 1x1 conv-BN where the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output."""
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """A ResNet of :class:`BasicBlock` stages (64, 128, 256, 512 channels); head ``head``."""

    def __init__(self, blocks: tuple[int, ...], num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        layers, cin = [], 64
        for i, n in enumerate(blocks):
            cout = 64 * 2**i
            strides = [1 if i == 0 else 2] + [1] * (n - 1)
            layers.append(
                nn.Sequential(*[BasicBlock(c, cout, s) for c, s in _ins(cin, cout, strides)])
            )
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for images in [0, 1] (or normalised ones, see ``model.normalize``)."""
        x = self.layers(self.relu(self.bn1(self.conv1(x))))
        return self.head(self.pool(x).flatten(1))


def _ins(cin: int, cout: int, strides: list[int]) -> list[tuple[int, int]]:
    return [(cin if i == 0 else cout, s) for i, s in enumerate(strides)]


@BUILTINS.register("resnet18_cifar")
def resnet18_cifar(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """ResNet-18 in its CIFAR form (3x3 stem, no pool; 11.2M parameters)."""
    return CifarResNet((2, 2, 2, 2), num_classes, in_channels)
