"""Paired comparison (clead compare) against McNemar cases worked out by hand."""

import json
import math

import pytest

from clead.cli import main
from clead.errors import CleadError
from clead.study.compare import compare, image_interval, mcnemar, mean_interval


def write_eval(d, clean, robust, labels=None, eps=0.1, attacks=("pgd20",), tag="", described=None, **recorded):
    """A run directory holding just what compare reads: eval[-TAG].json and per_sample[-TAG].csv."""
    d.mkdir(parents=True, exist_ok=True)
    n = len(clean)
    labels = labels or [i % 10 for i in range(n)]
    sfx = f"-{tag}" if tag else ""
    rows = ["index,label,pred_clean,correct_clean,robust,broken_by,pred_adv,linf,l2"]
    rows += [f"{i},{labels[i]},0,{int(c)},{int(r)},,0,0,0" for i, (c, r) in enumerate(zip(clean, robust))]
    (d / f"per_sample{sfx}.csv").write_text("\n".join(rows) + "\n")
    ev = {
        "n": n,
        "eps": eps,
        "threat_model": "linf",
        "per_attack": {a: 0.0 for a in attacks},
        "clean_accuracy": sum(clean) / n,
        "robust_accuracy": sum(robust) / n,
        **recorded,  # e.g. seed and checkpoint, as an evaluation records them
        **({"attacks": described} if described else {}),  # the attacks' descriptions (steps, restarts, ...)
    }
    (d / f"eval{sfx}.json").write_text(json.dumps(ev))
    return d


def outcomes(both, a_only, b_only, neither):
    a = [1] * both + [1] * a_only + [0] * b_only + [0] * neither
    b = [1] * both + [0] * a_only + [1] * b_only + [0] * neither
    return a, b


def test_exact_mcnemar_matches_the_binomial_sums_by_hand():
    # 7 discordant for A, 2 for B: two-sided p = 2 * P(X >= 7 | X ~ Bin(9, 1/2)) = 2 * (36 + 9 + 1) / 512
    r = mcnemar(7, 2, 100)
    assert r["p"] == pytest.approx(92 / 512)
    assert r["difference"] == pytest.approx(0.05)
    half = 1.959963984540054 * math.sqrt(9 - 25 / 100) / 100
    assert r["ci"] == pytest.approx([0.05 - half, 0.05 + half])
    # all 10 discordant images favour A: p = 2 / 2**10
    assert mcnemar(10, 0, 50)["p"] == pytest.approx(2 / 1024)
    # symmetric: p = 1; nothing discordant: p = 1 and a zero-width interval
    assert mcnemar(4, 4, 50)["p"] == pytest.approx(1.0)
    r = mcnemar(0, 0, 50)
    assert r["p"] == 1.0 and r["ci"] == [0.0, 0.0]


def test_compare_counts_discordant_images_per_outcome(tmp_path):
    ca, cb = outcomes(both=60, a_only=12, b_only=3, neither=25)
    ra, rb = outcomes(both=40, a_only=7, b_only=2, neither=51)
    a = write_eval(tmp_path / "a", ca, ra)
    b = write_eval(tmp_path / "b", cb, rb)
    (res,) = compare([a, b])
    assert (res["clean"]["n10"], res["clean"]["n01"]) == (12, 3)
    assert res["clean"]["a"] == pytest.approx(0.72) and res["clean"]["b"] == pytest.approx(0.63)
    assert res["clean"]["difference"] == pytest.approx(0.09)
    assert res["robust"]["p"] == pytest.approx(92 / 512)
    assert "seeds" not in res


