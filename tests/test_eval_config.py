"""EvalConfig: the one source of evaluation defaults, built from YAML, flags and keywords alike."""

import json

import pytest

from clead.cli import build_parser, eval_config_from_args
from clead.errors import CleadError
from clead.evaluation.eval_config import EvalConfig, from_dict


def test_flags_override_the_yaml_which_overrides_the_defaults(tmp_path):
    """Catches a flag default that silently wins over the config file, or a config key that is dropped."""
    f = tmp_path / "e.yaml"
    f.write_text("attacks: [pgd20, apgd]\nn: 500\nseed: 3\ncheck_n: 50\n")
    args = build_parser().parse_args(["eval", "RUN", "--config", str(f), "--seed", "7", "--no-checks", "--quiet"])
    ec = eval_config_from_args(args)
    assert ec.attacks == ["pgd20", "apgd"] and ec.n == 500 and ec.check_n == 50  # from the file
    assert ec.seed == 7 and ec.checks is False and ec.progress is False  # flags win
    assert ec.batch_size == EvalConfig().batch_size and ec.checkpoint == "best"  # defaults
    plain = eval_config_from_args(build_parser().parse_args(["eval", "RUN"]))
    assert plain == EvalConfig().validate()


def test_bad_evaluation_options_are_errors():
    with pytest.raises(CleadError, match="unknown evaluation option"):
        from_dict({"attack": ["pgd20"]})
    with pytest.raises(CleadError, match="valid:"):
        from_dict({"attacks": "pgd20,deepfool"})
    with pytest.raises(CleadError, match="checkpoint"):
        from_dict({"checkpoint": "middle"})
    with pytest.raises(CleadError, match="--n"):
        from_dict({"n": 0})
    assert from_dict({"eps": "8/255", "attacks": "fgsm, pgd20"}).eps == pytest.approx(8 / 255)


def test_eval_json_records_the_config_it_ran_with(idx_dir, tmp_path, capsys):
    from clead.cli import main

    run = tmp_path / "r"
    assert (
        main(
            [
                "train",
                "--data-dir",
                str(idx_dir),
                "--method",
                "standard",
                "--train-size",
                "64",
                "--val-size",
                "100",
                "--val-n",
                "16",
                "--epochs",
                "1",
                "--out",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["eval", str(run), "--attacks", "fgsm", "-n", "20", "--no-checks", "--seed", "4", "--quiet"]) == 0
    ec = json.loads((run / "eval.json").read_text())["eval_config"]
    assert ec["attacks"] == ["fgsm"] and ec["n"] == 20 and ec["seed"] == 4 and ec["checks"] is False


def test_every_field_is_a_flag_and_the_threat_matrix_is_part_of_the_config():
    """Catches a field without a flag (the flags are made from the fields), and a matrix that accepts settings it
    would ignore, whether they come from flags, a file or keywords."""
    import dataclasses

    from clead.cli import build_parser

    parser = build_parser()
    eval_parser = next(a for a in parser._subparsers._group_actions[0].choices.values() if a.prog.endswith("eval"))
    flags = {s for a in eval_parser._actions for s in a.option_strings}
    for f in dataclasses.fields(EvalConfig):
        assert ("--" + f.name.replace("_", "-")) in flags or f.name == "progress", f.name
    ec = eval_config_from_args(parser.parse_args(["eval", "RUN", "--threats", "--threat-eps", "l2=1.5"]))
    assert ec.matrix() and ec.threats == ["linf", "linf-2x", "l2", "l1"] and ec.threat_eps == {"l2": 1.5}
    ec = from_dict({"threats": "l2", "transfer_from": "other"})
    assert ec.threats == ["l2", "transfer"]  # a transfer source adds its threat
    for ignored in ({"eps": 0.2}, {"norm": "l2"}, {"attacks": ["pgd20"]}, {"restarts": 2}, {"sweep": [0.1]}):
        with pytest.raises(CleadError, match="do not apply to a threat matrix"):
            from_dict({"threats": ["linf"], **ignored})
    with pytest.raises(CleadError, match="need --transfer-from"):
        from_dict({"threats": ["transfer-pgd3"]})


def test_evaluate_takes_an_eval_config_and_refuses_unknown_options(trained_toy, toy_data):
    import clead

    x, y = toy_data
    a = clead.evaluate(trained_toy, x[:16], y[:16], EvalConfig(attacks=["fgsm"], eps=0.1, checks=False, progress=False))
    b = clead.evaluate(trained_toy, x[:16], y[:16], attacks=["fgsm"], eps=0.1, checks=False, progress=False)
    assert a["per_attack"] == b["per_attack"] and a["eps"] == 0.1
    with pytest.raises(CleadError, match="unknown evaluation option.*restart"):
        clead.evaluate(trained_toy, x[:16], y[:16], restart=2)
