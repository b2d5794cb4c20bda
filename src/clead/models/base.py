"""The model contract shared by every architecture.

* input: images in [0, 1], NCHW; normalisation happens inside the model (attacks never see it);
* ``forward(x)`` returns logits;
* ``features(x)`` returns the penultimate embedding and ``classify(features)`` maps it to logits,
  so a method can get both from one forward pass: ``forward(x) == classify(features(x))``;
* ``classify`` is the module ``head`` (a linear layer): what a linear probe (``--freeze-features``) trains.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from ..errors import CleadError
from ..registry import Registry

MODELS: Registry = Registry("model")


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Run ``module`` in eval mode inside the block and restore its previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class Classifier(nn.Module):
    """Base class: owns the normalisation buffers and the features/classify split."""

    feature_dim: int

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def classify(self, features: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))


def create_model(
    name: str,
    num_classes: int,
    image_shape: tuple[int, int, int],
    mean: Sequence[float],
    std: Sequence[float],
    **model_args: Any,
) -> Classifier:
    """Build a registered model for images of ``image_shape`` (C, H, W); ``model_args`` go to its constructor."""
    ctor = MODELS.get(name)
    try:
        return ctor(num_classes=num_classes, image_shape=image_shape, mean=mean, std=std, **model_args)
    except TypeError as e:
        raise CleadError(f"bad model_args for {name}: {e}") from None