@pytest.mark.parametrize(
    "change, message",
    [
        ({"eps": 0.2}, r"differently \(eps: 0.1 vs 0.2\)"),
        ({"attacks": ("pgd50", "cw")}, r"differently \(attacks:"),
        ({"labels": [1] * 10}, "different images"),
        # the same attack run with other settings, with another seed, or on another checkpoint
        ({"described": {"pgd50": "PGD(steps=50, restarts=1)"}}, r"attack settings: .*restarts=3.* vs .*restarts=1"),
        ({"seed": 9}, r"attack seed: 0 vs 9"),
        ({"checkpoint": "last"}, r"checkpoint: best vs last"),
    ],
)
def test_compare_refuses_runs_evaluated_differently(tmp_path, change, message):
    same = {"attacks": ("pgd50",), "described": {"pgd50": "PGD(steps=50, restarts=3)"}, "seed": 0, "checkpoint": "best"}
    a = write_eval(tmp_path / "a", [1] * 10, [1] * 10, **same)
    b = write_eval(tmp_path / "b", [1] * 10, [0] * 10, **{**same, **change})
    with pytest.raises(CleadError, match=message):
        compare([a, b])
    compare([a, write_eval(tmp_path / "c", [1] * 10, [0] * 10, **same)])  # evaluated alike: compared


def test_compare_refuses_a_different_number_of_images(tmp_path):
    a = write_eval(tmp_path / "a", [1] * 10, [1] * 10)
    b = write_eval(tmp_path / "b", [1] * 12, [0] * 12)
    with pytest.raises(CleadError, match="n: 10 vs 12"):
        compare([a, b])


def test_seed_groups_are_paired_seed_by_seed(tmp_path):
    # robust differences per seed: +5, +2, -1 points of 100 images
    diffs = {0: (5, 0), 1: (3, 1), 2: (1, 2)}
    for s, (a_only, b_only) in diffs.items():
        sfx = "" if s == 0 else f"-seed{s}"
        ra, rb = outcomes(both=50, a_only=a_only, b_only=b_only, neither=50 - a_only - b_only)
        write_eval(tmp_path / f"clead{sfx}", [1] * 100, ra)
        write_eval(tmp_path / f"pgd-at{sfx}", [1] * 100, rb)
    (tmp_path / "pgd-at-seed3").mkdir()  # not evaluated: ignored
    (res,) = compare([tmp_path / "clead", tmp_path / "pgd-at"])
    s = res["seeds"]
    assert s["seeds"] == [0, 1, 2]
    assert s["robust"]["per_seed"] == pytest.approx([0.05, 0.02, -0.01])
    mean, sd = 0.02, 0.03  # mean of 5, 2, -1 points; sample sd 3 points
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, df 2)
    assert s["robust"]["mean"] == pytest.approx(mean)
    assert s["robust"]["ci"] == pytest.approx([mean - half, mean + half])
    # t = 2 / (3 / sqrt 3) = 1.1547 on 2 degrees of freedom: p = 1 - 1.1547 / sqrt(2 + 1.1547**2) (t with 2 df)
    tval = 2 / (3 / math.sqrt(3))
    assert s["robust"]["p"] == pytest.approx(1 - tval / math.sqrt(2 + tval**2))
    # over images: images 50..54 favour A at seed 0, 50..52 at seed 1 and 50 at seed 2; B wins 53 at seed 1 and
    # 51, 52 at seed 2. Per-image mean differences: 50: 3/3, 51: (1 + 1 - 1)/3, 52: 1/3, 53: (1 - 1)/3 = 0, 54: 1/3
    d = [0.0] * 100
    d[50], d[51], d[52], d[54] = 1.0, 1 / 3, 1 / 3, 1 / 3
    m = sum(d) / 100
    se = math.sqrt(sum((x - m) ** 2 for x in d) / 99) / 10
    im = s["robust"]["images"]
    assert im["mean"] == pytest.approx(mean) and m == pytest.approx(mean)
    assert im["ci"] == pytest.approx([m - 1.959963984540054 * se, m + 1.959963984540054 * se])
    assert im["p"] == pytest.approx(math.erfc(m / se / math.sqrt(2)))
    assert s["clean"]["per_seed"] == [0.0, 0.0, 0.0]
    assert s["clean"]["p"] == 1.0 and s["clean"]["images"]["p"] == 1.0


