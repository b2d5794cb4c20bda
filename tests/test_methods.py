"""Every training method: one optimisation step lowers its own loss on a fixed batch; C-LEAD's parts."""

import dataclasses
import math

import pytest
import torch
from conftest import ToyNet, synthetic_images

from clead.errors import CleadError
from clead.methods import METHODS, Budget
from clead.methods.clead import CLEAD, CLEADParams


def batch(n=32):
    x, y = synthetic_images(n, seed=5)
    return x.float().unsqueeze(1) / 255, y


def make(name, **params):
    cls = METHODS.get(name)
    return cls(cls.Params(**params), Budget(eps=0.1, steps=3), feature_dim=64, num_classes=10)


def loss_at(method, model, x, y, epoch=0, seed=0):
    torch.manual_seed(seed)  # same attack start for before/after
    loss, parts = method.loss(model, x, y, epoch)
    return loss, parts


@pytest.mark.parametrize("name", METHODS.names())
def test_one_step_lowers_the_loss(name):
    torch.manual_seed(0)
    model, method = ToyNet(), make(name)
    model.train()
    x, y = batch()
    opt = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.05)
    before, parts = loss_at(method, model, x, y)
    assert torch.isfinite(before) and parts
    opt.zero_grad()
    before.backward()
    opt.step()
    after, _ = loss_at(method, model, x, y)
    assert after.item() < before.item()


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"mode": "instance"},
        {"attack_loss": "ce"},
        {"attack_loss": "contrastive"},
        {"views": 2},
        {"w_clean": 0.5, "lam": 0.3, "tau": 0.5},
    ],
)
def test_clead_variants_lower_their_loss(params):
    torch.manual_seed(0)
    model, method = ToyNet(), make("clead", **params)
    x, y = batch()
    opt = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.05)
    before, parts = loss_at(method, model, x, y)
    assert "con" in parts
    opt.zero_grad()
    before.backward()
    opt.step()
    assert loss_at(method, model, x, y)[0].item() < before.item()


def _hand_infonce(z, positive, anchor, tau):
    """The multi-positive InfoNCE written out pair by pair: mean over counted anchors i of
    -1/|P(i)| sum_p log(exp(z_i.z_p/tau) / sum_{a != i} exp(z_i.z_a/tau))."""
    total, count = 0.0, 0
    for i in range(len(z)):
        pos = [j for j in range(len(z)) if j != i and positive(i, j)]
        if not anchor(i) or not pos:
            continue
        denom = sum(torch.exp(z[i] @ z[a] / tau) for a in range(len(z)) if a != i)
        total = total - sum(torch.log(torch.exp(z[i] @ z[p] / tau) / denom) for p in pos) / len(pos)
        count += 1
    return total / count


