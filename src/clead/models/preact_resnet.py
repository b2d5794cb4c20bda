"""Pre-activation ResNet-18 (He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016), the
CIFAR variant used throughout the adversarial-training literature (e.g. Rice et al. 2020)."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import MODELS, Classifier


class PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class PreActNet(Classifier):
    """Pre-activation networks: ``conv1 -> stages of PreActBlocks -> BN-ReLU -> global pool -> head``.
    Each stage after the first halves the resolution."""

    conv1: nn.Conv2d
    layers: nn.Sequential
    bn: nn.BatchNorm2d
    head: nn.Linear

    def build(self, in_channels: int, stem: int, stages: Sequence[tuple[int, int]], num_classes: int) -> None:
        """``stages``: (output channels, number of blocks) per stage."""
        self.conv1 = nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False)
        layers, cin = [], stem
        for i, (cout, n_blocks) in enumerate(stages):
            for b in range(n_blocks):
                layers.append(PreActBlock(cin, cout, stride=2 if (b == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.feature_dim = cin
        self.head = nn.Linear(cin, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.conv1(self.normalize(x)))
        return F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1).flatten(1)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)


@MODELS.register("preact-resnet18")
class PreActResNet18(PreActNet):
    def __init__(
        self,
        num_classes: int,
        image_shape: tuple[int, int, int],
        mean: Sequence[float],
        std: Sequence[float],
        width: int = 64,
    ) -> None:
        super().__init__(mean, std)
        self.build(image_shape[0], width, [(width * 2**i, 2) for i in range(4)], num_classes)