def test_image_interval_of_one_seed_is_the_mcnemar_interval_up_to_n_over_n_minus_1():
    n10, n01, n = 7, 2, 100
    r = image_interval([1.0] * n10 + [-1.0] * n01 + [0.0] * (n - n10 - n01))
    w = mcnemar(n10, n01, n)
    assert r["mean"] == pytest.approx(w["difference"])
    assert (r["ci"][1] - r["mean"]) == pytest.approx((w["ci"][1] - w["difference"]) * math.sqrt(n / (n - 1)))


def test_seeds_evaluated_with_other_attacks_are_named(tmp_path):
    from clead.study.compare import markdown

    for sfx, attacks in (("", ("pgd20", "autoattack")), ("-seed1", ("pgd20", "apgd"))):
        ra, rb = outcomes(both=50, a_only=3, b_only=1, neither=46)
        write_eval(tmp_path / f"clead{sfx}", [1] * 100, ra, attacks=attacks)
        write_eval(tmp_path / f"pgd-at{sfx}", [1] * 100, rb, attacks=attacks)
    text = markdown(compare([tmp_path / "clead", tmp_path / "pgd-at"]))
    assert "different attacks at different seeds (seed 0: autoattack, pgd20; seed 1: apgd, pgd20)" in text


def test_seed_runs_left_out_of_the_pairing_are_named(tmp_path):
    from clead.study.compare import markdown

    ra, rb = outcomes(both=50, a_only=3, b_only=1, neither=46)
    for sfx in ("", "-seed1"):
        write_eval(tmp_path / f"clead{sfx}", [1] * 100, ra)
        write_eval(tmp_path / f"pgd-at{sfx}", [1] * 100, rb)
    write_eval(tmp_path / "pgd-at-seed2", [1] * 100, rb)  # clead has no seed 2
    (tmp_path / "clead-seed2").mkdir()  # training: no evaluation yet
    (tmp_path / "clead-seed2" / "config.yaml").write_text("seed: 2\n")
    (tmp_path / "clead-seedling").mkdir()  # not a seed run of clead
    (res,) = compare([tmp_path / "clead", tmp_path / "pgd-at"])
    assert res["seeds"]["seeds"] == [0, 1]
    assert res["left out"] == {"not evaluated": ["clead-seed2"], "no partner": ["pgd-at-seed2"]}
    text = markdown([res])
    assert (
        "Seed runs left out: clead-seed2 (on disk, not evaluated yet); "
        "pgd-at-seed2 (evaluated, but the other model has no run of that seed)." in text
    )
    (full,) = compare([tmp_path / "clead", tmp_path / "pgd-at"], seeds=False)
    assert "left out" not in full and "Seed runs left out" not in markdown([full])


def test_a_seed_evaluation_that_failed_a_sanity_check_is_named_under_the_comparison(tmp_path):
    """Catches a difference resting on a masked evaluation (a failed check) printed with nothing said, also when
    the failure is in a seed run rather than in the two runs named; passed and not-run checks say nothing."""
    from clead.study.compare import markdown

    sound = [{"name": "large_eps", "passed": True}, {"name": "black_box_not_stronger", "passed": None}]
    masked = [{"name": "large_eps", "passed": True}, {"name": "more_steps_and_restarts", "passed": False}]
    ra, rb = outcomes(both=50, a_only=3, b_only=1, neither=46)
    for sfx, checks in (("", sound), ("-seed1", masked)):
        write_eval(tmp_path / f"clead{sfx}", [1] * 100, ra, checks=checks)
        write_eval(tmp_path / f"pgd-at{sfx}", [1] * 100, rb, checks=sound)
    text = markdown(compare([tmp_path / "clead", tmp_path / "pgd-at"]))
    assert "WARNING: evaluations that failed sanity checks: clead-seed1 (more_steps_and_restarts)." in text
    assert "WARNING" not in markdown(compare([tmp_path / "clead", tmp_path / "pgd-at"], seeds=False))


