"""Configs: defaults, YAML round trip, unknown keys, eps fractions, method knobs."""

from pathlib import Path

import pytest
import yaml

from clead.errors import CleadError
from clead.training.config import TrainConfig, from_dict, load_yaml, merge, parse_eps

CONFIGS = sorted((Path(__file__).parent.parent / "configs").glob("*.yaml"))


def test_defaults_validate_and_fill_method_args():
    cfg = TrainConfig().validate()
    assert cfg.method == "clead" and cfg.method_args["tau"] == 0.1 and cfg.method_args["lam"] == 1.0


def test_yaml_round_trip(tmp_path):
    cfg = from_dict({"method": "trades", "eps": "8/255", "method_args": {"beta": 3.0}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    again = from_dict(load_yaml(tmp_path / "c.yaml"))
    assert again == cfg and again.eps == pytest.approx(8 / 255) and again.method_args == {"beta": 3.0}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_are_valid(path):
    from_dict(load_yaml(path), source=str(path))


def test_errors_name_the_bad_value():
    with pytest.raises(CleadError, match="unknown key.*epoch_count.*valid:.*epochs"):
        from_dict({"epoch_count": 3})
    with pytest.raises(CleadError, match="has no option lam.*valid: beta"):
        from_dict({"method": "trades", "method_args": {"lam": 1}})
    with pytest.raises(
        CleadError, match="unknown method 'fgsm-at'; valid: ascl, clead, mart, pgd-at, standard, trades"
    ):
        from_dict({"method": "fgsm-at"})
    with pytest.raises(CleadError, match="outside"):
        from_dict({"eps": 1.5})
    with pytest.raises(CleadError, match="negative"):
        from_dict({"eps": -0.1, "norm": "l2"})
    with pytest.raises(CleadError, match="fraction"):
        parse_eps("eight")
    for knob, bad, says in (
        ("attack_alpha", -0.1, "attack_alpha must be >= 0"),
        ("attack_noise", -1, "attack_noise must be >= 0"),
        ("ema_decay", 1.0, r"ema_decay must be in \[0, 1\)"),
        ("cyclic_peak", 0, r"cyclic_peak must be in \(0, 1\)"),
    ):
        with pytest.raises(CleadError, match=says):
            from_dict({knob: bad})
    assert from_dict({"attack_alpha": "2/255"}).attack_alpha == pytest.approx(2 / 255)
    assert from_dict({"attack_alpha": 0}).attack_alpha == 0  # the random start alone (tests/test_distributed.py)


def test_merge_keeps_method_args_from_both():
    assert merge({"method_args": {"lam": 1, "tau": 0.2}}, {"method_args": {"tau": 0.5}}) == {
        "method_args": {"lam": 1, "tau": 0.5}
    }


def test_format_eps_writes_radii_as_people_quote_them():
    """Catches 16/255 shown as 0.0627451, or a short decimal such as 0.2 (= 51/255) turned into a fraction."""
    from clead.attacks.base import format_eps

    assert [format_eps(parse_eps(e)) for e in ("8/255", "16/255", "2/255", "64/255")] == [
        "8/255", "16/255", "2/255", "64/255"
    ]  # fmt: skip
    assert [format_eps(e) for e in (0.1, 0.2, 0.5, 0.3)] == ["0.1", "0.2", "0.5", "0.3"]
    assert format_eps(2 / 3) == "0.667" and format_eps(10 / 3) == "3.33"  # the L2 and L1 radii of eps 0.1
    assert format_eps(0.0627) == "0.0627"  # near 16/255 but not it
