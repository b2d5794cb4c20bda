"""Wide ResNets (Zagoruyko & Komodakis 2016) as used by Madry et al., TRADES and MART: WRN-34-10 and WRN-28-10."""

from __future__ import annotations

from typing import Sequence

from .base import MODELS
from .preact_resnet import PreActNet


class WideResNet(PreActNet):
    """Pre-activation wide residual network; its blocks are the PreAct ResNet's, made wider."""

    def __init__(
        self,
        depth: int,
        widen: int,
        num_classes: int,
        image_shape: tuple[int, int, int],
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__(mean, std)
        if (depth - 4) % 6:
            raise ValueError("WideResNet depth must be 6n + 4")
        n = (depth - 4) // 6
        self.build(image_shape[0], 16, [(16 * widen, n), (32 * widen, n), (64 * widen, n)], num_classes)


@MODELS.register("wrn-34-10")
def wrn_34_10(
    num_classes: int, image_shape: tuple[int, int, int], mean: Sequence[float], std: Sequence[float], widen: int = 10
) -> WideResNet:
    return WideResNet(34, widen, num_classes, image_shape, mean, std)


@MODELS.register("wrn-28-10")
def wrn_28_10(
    num_classes: int, image_shape: tuple[int, int, int], mean: Sequence[float], std: Sequence[float], widen: int = 10
) -> WideResNet:
    return WideResNet(28, widen, num_classes, image_shape, mean, std)