def write_threats(d, clean, robust_by_threat, eps=None):
    """A run directory holding just a threat matrix: eval-threats.json and per_sample-threats.csv."""
    d.mkdir(parents=True, exist_ok=True)
    n = len(clean)
    names = list(robust_by_threat)
    rows = ["index,label,correct_clean," + ",".join(names)]
    rows += [
        f"{i},{i % 10},{int(clean[i])}," + ",".join(str(int(robust_by_threat[t][i])) for t in names) for i in range(n)
    ]
    (d / "per_sample-threats.csv").write_text("\n".join(rows) + "\n")
    eps = eps or {"l2": 0.667, "l1": 3.33}
    threats = [
        {
            "threat": t,
            "norm": t,
            "eps": eps[t],
            "attack": f"apgd {t}",
            "clean": sum(clean) / n,
            "robust": sum(robust_by_threat[t]) / n,
            "n": n,
        }
        for t in names
    ]
    (d / "eval-threats.json").write_text(json.dumps({"run": d.name, "threats": threats}))
    return d


def test_compare_pairs_one_threat_of_two_threat_matrices(tmp_path, capsys):
    ra, rb = outcomes(both=30, a_only=7, b_only=2, neither=61)
    la, lb = outcomes(both=20, a_only=1, b_only=4, neither=75)
    a = write_threats(tmp_path / "a", [1] * 100, {"l2": ra, "l1": la})
    b = write_threats(tmp_path / "b", [1] * 100, {"l2": rb, "l1": lb})
    (res,) = compare([a, b], threat="l2")
    assert (res["robust"]["n10"], res["robust"]["n01"]) == (7, 2) and res["robust"]["p"] == pytest.approx(92 / 512)
    assert res["eps"] == 0.667 and res["threat model"] == "l2"
    (res,) = compare([a, b], threat="l1")
    assert (res["robust"]["n10"], res["robust"]["n01"]) == (1, 4)
    with pytest.raises(CleadError, match="has no 'linf' threat; it has l2, l1"):
        compare([a, b], threat="linf")
    c = write_threats(tmp_path / "c", [1] * 100, {"l2": rb}, eps={"l2": 1.5})
    with pytest.raises(CleadError, match=r"differently \(eps: 0.667 vs 1.5\)"):
        compare([a, c], threat="l2")
    (tmp_path / "c" / "per_sample-threats.csv").unlink()
    with pytest.raises(CleadError, match="need a rerun"):
        compare([a, c], threat="l2")
    assert main(["compare", str(a), str(b), "--threat", "l2", "--tag", "full"]) == 2
    assert main(["compare", str(a), str(b), "--threat", "l2"]) == 0
    assert "| a | b | robust | 37.0 | 32.0 | +5.0 |" in capsys.readouterr().out


def test_mean_interval_of_one_value_has_no_interval():
    assert mean_interval([0.1]) == {"k": 1, "mean": 0.1, "ci": None, "p": None}
    assert mean_interval([0.02, 0.02])["p"] == 0.0  # no spread and a non-zero mean


def test_seeds_that_all_give_the_same_difference_are_said_to_have_no_spread(tmp_path):
    """Catches p = 0 over seeds from two identical per-seed differences printed as if it were evidence."""
    from clead.study.compare import markdown

    ra, rb = outcomes(both=50, a_only=3, b_only=1, neither=46)
    for sfx in ("", "-seed1"):
        write_eval(tmp_path / f"clead{sfx}", [1] * 100, ra)
        write_eval(tmp_path / f"pgd-at{sfx}", [1] * 100, rb)
    text = markdown(compare([tmp_path / "clead", tmp_path / "pgd-at"]))
    assert "Every seed gave the same difference (clead − pgd-at robust): with no spread" in text
    assert "clean" not in text.split("Every seed gave the same difference")[1].split(")")[0]  # +0.0 each: no note
    rb1 = list(rb)
    rb1[50] = 1  # one image of A's own now right under B too: seed 1 differs by +1 point, seed 0 by +2
    write_eval(tmp_path / "pgd-at-seed1", [1] * 100, rb1)
    assert "Every seed gave" not in markdown(compare([tmp_path / "clead", tmp_path / "pgd-at"]))