@pytest.mark.parametrize("mode", ["supervised", "instance", "pairs"])
def test_clead_loss_is_the_stated_formula_written_out_by_hand(mode):
    """Catches a wrong L_con (e.g. the positive mask shifted by one row, views paired with the wrong clean
    image, anchors counted wrongly, the authors' per-view pairs pooled into one contrast) and wrong weights
    of the three terms: the expected loss is recomputed from the model's own outputs on the two views the
    method made, with SupCon / NT-Xent written as loops."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model, method = ToyNet(), make("clead", mode=mode, views=2, w_adv=0.7, w_clean=0.2, lam=1.5, tau=0.5)
    x, y = batch(12)
    made = []
    real = method.make_views
    method.make_views = lambda *a, **k: made.extend(real(*a, **k)) or made
    loss, _ = method.loss(model, x, y, 0)
    assert len(made) == 2
    with torch.no_grad():
        z = F.normalize(method.projector(model.features(torch.cat([x, *made]))), dim=1).double()
        ce_clean = F.cross_entropy(model(x), y)
        ce_adv = F.cross_entropy(model(torch.cat(made)), y.repeat(2))
    n, labels = len(y), y.repeat(3)
    if mode == "supervised":
        con = _hand_infonce(z, lambda i, j: labels[i] == labels[j], lambda i: True, 0.5)
    elif mode == "instance":
        con = _hand_infonce(z, lambda i, j: i % n == j % n, lambda i: i < n, 0.5)
    else:  # one contrast per view over [clean; that view], averaged
        pair = [torch.cat([z[:n], z[n * k : n * (k + 1)]]) for k in (1, 2)]
        con = sum(_hand_infonce(zk, lambda i, j: i % n == j % n, lambda i: i < n, 0.5) for zk in pair) / 2
    expected = 0.7 * ce_adv + 0.2 * ce_clean + 1.5 * con
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_clead_warmup_switches_the_contrastive_term_off():
    model, method = ToyNet(), make("clead", warmup_epochs=2)
    x, y = batch()
    _, parts0 = loss_at(method, model, x, y, epoch=1)
    _, parts2 = loss_at(method, model, x, y, epoch=2)
    assert "con" not in parts0 and "con" in parts2


@pytest.mark.parametrize("anchors", ["train", "eval"])
def test_clead_attack_beats_random_noise_on_its_objective(anchors):
    """Catches an inner attack that does not follow its objective's gradient (e.g. replaced by uniform noise
    in the ball, or stepping down the loss): per sample, the view must score higher than noise does."""
    torch.manual_seed(0)
    model, method = ToyNet(), make("clead", anchors=anchors)
    x, y = batch(64)
    anchors_seen = []
    real = method.attack_objective
    method.attack_objective = lambda z, *a: anchors_seen.append(z) or real(z, *a)
    (view,) = method.perturb(model, x, y, epoch=0)["views"]
    objective = real(anchors_seen[0], y, 0)
    noise = (x + torch.empty_like(x).uniform_(-0.1, 0.1)).clamp(0, 1)
    with torch.no_grad():
        attacked, noisy = objective(model, view, y)[0], objective(model, noise, y)[0]
    assert (attacked > noisy).float().mean() > 0.9


def test_clead_eval_anchors_are_the_eval_mode_embeddings():
    """Catches anchors = eval taken from the training-mode forward (dropout on): with dropout active the two
    embeddings differ, and the attack's anchors must equal the deterministic eval-mode ones."""
    import torch.nn.functional as F

    torch.manual_seed(0)
    model, method = ToyNet(), make("clead", anchors="eval")
    model.body.append(torch.nn.Dropout(0.5))
    model.train()
    x, y = batch(16)
    seen = []
    real = method.attack_objective
    method.attack_objective = lambda z, *a: seen.append(z) or real(z, *a)
    method.perturb(model, x, y, epoch=0)
    assert model.training, "perturb must restore training mode"
    model.eval()
    with torch.no_grad():
        expected = F.normalize(method.projector(model.features(x)), dim=1)
    assert torch.allclose(seen[0], expected, atol=1e-6)


@pytest.mark.parametrize("attack_loss", ["ce", "contrastive", "joint"])
def test_clead_costs_one_clean_forward_more_than_pgd_at(attack_loss):
    """The attack reuses the training forward's clean embeddings: K attack forwards + (1 + views) training ones."""
    model, method = ToyNet(), make("clead", attack_loss=attack_loss, views=2, anchors="train")
    calls = []
    model.features = (lambda f: lambda inp: calls.append(len(inp)) or f(inp))(model.features)
    x, y = batch()
    loss_at(method, model, x, y)
    assert len(calls) == 2 * method.budget.steps + 3


def test_projection_head_is_not_part_of_the_classifier():
    model, method = ToyNet(), make("clead", proj_dim=16)
    assert not any(k.startswith("projector") for k in model.state_dict())
    assert method.projector[-1].out_features == 16


def test_bad_clead_params_are_errors():
    for bad in ({"mode": "cluster"}, {"attack_loss": "kl"}, {"views": 0}, {"tau": 0}, {"anchors": "test"}):
        with pytest.raises(CleadError):
            CLEADParams(**bad)
    assert {f.name for f in dataclasses.fields(CLEADParams)} >= {"mode", "attack_loss", "views", "lam", "tau"}


