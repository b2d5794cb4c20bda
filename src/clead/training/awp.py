"""Adversarial weight perturbation (Wu, Xia & Wang, "Adversarial Weight Perturbation Helps Robust
Generalization", NeurIPS 2020), for any training method.

Each step, after the method has made its adversarial inputs at weights ``w`` (``Method.perturb``), AWP moves
every weight matrix (tensors with more than one dimension: biases and normalisation parameters are left
alone, as in the authors' code) up the gradient of the method's own objective on those inputs, by ``gamma``
times its own norm::

    v_l = gamma * ||w_l|| * g_l / ||g_l||,   g = grad_w objective(w; x, x_adv)

The loss is then computed and back-propagated at ``w + v``, the optimiser steps, and ``v`` is subtracted
again, so the update is the one taken at the perturbed point. (The authors take one SGD step of a proxy copy
on the negated loss and rescale the difference per layer; after the rescaling the step size cancels, which
leaves the formula above.) Cost: one more forward/backward of the objective per step.

Their settings: PGD-AT gamma 0.01 with no warm-up; TRADES gamma 0.005 (0.01 for ResNet-18) after a 10-epoch
warm-up. Under torchrun each process computes ``v`` from its own share of the batch.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

EPS = 1e-20


def perturbed_params(model: nn.Module) -> list[nn.Parameter]:
    """The weights AWP perturbs: trainable tensors of more than one dimension."""
    return [p for p in model.parameters() if p.requires_grad and p.dim() > 1]


def weight_perturbation(model: nn.Module, objective: Callable[[], torch.Tensor], gamma: float) -> list[torch.Tensor]:
    """``v`` for the current weights: ``gamma * ||w_l|| * g_l / ||g_l||`` per weight tensor (zeros where the
    objective does not depend on it)."""
    params = perturbed_params(model)
    grads = torch.autograd.grad(objective().float(), params, allow_unused=True)
    out = []
    for p, g in zip(params, grads):
        if g is None:
            out.append(torch.zeros_like(p))
        else:
            out.append(gamma * p.detach().norm() * g / (g.norm() + EPS))
    return out


@torch.no_grad()
def add(model: nn.Module, v: list[torch.Tensor], sign: float = 1.0) -> None:
    """``w += sign * v`` for the weights of `perturbed_params`."""
    for p, d in zip(perturbed_params(model), v):
        p.add_(d, alpha=sign)
