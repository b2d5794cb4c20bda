"""Contrastive losses against the SupCon / NT-Xent formulas written out as explicit loops."""

import math

import torch
import torch.nn.functional as F

from clead.losses import instance_nt_xent, multi_positive_infonce, paired_nt_xent, supcon_loss


def supcon_loop(z: torch.Tensor, labels: list[int], tau: float) -> float:
    """Khosla et al. 2020, Eq. 2 (L_out), averaged over anchors with at least one positive."""
    m = len(labels)
    total, count = 0.0, 0
    for i in range(m):
        positives = [p for p in range(m) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        denom = sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(m) if a != i)
        li = -sum(math.log(math.exp(float(z[i] @ z[p]) / tau) / denom) for p in positives) / len(positives)
        total += li
        count += 1
    return total / count


def ntxent_loop(z: torch.Tensor, n: int, tau: float) -> float:
    """Clean rows 0..n-1 are anchors; positives of i are rows i + k*n (its views); all other rows negatives."""
    m = z.shape[0]
    total = 0.0
    for i in range(n):
        positives = [p for p in range(m) if p != i and p % n == i]
        denom = sum(math.exp(float(z[i] @ z[a]) / tau) for a in range(m) if a != i)
        total += -sum(math.log(math.exp(float(z[i] @ z[p]) / tau) / denom) for p in positives) / len(positives)
    return total / n


def test_supcon_two_points_closed_form():
    # two embeddings of the same label: the only candidate is the positive, so the loss is log(1) = 0
    z = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    assert supcon_loss(z, torch.tensor([0, 0]), tau=0.5).item() == 0.0
    # three points, anchor 0 with positive 1 (cos 0) and negative 2 (cos -1), tau = 1
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    l0 = -math.log(math.exp(0) / (math.exp(0) + math.exp(-1)))
    per, counted = multi_positive_infonce(z, torch.tensor([0, 0, 1]), tau=1.0)
    assert abs(per[0].item() - l0) < 1e-6
    assert counted.tolist() == [True, True, False]  # point 2 has no positive


def test_supcon_matches_loop():
    torch.manual_seed(0)
    z = F.normalize(torch.randn(12, 5), dim=1)
    labels = [0, 1, 2, 0, 1, 2, 0, 0, 1, 3, 2, 1]
    for tau in (0.1, 0.5, 1.0):
        got = supcon_loss(z, torch.tensor(labels), tau).item()
        assert abs(got - supcon_loop(z, labels, tau)) < 1e-4 * max(1, abs(got))


def test_instance_ntxent_matches_loop_for_one_and_two_views():
    torch.manual_seed(1)
    for views in (1, 2):
        n = 4
        z = F.normalize(torch.randn(n * (views + 1), 6), dim=1)
        got = instance_nt_xent(z, n, tau=0.2).item()
        assert abs(got - ntxent_loop(z, n, 0.2)) < 1e-4


def test_paired_ntxent_is_the_mean_of_one_loop_per_view():
    """The authors' SimCLRLoss: per view k, NT-Xent over [clean; view k] only; catches pooling both views
    into one contrast (clead's instance mode), which differs as soon as there are two views."""
    torch.manual_seed(2)
    n = 5
    z = F.normalize(torch.randn(3 * n, 6), dim=1)
    per_view = [ntxent_loop(torch.cat([z[:n], z[n * k : n * (k + 1)]]), n, 0.3) for k in (1, 2)]
    assert abs(paired_nt_xent(z, n, tau=0.3).item() - sum(per_view) / 2) < 1e-4
    assert abs(paired_nt_xent(z, n, tau=0.3).item() - ntxent_loop(z, n, 0.3)) > 1e-3
    z1 = z[: 2 * n]
    assert abs(paired_nt_xent(z1, n, 0.3).item() - instance_nt_xent(z1, n, 0.3).item()) < 1e-6


def test_losses_prefer_aligned_views_and_have_finite_gradients():
    torch.manual_seed(2)
    clean = F.normalize(torch.randn(6, 8), dim=1)
    near = F.normalize(clean + 0.05 * torch.randn(6, 8), dim=1)
    far = F.normalize(torch.randn(6, 8), dim=1)
    assert instance_nt_xent(torch.cat([clean, near]), 6, 0.1) < instance_nt_xent(torch.cat([clean, far]), 6, 0.1)
    z = torch.cat([clean, near]).requires_grad_(True)
    supcon_loss(z, torch.arange(6).repeat(2), 0.1).backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