def test_method_knobs_are_flags_that_reach_the_method(idx_dir, tmp_path):
    """Each Params field is a `clead train` flag, recorded under method_args and given to the method built."""
    import yaml

    from clead import run as runmod
    from clead.cli import main

    out = tmp_path / "r"
    args = ["--data-dir", str(idx_dir), "--train-size", "32", "--val-size", "100", "--val-n", "8", "--epochs", "1"]
    assert main(["train", *args, "--batch-size", "32", "--attack-steps", "1", "--val-attack-steps", "1",
                 "--method", "clead", "--lam", "0.25", "--mode", "instance", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    cfg = runmod.read_config(out)
    assert yaml.safe_load((out / "config.yaml").read_text())["method_args"]["lam"] == 0.25
    _, method = runmod.build(cfg, runmod.load_checkpoint(out / "best.pt")["meta"])
    assert isinstance(method, CLEAD) and method.params.lam == 0.25 and method.params.mode == "instance"


def test_mixed_view_attacks_make_one_view_each_inside_the_ball():
    torch.manual_seed(0)
    model, method = ToyNet(), make("clead", view_attacks="pgd,fgsm,cw")
    x, y = batch()
    with torch.no_grad():
        z_clean = method.embed(model.features(x))
    views = method.make_views(model, x, y, z_clean, epoch=0)
    assert len(views) == 3
    for v in views:
        assert (v - x).abs().max() <= 0.1 + 1e-6 and v.min() >= 0 and v.max() <= 1
        assert not torch.equal(v, x)
    assert len({tuple(v.flatten()[:64].tolist()) for v in views}) == 3  # three different attacks, three views
    # fgsm: one step of 1.25 eps from a random start, on the method's objective; cw: PGD on the margin
    kinds = [method.view_attack(k, None) for k in ("pgd", "fgsm", "cw")]
    assert [a.steps for a in kinds] == [3, 1, 3] and kinds[1].alpha == pytest.approx(0.125)
    assert kinds[2].objective.__name__ == "cw_margin_objective"
    # the training step: 3 + 1 + 3 attack forwards, then the clean batch and the 3 views
    calls = []
    model.features = (lambda f: lambda inp: calls.append(len(inp)) or f(inp))(model.features)
    loss, parts = loss_at(method, model, x, y)
    assert len(calls) == 3 + 1 + 3 + 4 and torch.isfinite(loss) and "con" in parts


@pytest.mark.parametrize(
    "params, message",
    [({"view_attacks": "pgd,square"}, "unknown view attack"), ({"view_attacks": "pgd,fgsm", "views": 3}, "views=3")],
)
def test_bad_view_attacks_are_refused(params, message):
    from clead.errors import CleadError

    with pytest.raises(CleadError, match=message):
        make("clead", **params)


def ascl_by_hand(z, labels, preds, tau, dist, negatives="leaking"):
    """The leaking local SupCon written out anchor by anchor (Bui et al. 2021; module docstring of ascl)."""

    def d(a, b):
        diff = (a - b).abs()
        if dist == "linf":
            return diff.max()
        if dist == "l1":
            return diff.sum()
        if dist == "l2":
            return ((a - b) ** 2).sum().sqrt()
        return -(a @ b) / (a.norm() * b.norm())

    total = 0.0
    m = len(z)
    for i in range(m):
        cands = [j for j in range(m) if j != i and (negatives == "all" or preds[j] == preds[i])]
        pos = [j for j in cands if labels[j] == labels[i]]
        if not pos:
            continue
        denom = sum(torch.exp(-d(z[i], z[a]) / tau) for a in cands)
        total += -sum(torch.log(torch.exp(-d(z[i], z[p]) / tau) / denom) for p in pos) / len(pos)
    return total / m


@pytest.mark.parametrize("dist", ["linf", "l2", "l1", "cosine"])
@pytest.mark.parametrize("negatives", ["leaking", "all"])
def test_ascl_loss_matches_the_formula(dist, negatives):
    from clead.methods.ascl import ascl_loss

    g = torch.Generator().manual_seed(3)
    z = torch.nn.functional.normalize(torch.randn(8, 5, generator=g, dtype=torch.float64), dim=1)
    labels = torch.tensor([0, 1, 2, 0, 0, 1, 2, 0])
    preds = torch.tensor([0, 1, 1, 2, 0, 1, 2, 1])  # anchor 3 has no candidate with its label: contributes 0
    got = ascl_loss(z, labels, preds, tau=0.5, dist=dist, negatives=negatives)
    want = ascl_by_hand(z, labels, preds, 0.5, dist, negatives)
    assert got.item() == pytest.approx(float(want), rel=1e-5)


def test_ascl_leaking_ignores_negatives_with_another_prediction():
    from clead.methods.ascl import ascl_loss

    z = torch.nn.functional.normalize(torch.randn(6, 4), dim=1)
    labels, preds = torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 0, 0, 1, 2, 2])
    moved = z.clone()
    moved[3] = -moved[3]  # label 1, predicted 1: a candidate only for the other row predicted 1 (none)
    assert ascl_loss(z, labels, preds).item() == pytest.approx(ascl_loss(moved, labels, preds).item())
    moved[2] = -moved[2]  # label 1, predicted 0: a negative of anchors 0 and 1
    assert ascl_loss(z, labels, preds).item() != pytest.approx(ascl_loss(moved, labels, preds).item())


