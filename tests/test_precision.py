"""Training precision: ``amp: auto`` resolution, bf16 autocast on the CPU, and fp32 for every robustness number."""

import json

import pytest
import torch
from conftest import ToyNet, synthetic_images

from clead import precision
from clead.evaluation.evaluate import evaluate
from clead.methods import METHODS, Budget

CPU = torch.device("cpu")


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "none")])
def test_auto_resolves_to_bf16_only_where_the_cpu_has_bf16_units(monkeypatch, native, expected):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert precision.resolve_amp("auto", CPU) == expected
    # explicit choices are kept whatever the CPU
    assert precision.resolve_amp("none", CPU) == "none"
    assert precision.resolve_amp("bf16", CPU) == "bf16"


@pytest.mark.parametrize("native", [True, False])
def test_explicit_bf16_warns_only_where_the_cpu_emulates_it(monkeypatch, caplog, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert precision.resolve_amp("bf16", CPU) == "bf16"
    assert ("bf16 is emulated" in caplog.text) is not native
    caplog.clear()
    precision.resolve_amp("auto", CPU)
    assert "emulated" not in caplog.text


def test_auto_on_cuda_follows_bf16_support(monkeypatch):
    for supported, expected in ((True, "bf16"), (False, "none")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda s=supported: s)
        assert precision.resolve_amp("auto", torch.device("cuda")) == expected


def test_fp16_on_cpu_falls_back_to_fp32_with_a_warning(caplog):
    assert precision.resolve_amp("fp16", CPU) == "none"
    assert "needs CUDA" in caplog.text


def test_cpu_flags_are_read_from_cpuinfo(monkeypatch, tmp_path):
    from pathlib import Path

    for flags, expected in (
        ("fpu sse avx512f avx512_bf16", True),
        ("fpu amx_tile amx_bf16", True),
        ("fpu sse avx2", False),
    ):
        (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nmodel name\t: AMD  EPYC {flags}\nflags\t\t: {flags}\n")
        precision.cpu_has_native_bf16.cache_clear()
        precision.cpu_model.cache_clear()
        real_read = Path.read_text
        monkeypatch.setattr(
            Path,
            "read_text",
            lambda self, *a, **k: (
                real_read(tmp_path / "cpuinfo") if str(self) == "/proc/cpuinfo" else real_read(self, *a, **k)
            ),
        )
        assert precision.cpu_has_native_bf16() is expected
        assert precision.cpu_model() == f"AMD EPYC {flags}"  # spaces collapsed
        from clead.distributed import device_name

        assert device_name(torch.device("cpu")) == f"cpu (AMD EPYC {flags})"
        monkeypatch.undo()
    precision.cpu_has_native_bf16.cache_clear()
    precision.cpu_model.cache_clear()


def test_autocast_bf16_runs_the_network_in_bf16_on_cpu():
    model = ToyNet()
    x = torch.rand(4, 1, 16, 16)
    with precision.autocast("bf16", CPU):
        assert model(x).dtype == torch.bfloat16
    with precision.autocast("none", CPU):
        assert model(x).dtype == torch.float32


@pytest.mark.parametrize("method", ["pgd-at", "clead"])
def test_a_bf16_training_step_lowers_the_loss(method):
    torch.manual_seed(0)
    xu, y = synthetic_images(64, seed=3)
    x = xu.float().unsqueeze(1) / 255
    model = ToyNet()
    cls = METHODS.get(method)
    m = cls(cls.Params(), Budget(eps=0.05, steps=2), model.feature_dim, 10)
    opt = torch.optim.Adam([*model.parameters(), *m.parameters()], lr=3e-3)
    losses = []
    for _ in range(30):
        with precision.autocast("bf16", CPU):
            loss, _ = m.loss(model, x, y, epoch=0)
        opt.zero_grad()
        loss.float().backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast keeps the weights in fp32
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_evaluation_is_fp32_even_inside_an_autocast_region():
    torch.manual_seed(0)
    model = ToyNet()
    seen = []
    model.head.register_forward_hook(lambda mod, inp, out: seen.append(out.dtype))
    xu, y = synthetic_images(24, seed=4)
    x = xu.float().unsqueeze(1) / 255
    plain = evaluate(model, x, y, attacks=["pgd20"], eps=0.1, checks=False, progress=False)
    seen.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = evaluate(model, x, y, attacks=["pgd20"], eps=0.1, checks=False, progress=False)
    assert seen and set(seen) == {torch.float32}
    assert inside["robust_accuracy"] == plain["robust_accuracy"]


def test_bf16_training_records_its_precision_and_validates_in_fp32(idx_dir, tmp_path, monkeypatch):
    from clead.training.config import from_dict
    from clead.training.trainer import train

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    cfg = from_dict(
        {
            "data_dir": str(idx_dir),
            "train_size": 32,
            "val_size": 100,
            "val_n": 16,
            "epochs": 1,
            "batch_size": 16,
            "attack_steps": 1,
            "val_attack_steps": 1,
            "device": "cpu",
            "method": "pgd-at",
        }
    )
    assert cfg.amp == "auto"
    no_grad_dtypes = []

    from clead import run as runmod

    real_build = runmod.build

    def build(*a, **k):
        model, method = real_build(*a, **k)
        model.head.register_forward_hook(
            lambda mod, inp, out: no_grad_dtypes.append(out.dtype) if not torch.is_grad_enabled() else None
        )
        return model, method

    monkeypatch.setattr(runmod, "build", build)
    out = train(cfg, tmp_path / "r", progress=False)
    assert "amp: bf16" in (out / "config.yaml").read_text()  # the resolved value, not auto
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[0])["amp"] == "bf16"
    # the no-grad forwards are validation's (clean and after its PGD): fp32
    assert no_grad_dtypes and set(no_grad_dtypes) == {torch.float32}


def test_channels_last_changes_layout_not_outputs():
    torch.manual_seed(0)
    from clead.models import create_model

    model = create_model("small-cnn", 10, (1, 28, 28), (0.5,), (0.5,)).eval()
    x = torch.rand(8, 1, 28, 28)
    ref = model(x)
    precision.to_channels_last(model)
    assert model.body[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model(x), ref, atol=1e-5)


@pytest.mark.parametrize("capability, safe", [("AVX2", False), ("AVX512", True), ("AVX512_BF16", True)])
def test_channels_last_stays_off_where_onednn_crashes_on_a_narrow_strided_1x1_convolution(
    monkeypatch, caplog, capability, safe
):
    """Catches channels_last applied to a PreAct ResNet-18 at width 4 on an AVX2-only CPU, whose first
    shortcut (4 -> 8, 1x1, stride 2) makes oneDNN's NHWC weight gradient corrupt the heap (abort or hang),
    and a check so broad that it also turns channels_last off for safe layers or CPUs."""
    from clead.models import create_model

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    narrow = create_model("preact-resnet18", 10, (1, 16, 16), (0.5,), (0.5,), width=4)
    # (a 3x3 weight: a 1x1 one is contiguous in both layouts)
    assert (
        precision.to_channels_last(narrow).layers[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)
        == safe
    )
    assert safe or "channels_last off" in caplog.text and "layers.2.shortcut (4 -> 8" in caplog.text
    wide = create_model("preact-resnet18", 10, (1, 16, 16), (0.5,), (0.5,), width=8)
    assert precision.channels_last_hazard(wide) is None
    assert precision.to_channels_last(wide).layers[0].conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_loss_terms_run_in_fp32_inside_a_bf16_region():
    """Softmax-based loss terms are invariant to adding one constant to a row of logits, so their gradient
    sums to 0 over each row. In bf16 (CPU autocast keeps softmax in bf16) a confident probability rounds
    to 1 and MART's 1 / (1.0001 - p) factor amplifies the broken Jacobian: row sums up to 0.06 against
    gradients of 0.5. The loss terms must therefore see fp32 whatever the autocast."""
    from clead.losses import multi_positive_infonce
    from clead.methods.ascl import ascl_loss
    from clead.methods.mart import mart_terms
    from clead.methods.trades import kl_per_sample

    y = torch.tensor([0, 1, 2, 3])
    base = torch.zeros(4, 10)
    base[0, 1], base[1, 0], base[2, 2], base[3, 5] = 7.0, 8.0, 3.0, 6.5  # confident, two of them wrong
    clean = base.roll(1, dims=1)
    la = base.bfloat16().requires_grad_(True)  # what a bf16 network hands over
    z = torch.nn.functional.normalize(torch.randn(8, 6), dim=1).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bce, kl = mart_terms(clean.bfloat16(), la, y)
        trades_kl = kl_per_sample(clean.bfloat16(), la)
        con = multi_positive_infonce(z, torch.arange(8) % 4, 0.1)[0]
        a = ascl_loss(z, torch.arange(8) % 4, torch.arange(8) % 3)
    assert bce.dtype == kl.dtype == trades_kl.dtype == con.dtype == a.dtype == torch.float32
    # the same numbers as in fp32 from the same (bf16-valued) inputs
    ref_bce, ref_kl = mart_terms(clean.bfloat16().float(), la.detach().float(), y)
    assert bce.item() == pytest.approx(ref_bce.item(), rel=1e-6) and kl.item() == pytest.approx(ref_kl.item(), rel=1e-6)
    assert con.sum().item() == pytest.approx(
        multi_positive_infonce(z.float(), torch.arange(8) % 4, 0.1)[0].sum().item(), rel=1e-6
    )
    assert a.item() == pytest.approx(ascl_loss(z.float(), torch.arange(8) % 4, torch.arange(8) % 3).item(), rel=1e-6)
    (bce + kl).backward()
    g = la.grad.float()
    assert g.abs().max() > 0.1 and g.sum(1).abs().max() < 0.005  # bf16 loss terms: 0.06
