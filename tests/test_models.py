"""Every registered model honours the contract: [0,1] input, logits out, features/classify split,
normalisation inside, every parameter trained."""

import pytest
import torch

from clead.models import MODELS, create_model

# narrow versions of the large models keep the test fast; the architecture is the same
SMALL = {"preact-resnet18": {"width": 8}, "wrn-34-10": {"widen": 1}, "wrn-28-10": {"widen": 1}}


@pytest.mark.parametrize("name", MODELS.names())
def test_model_contract(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, image_shape=(1, 28, 28), mean=(0.3,), std=(0.4,), **SMALL.get(name, {}))
    x = torch.rand(5, 1, 28, 28)
    model.eval()
    logits = model(x)
    feats = model.features(x)
    assert logits.shape == (5, 7)
    assert feats.shape == (5, model.feature_dim)
    assert torch.allclose(model.classify(feats), logits)
    assert torch.isfinite(logits).all()
    model.train()
    model(x).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing}"


@pytest.mark.parametrize("name", MODELS.names())
def test_normalisation_is_inside_the_model(name):
    torch.manual_seed(0)
    a = create_model(name, 10, (1, 28, 28), mean=(0.0,), std=(1.0,), **SMALL.get(name, {})).eval()
    b = create_model(name, 10, (1, 28, 28), mean=(0.5,), std=(0.25,), **SMALL.get(name, {})).eval()
    b.load_state_dict(a.state_dict() | {"mean": b.mean, "std": b.std})
    x = torch.rand(3, 1, 28, 28)
    # b sees (x - 0.5) / 0.25; feeding a that same tensor must give b's output
    assert torch.allclose(b(x), a((x - 0.5) / 0.25), atol=1e-5)
    assert "mean" in b.state_dict() and "std" in b.state_dict()  # stored with the weights


def test_full_size_parameter_counts():
    # the standard sizes of the literature: PreAct ResNet-18 11.2M, WRN-34-10 46.2M, WRN-28-10 36.5M
    counts = {
        n: sum(p.numel() for p in create_model(n, 10, (3, 32, 32), (0.5,) * 3, (0.25,) * 3).parameters())
        for n in ("preact-resnet18", "wrn-34-10", "wrn-28-10")
    }
    assert round(counts["preact-resnet18"] / 1e6, 1) == 11.2
    assert round(counts["wrn-34-10"] / 1e6, 1) == 46.2
    assert round(counts["wrn-28-10"] / 1e6, 1) == 36.5
