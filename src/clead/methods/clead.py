"""C-LEAD: contrastive learning for enhanced adversarial defense.

Per batch (x, y), with feature extractor h (the model's ``features``), projection head g (a 2-layer MLP
owned by this method, not part of the exported classifier) and z = normalize(g(h(.))):

1. ``views`` adversarial copies of x, each by the training attack (``--train-attack``: PGD, FGSM-RS or
   N-FGSM, own random start) inside the eps-ball (N-FGSM: see `clead.attacks.nfgsm`) maximising
   ``attack_loss``: ``ce`` = CE(f(x_adv), y); ``contrastive`` = L_con over [clean; this view];
   ``joint`` = the training loss below (its w_clean term does not depend on x_adv). The attack runs in
   eval mode, like every attack. The clean embeddings it contrasts with (held constant during it) are,
   with ``anchors = train``, those of the training loss (the clean batch's training-mode forward, run before
   the attack: no extra forward, but dropout and batch statistics make them differ from what an eval-mode
   forward gives), or with ``anchors = eval`` those of an extra eval-mode forward without gradient, scored
   as the views are. Either way the update then minimises the loss on training-mode embeddings.
2. L_con over the clean and all adversarial embeddings: ``supervised`` = SupCon (positives: same label),
   ``instance`` = NT-Xent with clean anchors and their own views as positives; ``pairs`` = the authors'
   code's loss: one instance NT-Xent per view over [clean; that view], averaged over the views.
3. L = w_adv * CE(f(x_adv), y) + w_clean * CE(f(x), y) + lam * L_con; during the first
   ``warmup_epochs`` the contrastive term is off (and the attack maximises CE).

The extra cost over PGD-AT at equal steps is one clean forward/backward, plus the projection head and
L_con inside each attack step (small next to the network's forward/backward).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import PGD
from ..attacks.cw import cw_margin_objective
from ..errors import CleadError
from ..losses import Positives, instance_ids, multi_positive_infonce
from ..models.base import eval_mode
from .base import METHODS, Budget, Method, projection_head

MODES = ("supervised", "instance", "pairs")
ANCHORS = ("train", "eval")
ATTACK_LOSSES = ("ce", "contrastive", "joint")
# a view made by "train" is made by the run's --train-attack (what `views` copies are made by); "fgsm" is the
# older name of fgsm-rs; cw is the training attack on the CW margin
VIEW_ATTACKS = ("train", "pgd", "fgsm", "fgsm-rs", "n-fgsm", "cw")


@dataclass
class CLEADParams:
    # The defaults ranked first of the ten settings of `clead bench fmnist-ablation` (docs/results/README.md).
    mode: str = field(
        default="supervised",
        metadata={
            "help": "C-LEAD: contrastive term, supervised (SupCon), instance (NT-Xent, clean anchors) or pairs (the authors' code: one NT-Xent per view over [clean; view], averaged)"
        },
    )
    attack_loss: str = field(
        default="joint", metadata={"help": "C-LEAD: what the inner attack maximises: ce, contrastive or joint"}
    )
    views: int = field(default=1, metadata={"help": "C-LEAD: adversarial views per image"})
    lam: float = field(default=1.0, metadata={"help": "C-LEAD: weight of the contrastive term"})
    tau: float = field(default=0.1, metadata={"help": "C-LEAD: contrastive temperature"})
    w_adv: float = field(default=1.0, metadata={"help": "C-LEAD: weight of CE on adversarial views"})
    w_clean: float = field(default=0.0, metadata={"help": "C-LEAD: weight of CE on clean images"})
    warmup_epochs: int = field(default=0, metadata={"help": "C-LEAD: epochs of plain CE before the contrastive term"})
    proj_dim: int = field(default=128, metadata={"help": "C-LEAD: projection head output size"})
    proj_hidden: int = field(default=0, metadata={"help": "C-LEAD: projection head hidden size (0 = feature size)"})
    anchors: str = field(
        default="train",
        metadata={
            "help": "C-LEAD: the inner attack's clean anchors: train (the "
            "training forward's embeddings, no extra cost) or eval (an eval-mode forward, as the attack "
            "scores its views; one more forward per step)"
        },
    )
    view_attacks: str = field(
        default="",
        metadata={
            "help": "C-LEAD: comma-separated attacks making the views, one "
            "view each: train (the run's --train-attack on attack_loss), pgd (PGD on attack_loss), "
            "fgsm-rs or its older name fgsm (one signed step of 1.25*eps from a random start, on attack_loss), "
            "n-fgsm (one step of eps from noise of 2*eps, not clipped to the ball), cw (the training attack "
            "on the CW margin); empty: `views` views by the training attack"
        },
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise CleadError(f"unknown C-LEAD mode {self.mode!r}; valid: {', '.join(MODES)}")
        if self.anchors not in ANCHORS:
            raise CleadError(f"unknown C-LEAD anchors {self.anchors!r}; valid: {', '.join(ANCHORS)}")
        if self.attack_loss not in ATTACK_LOSSES:
            raise CleadError(f"unknown attack_loss {self.attack_loss!r}; valid: {', '.join(ATTACK_LOSSES)}")
        if self.views < 1:
            raise CleadError(f"views must be >= 1, got {self.views}")
        if self.tau <= 0:
            raise CleadError(f"tau must be > 0, got {self.tau}")
        if min(self.lam, self.w_adv, self.w_clean) < 0:
            raise CleadError("lam, w_adv and w_clean must be >= 0")
        kinds = self.view_kinds()
        unknown = [k for k in kinds if k not in VIEW_ATTACKS]
        if unknown:
            raise CleadError(f"unknown view attack(s) {', '.join(unknown)}; valid: {', '.join(VIEW_ATTACKS)}")
        if self.view_attacks and self.views not in (1, len(kinds)):
            raise CleadError(f"views={self.views} but view_attacks lists {len(kinds)}; give one of them")

    def view_kinds(self) -> list[str]:
        """The attack making each adversarial view, in order."""
        if self.view_attacks.strip():
            return [k.strip() for k in self.view_attacks.split(",") if k.strip()]
        return ["train"] * self.views


@METHODS.register("clead")
class CLEAD(Method):
    Params = CLEADParams
    takes_views = True  # objective() accepts views made elsewhere (--views-from)

    def __init__(self, params: CLEADParams, budget: Budget, feature_dim: int, num_classes: int) -> None:
        super().__init__(params, budget, feature_dim, num_classes)
        hidden = params.proj_hidden or feature_dim
        self.projector = projection_head(feature_dim, hidden, params.proj_dim)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.projector(features).float(), dim=1)  # fp32 from here on (precision.fp32_loss)

    def positives(self, y: torch.Tensor, views: int) -> Positives:
        """Positives and anchors of L_con for ``[clean; view_1; ...; view_views]`` of a batch with labels ``y``."""
        if self.params.mode == "supervised":
            return Positives.of(y.repeat(views + 1))
        return Positives.of(*instance_ids(len(y), views, y.device))

    def contrastive_terms(self, z: torch.Tensor, positives: Positives) -> torch.Tensor:
        """Per-anchor L_con for ``z = [clean; view_1; ...]`` (0 for rows that are not counted anchors)
        divided by the number of counted anchors, so that ``.sum()`` is the mean loss."""
        per, counted = multi_positive_infonce(z, None, self.params.tau, positives=positives)
        return per / counted.sum().clamp_min(1)

    def contrastive_loss(self, z: torch.Tensor, y: torch.Tensor, views: int) -> torch.Tensor:
        """L_con of ``z = [clean; view_1; ...; view_views]``; in ``pairs`` mode the mean over views of the
        loss of ``[clean; view_k]``."""
        if self.params.mode != "pairs":
            return self.contrastive_terms(z, self.positives(y, views)).sum()
        n, pos = len(y), self.positives(y, 1)
        return torch.stack(
            [self.contrastive_terms(torch.cat([z[:n], z[n * k : n * (k + 1)]]), pos).sum() for k in range(1, views + 1)]
        ).mean()

    def contrastive_on(self, epoch: int) -> bool:
        return epoch >= self.params.warmup_epochs and self.params.lam > 0

    def uses_all_parameters(self) -> bool:
        return self.params.warmup_epochs == 0 and self.params.lam > 0

    def attack_objective(self, z_clean: torch.Tensor | None, y: torch.Tensor, epoch: int):
        """What the inner attack on the batch labelled ``y`` maximises, per sample; ``z_clean``: the clean
        embeddings (constants)."""
        p = self.params
        use_con = self.contrastive_on(epoch) and p.attack_loss != "ce"
        use_ce = p.attack_loss != "contrastive" or not use_con
        w_ce = p.w_adv if (p.attack_loss == "joint" and use_con) else 1.0
        positives = self.positives(y, 1) if use_con else None  # built once for all the attack's steps

        def objective(model: nn.Module, xa: torch.Tensor, y: torch.Tensor):
            feats = model.features(xa)
            logits = model.classify(feats)
            loss = w_ce * F.cross_entropy(logits, y, reduction="none") if use_ce else logits.new_zeros(len(y))
            if use_con:
                n = len(y)
                per = self.contrastive_terms(torch.cat([z_clean, self.embed(feats)]), positives)
                # per-sample share: the anchors of sample i (clean and view) summed, scaled to a batch mean
                loss = loss + p.lam * n * per.view(2, n).sum(0)
            return loss, logits

        return objective

    def view_attack(self, kind: str, objective) -> PGD:
        """The attack making one view: the training attack, or one named, on the method's objective, or the
        training attack on the CW margin."""
        if kind == "cw":
            return self.budget.attack(cw_margin_objective)
        named = {"train": None, "fgsm": "fgsm-rs"}.get(kind, kind)
        return self.budget.attack(objective, kind=named)

    def make_views(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, z_clean: torch.Tensor | None, epoch: int
    ) -> list[torch.Tensor]:
        """One adversarial copy of ``x`` per entry of ``view_kinds``."""
        objective = self.attack_objective(z_clean, y, epoch)
        return [self.view_attack(kind, objective)(model, x, y) for kind in self.params.view_kinds()]

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int):
        # the clean training forward first (its features, with their graph, are cached for the objective);
        # the attack's anchors are its embeddings, detached, or those of an eval-mode forward (``anchors``)
        feats_clean = model.features(x)
        z_clean = None
        if self.contrastive_on(epoch) and self.params.anchors == "eval":
            with torch.no_grad(), eval_mode(model):
                z_clean = self.embed(model.features(x))
        elif self.contrastive_on(epoch):
            z_clean = self.embed(feats_clean).detach()
        return {"views": self.make_views(model, x, y, z_clean, epoch), "cache": {"feats_clean": feats_clean}}

    def objective(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, adv, epoch: int):
        p = self.params
        n = len(y)
        x_advs = adv["views"]
        feats_clean = adv.get("cache", {}).get("feats_clean")
        if feats_clean is None:  # the weights changed since perturb (AWP): the clean forward is redone
            feats_clean = model.features(x)
        # one forward per view (as the TRADES/MART reference code does): BatchNorm statistics stay per
        # view, and on CPU two batches of n are faster than one of 2n
        feats = torch.cat([feats_clean, *(model.features(v) for v in x_advs)])
        logits = model.classify(feats)
        ce_clean = F.cross_entropy(logits[:n], y)
        ce_adv = F.cross_entropy(logits[n:], y.repeat(len(x_advs)))
        loss = p.w_adv * ce_adv + p.w_clean * ce_clean
        parts = {"ce_adv": ce_adv.detach(), "ce_clean": ce_clean.detach()}
        if self.contrastive_on(epoch):
            con = self.contrastive_loss(self.embed(feats), y, len(x_advs))
            loss = loss + p.lam * con
            parts["con"] = con.detach()
        return loss, parts