def test_cli_writes_markdown_and_json(tmp_path, capsys):
    ca, cb = outcomes(both=60, a_only=12, b_only=3, neither=25)
    a = write_eval(tmp_path / "a", ca, ca, tag="full")
    b = write_eval(tmp_path / "b", cb, cb, tag="full")
    rc = main(
        [
            "compare",
            str(a),
            str(b),
            "--tag",
            "full",
            "--out",
            str(tmp_path / "c.md"),
            "--json",
            str(tmp_path / "c.json"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "| a | b | clean | 72.0 | 63.0 | +9.0 |" in out
    assert json.loads((tmp_path / "c.json").read_text())[0]["clean"]["n10"] == 12
    assert main(["compare", str(a)]) == 2
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2


def test_suite_verdict_states_the_paired_comparison_with_the_best_baseline(tmp_path):
    """Catches a verdict against the wrong baseline (not the most robust one), with the sign flipped, or
    with numbers other than `clead compare`'s: worked out by hand below."""
    from clead.study.report import verdict

    clean = [1] * 100
    c = write_eval(tmp_path / "clead", clean, [1] * 60 + [0] * 40)
    weak = write_eval(tmp_path / "trades", clean, [1] * 30 + [0] * 70)
    best = write_eval(tmp_path / "pgd-at", clean, [1] * 50 + [0] * 50)  # C-LEAD's 60 include these 50
    rows = [{"run": d.name, "method": d.name, "seed": 0, "worst": (w, 100), "dir": d}
            for d, w in ((c, 0.6), (weak, 0.3), (best, 0.5))]  # fmt: skip
    said = verdict(rows)
    # 10 images only C-LEAD gets right, none only PGD-AT: +10 points, exact McNemar p = 2 * 0.5**10
    assert said.startswith("**Verdict: C-LEAD is more robust than pgd-at (pgd-at)")
    assert "robust +10.0 points" in said and f"p = {2 * 0.5**10:.2g}" in said and "clean +0.0 points" in said
    assert verdict(rows[:1]) == ""  # no baseline, no verdict
    # named pairs instead: TRADES (first 30 right) against PGD-AT (first 50): 20 images only PGD-AT gets right
    said = verdict(rows, pairs=[("trades", "pgd-at"), ("clead", "missing")])  # a pair not in the report is left out
    assert said.startswith("**Verdict: trades (trades) is less robust than pgd-at (pgd-at): robust -20.0 points")
    # p = 2 * 0.5**20 < 0.001: said as clead compare prints it
    assert "McNemar p < 0.001" in said and "(trades minus pgd-at," in said and said.count("Verdict") == 1
    two = verdict(rows, pairs=[("trades", "pgd-at"), ("clead", "trades")])
    assert two.count("**Verdict:") == 2 and "clead (clead) is more robust than trades (trades): robust +30.0" in two
    assert "sanity check" not in two
    write_eval(tmp_path / "trades", clean, [1] * 30 + [0] * 70, checks=[{"name": "large_eps", "passed": False}])
    said = verdict(rows, pairs=[("clead", "trades")])
    assert said.endswith("**A sanity check failed for trades (large_eps): its robust outcomes, and this difference, "
                         "may be inflated by gradient masking.**\n")  # fmt: skip


def test_truncated_evaluation_files_are_one_line_naming_the_file(tmp_path):
    """Catches a KeyError or JSONDecodeError traceback from a per_sample.csv or eval.json cut short."""
    a = write_eval(tmp_path / "a", [1] * 10, [1] * 10)
    b = write_eval(tmp_path / "b", [1] * 10, [0] * 10)
    text = (b / "per_sample.csv").read_text()
    (b / "per_sample.csv").write_text(text[: len(text) - 12])  # the last row loses its last fields
    with pytest.raises(CleadError, match=r"per_sample.csv is truncated or corrupt \(9 complete rows for n = 10\)"):
        compare([a, b])
    (b / "per_sample.csv").write_text(text)
    (b / "eval.json").write_text((b / "eval.json").read_text()[:20])
    with pytest.raises(CleadError, match=r"eval.json is unreadable"):
        compare([a, b])
