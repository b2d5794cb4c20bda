"""The small CNN of the MNIST-family adversarial-training literature.

Conv 32-32 (3x3) -> max-pool -> conv 64-64 (3x3) -> max-pool -> FC 200 -> FC 200 -> linear classifier,
as in the TRADES reference code (Zhang et al. 2019) with dropout 0.5 between the two FC layers.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .base import MODELS, Classifier


@MODELS.register("small-cnn")
class SmallCNN(Classifier):
    def __init__(
        self,
        num_classes: int,
        image_shape: tuple[int, int, int],
        mean: Sequence[float],
        std: Sequence[float],
        dropout: float = 0.5,
    ) -> None:
        super().__init__(mean, std)
        c, h, w = image_shape
        self.body = nn.Sequential(
            nn.Conv2d(c, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.body(torch.zeros(1, c, h, w)).shape[1]
        self.fc = nn.Sequential(
            nn.Linear(flat, 200),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(200, 200),
            nn.ReLU(),
        )
        self.feature_dim = 200
        self.head = nn.Linear(200, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(self.normalize(x)))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)
