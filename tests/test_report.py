"""Suite reports: how each run trained, the collapse and averaging notes, and the cost-robustness frontier."""

import json
import math

from clead.io import write_yaml
from clead.study.report import cost_unit, frontier_points, pareto, suite_rows, training_label, write_suite_report
from clead.training.config import from_dict


def test_training_label_names_the_attack_and_the_options():
    assert training_label(from_dict({"method": "pgd-at"})) == "pgd-at, PGD-10"
    assert training_label(from_dict({"method": "clead", "train_attack": "n-fgsm", "ema_decay": 0.999})) == (
        "clead, N-FGSM + EMA"
    )
    assert training_label(from_dict({"method": "trades", "train_attack": "fgsm-rs", "awp_gamma": 0.01})) == (
        "trades, FGSM-RS + AWP"
    )
    assert training_label(from_dict({"method": "standard"})) == "standard"


def fake_run(d, cfg, aa, clean, metrics):
    d.mkdir(parents=True)
    write_yaml(d / "config.yaml", from_dict(cfg).to_dict())
    (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    ev = {"per_attack": {"autoattack": aa}, "robust_accuracy": aa, "n": 1000, "clean_accuracy": clean}
    (d / "eval.json").write_text(json.dumps(ev))


def epochs(*pairs):
    return [
        {"epoch": i + 1, "loss": 1.0, "val_clean": c, "val_pgd": r, "collapsed": f} for i, (c, r, f) in enumerate(pairs)
    ]


def test_report_plots_the_frontier_and_marks_collapse(tmp_path):
    out = tmp_path / "suite"
    ok = epochs((0.5, 0.3, False), (0.6, 0.35, False))
    fake_run(out / "pgd-at-fgsm-rs", {"method": "pgd-at", "train_attack": "fgsm-rs"}, 0.20, 0.8,
             epochs((0.5, 0.3, False), (0.7, 0.05, True)))  # fmt: skip
    fake_run(out / "clead-fgsm-rs", {"method": "clead", "train_attack": "fgsm-rs", "ema_decay": 0.99}, 0.40, 0.7, ok)
    other = tmp_path / "elsewhere" / "pgd-at"
    fake_run(other, {"method": "pgd-at"}, 0.45, 0.75, ok)
    cost = {
        "machine": "Test CPU",
        "threads": 1,
        "rounds": 3,
        "reference": str(other),
        "runs": {
            "pgd-at-fgsm-rs": {"ratio": 0.2, "seconds_per_step": 0.1, "fwd_bwd_per_image": 2},
            "clead-fgsm-rs": {"ratio": 0.3, "seconds_per_step": 0.15, "fwd_bwd_per_image": 3},
            str(other): {"ratio": 1.0, "seconds_per_step": 0.5, "fwd_bwd_per_image": 11},
        },
    }
    (out / "cost.json").write_text(json.dumps(cost))
    write_suite_report([out / "pgd-at-fgsm-rs", out / "clead-fgsm-rs", other], out, "t")
    md = (out / "report.md").read_text()
    assert "## Cost and robustness" in md and "Test CPU" in md
    table = md.split("## Cost and robustness")[1]
    # cheapest first, the measured ratio beside the AutoAttack accuracy
    assert table.index("| pgd-at-fgsm-rs | pgd-at, FGSM-RS | 0.20 |") < table.index("| clead-fgsm-rs |")
    assert table.index("| clead-fgsm-rs | clead, FGSM-RS + EMA | 0.30 |") < table.index(
        "| pgd-at | pgd-at, PGD-10 | 1.00"
    )
    assert "pgd-at-fgsm-rs at epoch 2" in md and "Weight averaging (EMA): clead-fgsm-rs" in md
    assert (out / "frontier.png").stat().st_size > 1000 and "frontier.png" in md
    assert "Cost and robustness" in (out / "report.html").read_text()
    # the plotted lines: one per method and options, each point with its 95% Wilson interval, by hand
    rows = suite_rows([out / "pgd-at-fgsm-rs", out / "clead-fgsm-rs", other])
    lines = frontier_points(rows, cost)
    assert list(lines) == ["clead + EMA", "pgd-at"]
    p, n, z = 0.20, 1000, 1.96
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    (x, y, attack, lo, hi), second = lines["pgd-at"]
    assert (x, attack, second[0], second[2]) == (0.2, "FGSM-RS", 1.0, "PGD-10")
    assert math.isclose(y, 20.0) and math.isclose(lo, 100 * (centre - half)) and math.isclose(hi, 100 * (centre + half))
    assert lo < y < hi and hi - lo > 4.5  # about +-2.5 points at n = 1,000
    # the x axis says what a ratio of 1 is: a step of the reference, named by how it trained
    assert cost_unit(rows, cost) == "one pgd-at, PGD-10 step"
    assert cost_unit(rows[:2], cost) == "pgd-at"  # the reference not in the report: its directory's name


def test_report_without_cost_has_no_frontier(tmp_path):
    out = tmp_path / "suite"
    fake_run(out / "a", {"method": "pgd-at"}, 0.4, 0.8, epochs((0.5, 0.3, False)))
    write_suite_report([out / "a"], out, "t")
    md = (out / "report.md").read_text()
    assert "Cost and robustness" not in md and not (out / "frontier.png").exists()
    assert "collapse" not in md.lower().replace("x: collapsed", "")


def test_report_tables_catastrophic_overfitting_per_arm_from_last_and_best(tmp_path):
    """Catches last.pt's evaluation leaking into the best.pt table, seeds not grouped into their arm, or a
    collapse not counted."""
    out = tmp_path / "suite"
    fell = epochs((0.5, 0.3, False), (0.7, 0.02, True))
    ok = epochs((0.5, 0.3, False), (0.6, 0.35, False))
    diverged = epochs((0.5, 0.3, False), (0.6, 0.35, False), (0.3, 0.1, False))  # clean fell too: no collapse
    runs = [
        ("pgd-at-fgsm-rs", 0, fell, 0.30, 0.01),
        ("pgd-at-fgsm-rs-seed1", 1, ok, 0.32, 0.31),
        ("clead-fgsm-rs", 0, diverged, 0.36, 0.35),
    ]
    for name, seed, metrics, aa_best, aa_last in runs:
        method = name.split("-fgsm")[0]
        fake_run(out / name, {"method": method, "train_attack": "fgsm-rs", "seed": seed}, aa_best, 0.8, metrics)
        last = {"per_attack": {"autoattack": aa_last}, "robust_accuracy": aa_last, "n": 1000, "clean_accuracy": 0.9,
                "checkpoint": "last"}  # fmt: skip
        (out / name / "eval-last.json").write_text(json.dumps(last))
    write_suite_report([out / name for name, *_ in runs], out, "t")
    md = (out / "report.md").read_text()
    table = md.split("## Catastrophic overfitting")[1]
    assert "| pgd-at-fgsm-rs | pgd-at, FGSM-RS | 1/2 | 2, - | 2, - | 16.0 (1.0, 31.0) | 31.0 (30.0, 32.0) |" in table
    assert "| clead-fgsm-rs | clead, FGSM-RS | 0/1 | - | 3 | 35.0 | 36.0 |" in table
    row = next(line for line in md.splitlines() if line.startswith("| pgd-at-fgsm-rs | pgd-at"))
    assert "| 30.00 [" in row and "| 1.00 [" not in row  # the main table is best.pt's, never last.pt's
    assert (out / "overfitting.png").stat().st_size > 1000
    assert "still bite" not in md  # no attack_bite file, no table of it


def test_overfitting_section_lists_each_runs_attack_bite_with_its_own_training_attack(tmp_path):
    """Catches another of C-LEAD's inner objectives shown in place of the one it trained on, or a run's file
    shown against another run."""
    out = tmp_path / "suite"
    fell = epochs((0.5, 0.3, False), (0.7, 0.02, True))
    bites = {
        "pgd-at-fgsm-rs": {"clean": 0.335, "fgsm-rs on ce": 0.939, "pgd-10 on ce": 0.0},
        "clead-fgsm-rs": {
            "clean": 0.654,
            "fgsm-rs on ce": 0.687,
            "fgsm-rs on joint (training's)": 0.681,
            "fgsm-rs on contrastive": 0.69,
            "pgd-10 on ce": 0.002,
        },  # fmt: skip
    }
    for name, acc in bites.items():
        fake_run(out / name, {"method": name.split("-fgsm")[0], "train_attack": "fgsm-rs"}, 0.15, 0.3, fell)
        last = {"per_attack": {"autoattack": 0.0}, "robust_accuracy": 0.0, "n": 1000, "clean_accuracy": 0.5,
                "checkpoint": "last"}  # fmt: skip
        (out / name / "eval-last.json").write_text(json.dumps(last))
        (out / name / "attack_bite-last.json").write_text(json.dumps({"n": 1000, "accuracy": acc}))
    write_suite_report([out / name for name in bites], out, "t")
    md = (out / "report.md").read_text().split("## Catastrophic overfitting")[1]
    assert "| pgd-at-fgsm-rs | 1000 | 33.5 | 93.9 (fgsm-rs on ce) | 0.0 |" in md
    assert "| clead-fgsm-rs | 1000 | 65.4 | 68.1 (fgsm-rs on joint) | 0.2 |" in md


def test_overfitting_table_marks_a_seed_evaluated_without_autoattack(tmp_path):
    """Catches the APGD-only worst case of an extra seed passed off as AutoAttack in the AutoAttack column."""
    out = tmp_path / "suite"
    ok = epochs((0.5, 0.3, False), (0.6, 0.35, False))
    fake_run(out / "a", {"method": "pgd-at", "train_attack": "n-fgsm"}, 0.40, 0.8, ok)
    fake_run(out / "a-seed1", {"method": "pgd-at", "train_attack": "n-fgsm", "seed": 1}, 0.0, 0.8, ok)
    ev = {"per_attack": {"apgd": 0.30}, "robust_accuracy": 0.30, "n": 1000, "clean_accuracy": 0.8}
    (out / "a-seed1" / "eval.json").write_text(json.dumps(ev))
    last = {"per_attack": {"autoattack": 0.1}, "robust_accuracy": 0.1, "n": 1000, "clean_accuracy": 0.9,
            "checkpoint": "last"}  # fmt: skip
    (out / "a" / "eval-last.json").write_text(json.dumps(last))
    write_suite_report([out / "a", out / "a-seed1"], out, "t")
    table = (out / "report.md").read_text().split("## Catastrophic overfitting")[1]
    assert "| 10.0 (10.0, -) | 35.0* (40.0, 30.0*) |" in table
    assert "\\* not all of AutoAttack" in table


def test_overfitting_table_marks_an_evaluation_that_failed_a_sanity_check(tmp_path):
    """Catches a last.pt whose attacks failed a check (masked gradients: the number overstates robustness) shown
    as plainly as a sound one; a check that passed or was not run marks nothing."""
    out = tmp_path / "suite"
    ok = epochs((0.5, 0.3, False), (0.6, 0.35, False))
    checks = {
        "a": [{"name": "large_eps", "passed": True}, {"name": "black_box_not_stronger", "passed": None}],
        "a-seed1": [{"name": "large_eps", "passed": True}, {"name": "more_steps_and_restarts", "passed": False}],
    }
    for seed, (name, cs) in enumerate(checks.items()):
        fake_run(out / name, {"method": "clead", "train_attack": "fgsm-rs", "seed": seed}, 0.15, 0.4, ok)
        last = {"per_attack": {"autoattack": 0.1 - 0.02 * seed}, "robust_accuracy": 0.1, "n": 1000,
                "clean_accuracy": 0.5, "checkpoint": "last", "checks": cs}  # fmt: skip
        (out / name / "eval-last.json").write_text(json.dumps(last))
    write_suite_report([out / name for name in checks], out, "t")
    table = (out / "report.md").read_text().split("## Catastrophic overfitting")[1]
    assert "| 9.0 (10.0, 8.0†) | 15.0 (15.0, 15.0) |" in table
    assert "† that evaluation failed a sanity check" in table


def test_overfitting_picture_has_a_panel_per_single_step_attack_with_the_reference_in_each():
    from types import SimpleNamespace

    from clead.study.report import overfitting_panels

    def row(run: str, attack: str) -> dict:
        return {"run": run, "cfg": SimpleNamespace(train_attack=attack)}

    rows = [row("pgd-at-fgsm-rs", "fgsm-rs"), row("clead-n-fgsm-seed1", "n-fgsm"), row("pgd-at-pgd5", "pgd")]
    panels = overfitting_panels(rows)
    assert {k: [r["run"] for r in v] for k, v in panels.items()} == {
        "fgsm-rs": ["pgd-at-fgsm-rs", "pgd-at-pgd5"],
        "n-fgsm": ["clead-n-fgsm-seed1", "pgd-at-pgd5"],
    }
    assert overfitting_panels(rows[::2]) == {"": rows[::2]}  # one single-step attack: one panel of all runs


def test_an_arms_seconds_per_epoch_are_averaged_per_machine_never_across_machines():
    """An arm whose seeds trained on two CPUs: a mean per machine, keyed as under the suite table; one machine in
    the whole table: a plain mean."""
    from clead.study.report import epoch_seconds, machine_keys

    amd, intel = "cpu (AMD EPYC), bf16", "cpu (Intel Xeon), bf16"
    rows = [
        {"epoch_s": 100.0, "epoch_on": amd},
        {"epoch_s": 140.0, "epoch_on": amd},
        {"epoch_s": 60.0, "epoch_on": intel},
        {"epoch_s": None, "epoch_on": None},
    ]
    machines = machine_keys(rows)
    assert machines == [amd, intel]
    assert epoch_seconds(rows, machines) == "120 [m1], 60 [m2]"
    assert epoch_seconds(rows[:2], machine_keys(rows[:2])) == "120"
    assert epoch_seconds(rows[3:], machines) == "-"


def test_named_pairs_are_compared_at_last_pt_too_where_both_runs_have_its_evaluation(tmp_path):
    """Catches the last.pt comparison missing, or made from the best.pt evaluation: on the same 20 images the two
    runs are level at best.pt (12 robust each) and 6 against 2 at last.pt."""
    from clead.study.report import suite_rows, verdict

    ok = epochs((0.5, 0.3, False), (0.6, 0.35, False))
    dirs = {}
    for name, method, robust_best, robust_last in (("clead-a", "clead", 12, 6), ("pgd-at-a", "pgd-at", 12, 2)):
        d = dirs[name] = tmp_path / name
        fake_run(d, {"method": method, "train_attack": "fgsm-rs"}, robust_best / 20, 0.9, ok)
        for tag, robust in (("", robust_best), ("last", robust_last)):
            ev = {"per_attack": {"fgsm": robust / 20}, "robust_accuracy": robust / 20, "n": 20, "clean_accuracy": 1.0,
                  "eps": 0.1, "threat_model": "linf", "seed": 0, "checkpoint": "last" if tag else "best"}  # fmt: skip
            (d / f"eval{'-' + tag if tag else ''}.json").write_text(json.dumps(ev))
            rows = ["index,label,pred_clean,correct_clean,robust,broken_by,pred_adv,linf,l2"]
            rows += [f"{i},{i % 10},{i % 10},1,{int(i < robust)},-,{i % 10},0.1,1.0" for i in range(20)]
            (d / f"per_sample{'-' + tag if tag else ''}.csv").write_text("\n".join(rows) + "\n")
    write_suite_report(list(dirs.values()), tmp_path, "t", pairs=[("clead-a", "pgd-at-a")])
    md = (tmp_path / "report.md").read_text()
    said = verdict(suite_rows(list(dirs.values())), [("clead-a", "pgd-at-a")])
    assert "**Verdict: clead-a (clead) is level in robustness with pgd-at-a (pgd-at): robust +0.0 points" in said
    assert "**Verdict at last.pt: clead-a (clead) is more robust than pgd-at-a (pgd-at): robust +20.0 points" in said
    assert "worst case of the evaluation of last.pt" in said and said in md
    assert "Evaluation `eval-last.json` (last.pt):" in md


def test_a_verdict_over_seeds_that_all_gave_one_difference_takes_its_word_from_the_images(tmp_path):
    """Catches the verdict word taken from a t interval of no width: on 20 images both seeds of A are right on one
    image more than B's (+5 points each), so over seeds p = 0 by construction, while over images that one image is
    no evidence; a third seed of A that is right on eight more images makes the seeds differ and the verdict
    follow the interval over seeds again (+5, +5, +45: level)."""
    from clead.study.report import suite_rows, verdict

    ok = epochs((0.5, 0.3, False), (0.6, 0.35, False))

    def run(name, method, robust):
        d = tmp_path / name
        fake_run(d, {"method": method}, len(robust) / 20, 1.0, ok)
        ev = {"per_attack": {"fgsm": len(robust) / 20}, "robust_accuracy": len(robust) / 20, "n": 20,
              "clean_accuracy": 1.0, "eps": 0.1, "threat_model": "linf", "seed": 0}  # fmt: skip
        (d / "eval.json").write_text(json.dumps(ev))
        rows = ["index,label,pred_clean,correct_clean,robust,broken_by,pred_adv,linf,l2"]
        rows += [f"{i},{i % 10},{i % 10},1,{int(i in robust)},-,{i % 10},0.1,1.0" for i in range(20)]
        (d / "per_sample.csv").write_text("\n".join(rows) + "\n")
        return d

    dirs = [run(f"clead-a{s}", "clead", range(11)) for s in ("", "-seed1")]
    dirs += [run(f"pgd-at-a{s}", "pgd-at", range(10)) for s in ("", "-seed1")]
    said = verdict(suite_rows(dirs[::2]), [("clead-a", "pgd-at-a")])
    assert "**Verdict: clead-a (clead) is level in robustness with pgd-at-a (pgd-at): robust +5.0 points" in said
    assert "(the same for every seed, so no interval over seeds; over images 95% interval -4.8 to +14.8" in said
    run("clead-a-seed2", "clead", range(19))
    run("pgd-at-a-seed2", "pgd-at", range(10))
    said = verdict(suite_rows(dirs[::2]), [("clead-a", "pgd-at-a")])
    assert "**Verdict: clead-a (clead) is level in robustness with pgd-at-a (pgd-at): robust +18.3 points" in said
    assert "over seeds 0, 1, 2 (95% interval" in said and "the same for every seed" not in said


def test_pareto_keeps_the_points_no_cheaper_point_beats():
    pts = [(1.0, 75.0), (0.21, 66.2), (0.21, 69.4), (0.38, 75.2), (0.5, 70.0), (0.38, 74.0)]
    assert pareto(pts) == [(0.21, 69.4), (0.38, 75.2)]  # 66.2 and 74.0 at the same cost, 70.0 and 75.0 costlier
    assert pareto([(0.3, 60.0)]) == [(0.3, 60.0)] and pareto([]) == []


def test_point_labels_avoid_each_other_and_the_other_points():
    """Two runs at one cost and accuracy (labels stacked: the second goes below the first); a point just right of
    another (its label goes where it covers no marker); a lone point keeps the first place, right and above."""
    from clead.study.report import LABEL_PLACES, label_offsets

    same = label_offsets([(100.0, 100.0), (100.0, 100.0)], [30.0, 30.0])
    assert same == [LABEL_PLACES[0], LABEL_PLACES[1]]
    # a marker at (115, 108) sits inside the first place's box of the point at (100, 100): right-above is refused
    near = label_offsets([(100.0, 100.0), (115.0, 108.0)], [30.0, 30.0])
    assert near[0] != LABEL_PLACES[0] and near[1] == LABEL_PLACES[0]
    assert label_offsets([(0.0, 0.0)], [50.0]) == [LABEL_PLACES[0]]


def test_html_report_renders_bold_and_code_spans_and_escapes_the_rest():
    """Catches a warning shown as raw ``**WARNING ...**`` in report.html, or a run name with ``<`` let through
    unescaped."""
    from clead.study.report import _md_table_html

    md = "**WARNING: a<b failed** (`checks` in eval.json)\n\n| run | x |\n|---|---|\n| **c&d** | `1` |\n"
    assert _md_table_html(md) == (
        "<p><b>WARNING: a&lt;b failed</b> (<code>checks</code> in eval.json)</p>\n"
        "<table><tr><th>run</th><th>x</th></tr><tr><td><b>c&amp;d</b></td><td><code>1</code></td></tr></table>"
    )
