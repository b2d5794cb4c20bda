"""Weight averaging: an exponential moving average of the weights, for any training method.

After every optimiser step (and after AWP has taken its perturbation back), each floating-point entry of the
model's state (weights and batch-norm running statistics alike, as timm's ``ModelEmaV2`` does) moves towards
the trained model's::

    avg <- d_t * avg + (1 - d_t) * w,    d_t = min(decay, (1 + t) / (10 + t)),

``t`` the number of updates before this one. The warm-up of ``d_t`` (TensorFlow's ``ExponentialMovingAverage``
with ``num_updates``) lets the average forget its random initial weights within the first few hundred steps
instead of ``1 / (1 - decay)``. Integer buffers (batch norm's ``num_batches_tracked``) are copied. Averaging the
running statistics rather than recomputing them on the training data costs nothing and is what the leading
RobustBench entries' code does.

The averaged model is what a run exports: the trainer validates it each epoch and writes it to ``best.pt``
(and as ``model`` in ``last.pt``, beside the trained weights it resumes from).
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def decay_at(decay: float, updates: int) -> float:
    """The decay of update number ``updates`` (0-based): the warmed-up ``min(decay, (1 + t) / (10 + t))``."""
    return min(decay, (1 + updates) / (10 + updates))


class WeightAverage:
    """The running average of ``model``'s state; ``average`` is a model of the same kind, in eval mode."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.average = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = decay_at(self.decay, self.updates)
        current = model.state_dict()
        for name, avg in self.average.state_dict().items():
            new = current[name].detach()
            if avg.is_floating_point():
                avg.lerp_(new.to(avg.dtype), 1.0 - d)
            else:
                avg.copy_(new)
        self.updates += 1
