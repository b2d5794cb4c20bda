"""Wide ResNets (Zagoruyko & Komodakis 2016) as used by Madry et al., TRADES and MART: WRN-34-10 and WRN-28-10."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import MODELS, Classifier


class WideBlock(nn.Module):
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
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + skip


class WideResNet(Classifier):
    def __init__(self, depth: int, widen: int, num_classes: int, image_shape: tuple[int, int, int],
                 mean: Sequence[float], std: Sequence[float]) -> None:  # fmt: skip
        super().__init__(mean, std)
        if (depth - 4) % 6:
            raise ValueError("WideResNet depth must be 6n + 4")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv1 = nn.Conv2d(image_shape[0], widths[0], 3, 1, 1, bias=False)
        layers, cin = [], widths[0]
        for i, cout in enumerate(widths[1:]):
            for b in range(n):
                layers.append(WideBlock(cin, cout, stride=2 if (b == 0 and i > 0) else 1))
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


@MODELS.register("wrn-34-10")
def wrn_34_10(num_classes: int, image_shape: tuple[int, int, int], mean: Sequence[float],
              std: Sequence[float], widen: int = 10) -> WideResNet:  # fmt: skip
    return WideResNet(34, widen, num_classes, image_shape, mean, std)


@MODELS.register("wrn-28-10")
def wrn_28_10(num_classes: int, image_shape: tuple[int, int, int], mean: Sequence[float],
              std: Sequence[float], widen: int = 10) -> WideResNet:  # fmt: skip
    return WideResNet(28, widen, num_classes, image_shape, mean, std)