def test_ascl_objective_is_the_sum_of_its_terms():
    import torch.nn.functional as F

    torch.manual_seed(0)
    model, method = ToyNet(), make("ascl", ascl_kl=0.5, ascl_w_clean=0.3, ascl_weight=2.0)
    x, y = batch(16)
    x_adv = (x + 0.05).clamp(0, 1)
    loss, parts = method.objective(model, x, y, {"x_adv": x_adv}, 0)
    fc, fa = model.features(x), model.features(x_adv)
    lc, la = model.classify(fc), model.classify(fa)
    z = F.normalize(torch.cat([fc, fa]), dim=1)
    con = ascl_by_hand(z.double(), y.repeat(2), torch.cat([lc, la]).argmax(1), 0.07, "linf")
    kl = (F.softmax(la, 1) * (F.log_softmax(la, 1) - F.log_softmax(lc, 1))).sum(1).mean()
    want = F.cross_entropy(la, y) + 0.3 * F.cross_entropy(lc, y) + 2.0 * con + 0.5 * kl
    assert loss.item() == pytest.approx(float(want.detach()), rel=1e-4)
    assert set(parts) == {"ce_adv", "ce_clean", "ascl", "kl"}


def test_ascl_rejects_bad_knobs():
    with pytest.raises(CleadError, match="ascl_dist"):
        make("ascl", ascl_dist="l3")
    with pytest.raises(CleadError, match="ascl_negatives"):
        make("ascl", ascl_negatives="hard")


def _probs(logits_row):
    e = [math.exp(v) for v in logits_row]
    return [v / sum(e) for v in e]


@pytest.mark.parametrize("name", ["trades", "mart"])
def test_trades_and_mart_losses_are_their_papers_formulas_written_out(name, trained_toy, toy_data):
    """Catches a TRADES/MART loss with the KL reversed, the wrong weight, MART's boosted term on the true
    class instead of the most likely wrong one, or its weight (1 - p_y) taken from the adversarial
    prediction: each image's terms are recomputed from the model's logits with plain Python arithmetic."""
    torch.manual_seed(0)
    model, method = trained_toy, make(name, beta=2.5)  # a trained model: the attack moves p(x) far
    x, y = toy_data[0][:8], toy_data[1][:8]
    adv = method.perturb(model, x, y, 0)
    loss, parts = method.objective(model, x, y, adv, 0)
    with torch.no_grad():
        lc, la = model(x).tolist(), model(adv["x_adv"]).tolist()
    total, kls, plain = 0.0, 0.0, 0.0
    for i, t in enumerate(y.tolist()):
        pc, pa = _probs(lc[i]), _probs(la[i])
        kl = sum(p * math.log(p / q) for p, q in zip(pc, pa))  # KL(p(x) || p(x_adv))
        plain += kl
        if name == "trades":  # Zhang et al. 2019: CE(f(x), y) + beta KL
            total += -math.log(pc[t]) + 2.5 * kl
            kls += kl
        else:  # Wang et al. 2020: BCE(p(x_adv), y) + beta KL (1 - p_y(x))
            wrong = max((k for k in range(len(pa)) if k != t), key=lambda k: pa[k])
            bce = -math.log(pa[t]) - math.log(1.0001 - pa[wrong])  # 1.0001: the MART reference code's guard
            total += bce + 2.5 * kl * (1 - pc[t])
            kls += kl * (1 - pc[t])
    assert loss.item() == pytest.approx(total / len(y), rel=1e-4)
    assert plain / len(y) > 0.01, "the test needs views that move the prediction"
    assert parts["kl"].item() == pytest.approx(kls / len(y), rel=1e-3)  # float32 (1 - p_y) near p_y = 1
