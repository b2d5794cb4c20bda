"""ASCL (Bui et al., "Understanding and Achieving Efficient Robustness with Adversarial Supervised
Contrastive Learning", 2021): C-LEAD's supervised-contrastive predecessor.

Per batch (x, y), x_adv by PGD on CE (uniform start), latents z = normalize(h(.)) of the clean and the
adversarial batch stacked as Z = [z(x); z(x_adv)] (2n rows), labels [y; y] and current predictions
p = [argmax f(x); argmax f(x_adv)] (constants):

    L = w_clean * CE(f(x), y) + CE(f(x_adv), y) + weight * L_ASCL(Z) + kl * KL(p(x_adv) || p(x))

L_ASCL is the paper's "leaking" local SupCon. With similarity s_ij = -d(z_i, z_j) / tau, for anchor i the
candidates are the other rows with the same prediction, A(i) = {j != i : p_j = p_i}; its positives are
those that also share its label, P(i) = {j in A(i) : y_j = y_i}; negatives with another prediction are
dropped ("leaked"), which is what makes the loss local:

    l_i = -1/max(|P(i)|, 1) * sum_{j in P(i)} log( exp(s_ij) / sum_{a in A(i)} exp(s_ia) ),   L_ASCL = mean_i l_i

(all 2n anchors are averaged, those without positives count as 0, as in the authors' code).

The defaults follow the authors' public setting file (``neg_type=leaking``, ``dist=linf``, ``tau=0.07``,
``hidden_norm=True``, ``alpha=1`` i.e. clean CE on, weight of L_ASCL ``gbcomw=1``) and their run scripts
(KL weight ``lcsmtw=0``, local compactness ``lccomw=0``, which their loss requires). Where they compute
the latent is not settled by that code (it has a ``feat_dim=128`` projection-head option): here z is the
model's penultimate features by default, and ``ascl_proj_dim > 0`` adds a 2-layer projection head as in
C-LEAD. The paper's selection strategy is exactly this "leaking" variant; the global ("all negatives")
version is ``ascl_negatives=all``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CleadError
from ..precision import fp32_loss
from .base import METHODS, Budget, Method, projection_head
from .trades import kl_per_sample

DISTANCES = ("linf", "l2", "l1", "cosine")
NEGATIVES = ("leaking", "all")
MASKED = -1e9  # finite: a row whose candidates are all masked stays finite (and has no positives)


def pairwise_distance(z: torch.Tensor, dist: str) -> torch.Tensor:
    """d(z_i, z_j) for all pairs of rows of ``z``; ``cosine`` is minus the cosine similarity."""
    if dist == "cosine":
        zn = F.normalize(z, dim=1)
        return -(zn @ zn.T)
    p = {"linf": float("inf"), "l2": 2.0, "l1": 1.0}[dist]
    return torch.cdist(z, z, p=p)


@fp32_loss
def ascl_loss(
    z: torch.Tensor,
    labels: torch.Tensor,
    preds: torch.Tensor,
    tau: float = 0.07,
    dist: str = "linf",
    negatives: str = "leaking",
) -> torch.Tensor:
    """The local supervised contrastive loss over the rows of ``z`` (see the module docstring).
    ``negatives="all"``: every other row is a candidate (plain SupCon with distance ``dist``)."""
    m = len(z)
    eye = torch.eye(m, dtype=torch.bool, device=z.device)
    same_label = (labels[:, None] == labels[None, :]) & ~eye
    if negatives == "leaking":
        legal = (preds[:, None] == preds[None, :]) & ~eye
    else:
        legal = ~eye
    positive = same_label & legal
    logits = (-pairwise_distance(z, dist) / tau).masked_fill(~legal, MASKED)
    log_prob = F.log_softmax(logits, dim=1)
    n_pos = positive.sum(1).clamp_min(1)
    per_anchor = -(log_prob * positive).sum(1) / n_pos
    return per_anchor.mean()


@dataclass
class ASCLParams:
    ascl_weight: float = field(default=1.0, metadata={"help": "ASCL: weight of the local contrastive term"})
    ascl_tau: float = field(default=0.07, metadata={"help": "ASCL: temperature"})
    ascl_dist: str = field(default="linf", metadata={"help": f"ASCL: latent distance ({', '.join(DISTANCES)})"})
    ascl_negatives: str = field(
        default="leaking",
        metadata={"help": "ASCL: leaking (candidates share the anchor's prediction; the paper's selection) or all"},
    )
    ascl_w_clean: float = field(default=1.0, metadata={"help": "ASCL: weight of CE on clean images"})
    ascl_kl: float = field(default=0.0, metadata={"help": "ASCL: weight of KL(p(x_adv) || p(x))"})
    ascl_proj_dim: int = field(
        default=0, metadata={"help": "ASCL: projection head size (0 = contrast the penultimate features)"}
    )

    def __post_init__(self) -> None:
        if self.ascl_dist not in DISTANCES:
            raise CleadError(f"unknown ascl_dist {self.ascl_dist!r}; valid: {', '.join(DISTANCES)}")
        if self.ascl_negatives not in NEGATIVES:
            raise CleadError(f"unknown ascl_negatives {self.ascl_negatives!r}; valid: {', '.join(NEGATIVES)}")
        if self.ascl_tau <= 0:
            raise CleadError(f"ascl_tau must be > 0, got {self.ascl_tau}")
        if min(self.ascl_weight, self.ascl_w_clean, self.ascl_kl, self.ascl_proj_dim) < 0:
            raise CleadError("ascl_weight, ascl_w_clean, ascl_kl and ascl_proj_dim must be >= 0")


@METHODS.register("ascl")
class ASCL(Method):
    Params = ASCLParams

    def __init__(self, params: ASCLParams, budget: Budget, feature_dim: int, num_classes: int) -> None:
        super().__init__(params, budget, feature_dim, num_classes)
        self.projector = (
            projection_head(feature_dim, feature_dim, params.ascl_proj_dim) if params.ascl_proj_dim else nn.Identity()
        )

    def latent(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector(features).float(), dim=1)

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int):
        return {"x_adv": self.budget.attack()(model, x, y)}

    def objective(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, adv, epoch: int):
        p = self.params
        n = len(y)
        # two forwards (BatchNorm statistics per batch, as in the authors' code)
        feats = torch.cat([model.features(x), model.features(adv["x_adv"])])
        logits = model.classify(feats)
        ce_clean = F.cross_entropy(logits[:n], y)
        ce_adv = F.cross_entropy(logits[n:], y)
        con = ascl_loss(
            self.latent(feats), y.repeat(2), logits.argmax(1).detach(), p.ascl_tau, p.ascl_dist, p.ascl_negatives
        )
        loss = ce_adv + p.ascl_w_clean * ce_clean + p.ascl_weight * con
        parts = {"ce_adv": ce_adv.detach(), "ce_clean": ce_clean.detach(), "ascl": con.detach()}
        if p.ascl_kl:
            kl = kl_per_sample(logits[n:], logits[:n]).mean()
            loss = loss + p.ascl_kl * kl
            parts["kl"] = kl.detach()
        return loss, parts
