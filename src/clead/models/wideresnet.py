"""Wide ResNets (Zagoruyko & Komodakis 2016) as used by Madry et al., TRADES and MART: WRN-34-10 and WRN-28-10."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from .base import MODELS
from .preact_resnet import PreActBlock, PreActNet


class WideResNet(PreActNet):
    """Pre-activation wide residual network; its blocks are the PreAct ResNet's, made wider."""

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
                layers.append(PreActBlock(cin, cout, stride=2 if (b == 0 and i > 0) else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(cin)
        self.feature_dim = cin
        self.head = nn.Linear(cin, num_classes)


@MODELS.register("wrn-34-10")
def wrn_34_10(num_classes: int, image_shape: tuple[int, int, int], mean: Sequence[float],
              std: Sequence[float], widen: int = 10) -> WideResNet:  # fmt: skip
    return WideResNet(34, widen, num_classes, image_shape, mean, std)


@MODELS.register("wrn-28-10")
def wrn_28_10(num_classes: int, image_shape: tuple[int, int, int], mean: Sequence[float],
              std: Sequence[float], widen: int = 10) -> WideResNet:  # fmt: skip
    return WideResNet(28, widen, num_classes, image_shape, mean, std)
