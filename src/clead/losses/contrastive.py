"""Contrastive losses on L2-normalised embeddings.

Both losses are instances of one multi-positive InfoNCE: for an anchor ``i``, with similarities
``s_ij = z_i . z_j / tau``, positives ``P(i)`` and candidates ``A(i) = {all j != i}``::

    l_i = -1/|P(i)| * sum_{p in P(i)} log( exp(s_ip) / sum_{a in A(i)} exp(s_ia) )

* **SupCon** (Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020, Eq. 2, L^sup_out):
  every embedding is an anchor and ``P(i)`` = all other embeddings with the same label. The paper's
  extra factor ``tau / base_tau`` is not applied (it only rescales the loss, i.e. ``lam``).
* **Instance NT-Xent** (Chen et al., SimCLR, 2020, generalised to several views): only the clean
  embeddings are anchors and ``P(i)`` = the adversarial views of the same image; labels are unused.
* **Paired NT-Xent** (the C-LEAD authors' code, ``SimCLRLoss`` of Van Gansbeke et al.'s SCAN code base): one
  instance NT-Xent per view over ``[clean; that view]`` (clean anchors, the other view's rows are not
  candidates), averaged over the views. With one view it equals the instance NT-Xent.

Anchors without any positive are skipped (they contribute 0 and are not counted in the mean).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..precision import fp32_loss


@dataclass(frozen=True)
class Positives:
    """Which pairs count as positives and which rows as anchors: depends on the ids only, so a caller that
    evaluates the loss many times on one batch (C-LEAD's inner attack) builds it once."""

    self_mask: torch.Tensor  # [M, M] bool, the diagonal
    weights: torch.Tensor  # [M, M] 1/|P(i)| on the positives of i, 0 elsewhere
    counted: torch.Tensor  # [M] bool: anchors that have at least one positive

    @staticmethod
    def of(ids: torch.Tensor, anchors: torch.Tensor | None = None) -> "Positives":
        m = ids.shape[0]
        self_mask = torch.eye(m, dtype=torch.bool, device=ids.device)
        pos = (ids[:, None] == ids[None, :]) & ~self_mask
        n_pos = pos.sum(1)
        counted = n_pos > 0
        if anchors is not None:
            counted = counted & anchors
        return Positives(self_mask, pos.float() / n_pos.clamp_min(1)[:, None], counted)


@fp32_loss
def multi_positive_infonce(
    z: torch.Tensor,
    ids: torch.Tensor | None,
    tau: float,
    anchors: torch.Tensor | None = None,
    positives: Positives | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-anchor losses ``l_i`` (0 where ``i`` is no anchor or has no positive) and the mask of counted anchors.

    Computed as ``l_i = logsumexp_{a in A(i)} s_ia - sum_p s_ip / |P(i)|`` (the same quantity, in fewer operations).

    Args:
        z: [M, d] embeddings, expected L2-normalised.
        ids: [M] positives of ``i`` are the ``j != i`` with ``ids[j] == ids[i]``.
        tau: temperature.
        anchors: optional [M] bool mask of the rows used as anchors (default: all).
        positives: ``Positives.of(ids, anchors)`` built in advance (then ``ids`` and ``anchors`` are unused).
    """
    pp = positives if positives is not None else Positives.of(ids, anchors)
    sim = (z @ z.T) / tau
    lse = torch.logsumexp(sim.masked_fill(pp.self_mask, -float("inf")), dim=1)
    per_anchor = lse - (pp.weights * sim).sum(1)
    return per_anchor * pp.counted, pp.counted


def _mean(per_anchor: torch.Tensor, counted: torch.Tensor) -> torch.Tensor:
    return per_anchor.sum() / counted.sum().clamp_min(1)


def supcon_loss(z: torch.Tensor, labels: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """SupCon over all rows of ``z`` (clean and adversarial views stacked), positives = same label."""
    return _mean(*multi_positive_infonce(z, labels, tau))


def instance_ids(n: int, views: int, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and anchor mask for ``[clean; view_1; ...; view_V]`` stacked row-wise (clean rows are anchors)."""
    ids = torch.arange(n, device=device).repeat(views + 1)
    anchors = torch.zeros(n * (views + 1), dtype=torch.bool, device=device)
    anchors[:n] = True
    return ids, anchors


def instance_nt_xent(z: torch.Tensor, n: int, tau: float = 0.1) -> torch.Tensor:
    """NT-Xent with clean anchors: ``z`` is ``[clean (n rows); view_1; ...; view_V]``."""
    ids, anchors = instance_ids(n, z.shape[0] // n - 1, z.device)
    return _mean(*multi_positive_infonce(z, ids, tau, anchors))


def paired_nt_xent(z: torch.Tensor, n: int, tau: float = 0.1) -> torch.Tensor:
    """The authors' loss: ``z`` is ``[clean (n rows); view_1; ...; view_V]``; the mean over views ``k`` of
    the instance NT-Xent over ``[clean; view_k]``."""
    views = z.shape[0] // n - 1
    return torch.stack(
        [instance_nt_xent(torch.cat([z[:n], z[n * k : n * (k + 1)]]), n, tau) for k in range(1, views + 1)]
    ).mean()
