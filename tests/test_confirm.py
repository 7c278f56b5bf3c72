"""Seed confirmation: the statistics, a tiny search with ``confirm:`` end to end on real Ray,
``fashion-tune confirm`` resuming without training twice, its bad inputs, and the report."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_cli, tiny_overrides

from fashion_tune.report.collect import TrialRecord
from fashion_tune.report.confirm import (
    KEY_CONFIG,
    KEY_REPLICA,
    mean_ci,
    summarize,
    welch_one_sided,
)
from tests.cli_helpers import assert_one_error, run_main

# -- statistics on known numbers -------------------------------------------------------------


def test_mean_ci_matches_the_t_interval_by_hand() -> None:
    s = mean_ci([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, sd sqrt(5/3), t(0.975, 3) = 3.182446305284263
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert s.n == 4 and s.mean == 2.5 and s.sd == pytest.approx(math.sqrt(5 / 3))
    assert (s.low, s.high) == (pytest.approx(2.5 - half), pytest.approx(2.5 + half))
    one = mean_ci([7.0])
    assert one.mean == 7.0 and one.low is None and one.high is None


def test_welch_matches_scipy_and_the_direction_of_the_objective() -> None:
    from scipy import stats

    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]
    w = welch_one_sided(a, b, "min")  # a lower = better
    ref = stats.ttest_ind(a, b, equal_var=False, alternative="less")
    assert w.diff == pytest.approx(3.5) and w.p == pytest.approx(ref.pvalue)
    # Welch-Satterthwaite df by hand: (1/3 + 5/12)^2 / ((1/3)^2/2 + (5/12)^2/3)
    assert w.df == pytest.approx((1 / 3 + 5 / 12) ** 2 / ((1 / 3) ** 2 / 2 + (5 / 12) ** 2 / 3))
    worse = welch_one_sided(a, b, "max")  # a lower = worse when higher is better
    assert worse.diff == pytest.approx(-3.5) and worse.p == pytest.approx(1 - ref.pvalue)


def _trial(ci: int, ri: int, values: list[float], diverged: bool = False) -> TrialRecord:
    rows = [{"kimg": 1.0 * (i + 1), "fd": v} for i, v in enumerate(values)]
    if diverged:
        rows[-1]["diverged"] = 1
    rec = TrialRecord(f"t{ci}{ri}", f"trial_t{ci}{ri}", "TERMINATED", rows=rows)
    rec.params = {KEY_CONFIG: ci, KEY_REPLICA: ri}
    return rec


def _plan(n_seeds: int, default: bool = True) -> dict[str, Any]:
    configs = [
        {"label": "search #1", "source": "trial_a", "search_rank": 1, "default": False},
        {"label": "search #2", "source": "trial_b", "search_rank": 2, "default": False},
    ]
    if default:
        configs.append({"label": "literature default", "source": None, "default": True})
    return {
        "metric": "fd", "mode": "min", "max_kimg": 2.0, "top_k": 2,
        "seeds": list(range(100, 100 + n_seeds)), "configs": configs,
    }  # fmt: skip


def test_summary_ranks_by_mean_counts_divergence_and_says_the_verdict() -> None:
    trials = [
        # search #1: final values 20, 22, 21 -> clearly better than the default (30, 31, 29)
        _trial(0, 0, [50, 20]), _trial(0, 1, [50, 22]), _trial(0, 2, [50, 21]),
        # search #2: one seed diverged, one never finished (kimg 1 of 2), one value
        _trial(1, 0, [40, 25], diverged=True), _trial(1, 1, [40]), _trial(1, 2, [40, 24]),
        _trial(2, 0, [60, 30]), _trial(2, 1, [60, 31]), _trial(2, 2, [60, 29]),
    ]  # fmt: skip
    conf = summarize(_plan(3), trials, "results/x")
    labels = [c.label for c in conf.configs]
    assert labels == ["search #1", "search #2", "literature default"]  # by mean: 21, 24, 30
    first, second, _ = conf.configs
    assert [v.value for v in first.seeds] == [20, 22, 21] and first.stats.mean == 21  # type: ignore[union-attr]
    assert [v.status for v in second.seeds] == ["diverged", "running", "ok"]
    assert second.failed == 1 and second.values == [24] and second.stats.low is None  # type: ignore[union-attr]
    assert conf.missing == 1
    assert conf.test is not None and conf.test.p < 0.05
    assert conf.verdict.startswith("#1 by mean (search #1) beats the literature default")
    assert "difference 9" in conf.verdict and "p = " in conf.verdict


def test_the_verdict_pairs_seeds_and_sees_what_welch_misses() -> None:
    """Seed j moves both configs alike (20/30/40 vs 21/31.2/40.9): paired, #1 is better on
    every seed; Welch's unpaired test sees only the spread between seeds."""
    from scipy import stats

    best, default = [20.0, 30.0, 40.0], [21.0, 31.2, 40.9]
    trials = [_trial(0, j, [50, v]) for j, v in enumerate(best)]
    trials += [_trial(2, j, [50, v]) for j, v in enumerate(default)]
    conf = summarize(_plan(3), trials, "x")
    assert conf.test is not None and conf.test.kind == "paired t" and conf.test.pairs == 3
    expected = stats.ttest_rel(default, best, alternative="greater")
    assert conf.test.p == pytest.approx(expected.pvalue)
    assert conf.test.t == pytest.approx(expected.statistic)
    assert conf.test.p < 0.05 and "beats the literature default beyond seed noise" in conf.verdict
    assert "one-sided paired t p = " in conf.verdict and "3 paired seeds" in conf.verdict
    assert welch_one_sided(best, default, "min").p > 0.3  # unpaired: lost in the seed spread


def test_verdict_sentences_for_noise_too_few_seeds_default_first_and_no_default() -> None:
    close = [
        _trial(0, 0, [0, 20]), _trial(0, 1, [0, 30]),
        _trial(2, 0, [0, 21]), _trial(2, 1, [0, 29.5]),
    ]  # fmt: skip
    conf = summarize(_plan(2), close, "x")
    assert "does not beat the literature default beyond seed noise" in conf.verdict
    assert conf.test is not None and conf.test.p >= 0.05

    few = [_trial(0, 0, [0, 20]), _trial(2, 0, [0, 30]), _trial(2, 1, [0, 31])]
    conf = summarize(_plan(2), few, "x")
    assert conf.verdict.startswith("Cannot tell yet whether #1 by mean (search #1)")
    assert conf.missing == 3  # search #1's second seed and both of search #2's

    default_best = [_trial(0, 0, [0, 25]), _trial(0, 1, [0, 26]), _trial(2, 0, [0, 20])]
    conf = summarize(_plan(2), default_best, "x")
    assert conf.verdict.startswith("The literature default is #1 by mean")

    conf = summarize(_plan(2, default=False), close[:2], "x")
    assert "no literature default" in conf.verdict

    assert summarize(_plan(2), [], "x").verdict.startswith("No confirmation run has finished")


# -- end to end: a tiny search with confirm:, then `fashion-tune confirm` --------------------

TINY = {**tiny_overrides(Path()), "model.arch": "dcgan", "schedule.total_kimg": 0.064}
del TINY["data.path"]
DEFAULT = {"optim.lr_g": 2.0e-4}


@pytest.fixture(scope="module")
def confirmed(tmp_path_factory: pytest.TempPathFactory, fmnist_small: Path) -> Path:
    """A 2-trial FIFO search whose space confirms its top 2 with 2 seeds (4 more trials)."""
    tmp = tmp_path_factory.mktemp("confirm")
    space = {
        "name": "conf",
        "fixed": TINY,
        "params": {"optim.lr_g": {"loguniform": [1.0e-4, 2.0e-3]}},
        "points": [DEFAULT],
        "scheduler": {"type": "fifo"},
        "confirm": {"top_k": 2, "seeds": 2},
        "num_samples": 2,
        "max_concurrent": 2,
        "resources": {"cpu": 1, "gpu": 0},
    }
    path = tmp / "conf.yaml"
    path.write_text(yaml.safe_dump(space))
    proc = run_cli(
        "search", str(path), "--data", str(fmnist_small), "--storage", str(tmp / "results"),
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp / "results" / "conf"


def _trials(folder: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for d in sorted(folder.glob("trial_*")):
        rows = [json.loads(x) for x in (d / "result.json").read_text().splitlines()]
        out[d.name] = {
            "params": json.loads((d / "params.json").read_text()),
            "config": json.loads((d / "config.json").read_text()),
            "rows": rows,
        }
    return out


def test_search_with_confirm_retrains_the_top_k_with_fresh_seeds(confirmed: Path) -> None:
    plan = json.loads((confirmed / "confirm" / "fashion_tune_confirm.json").read_text())
    search = _trials(confirmed)
    assert len(search) == 2 and len(plan["configs"]) == 2  # both; the default is one of them
    assert sum(c["default"] for c in plan["configs"]) == 1
    assert {c["source"] for c in plan["configs"]} == set(search)
    used = {t["config"]["runtime"]["seed"] for t in search.values()}
    assert len(plan["seeds"]) == 2 and not used & set(plan["seeds"])

    runs = _trials(confirmed / "confirm")
    assert len(runs) == 4
    slots = set()
    for run in runs.values():
        ci, ri = run["params"]["confirm.config"], run["params"]["confirm.replica"]
        slots.add((ci, ri))
        source = search[plan["configs"][ci]["source"]]
        assert run["config"]["runtime"]["seed"] == plan["seeds"][ri]
        assert run["config"]["optim"] == source["config"]["optim"]  # the same config
        assert run["rows"][-1]["kimg"] == pytest.approx(plan["max_kimg"])  # the full budget
        assert run["rows"][-1]["fd"] != source["rows"][-1]["fd"]  # another seed, another run
    assert slots == {(c, r) for c in range(2) for r in range(2)}
    assert len(list((confirmed / "confirm" / "fashion_tune_finished").glob("*.json"))) == 4


def test_confirm_again_trains_nothing_and_other_counts_are_refused(
    confirmed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p: p.stat().st_mtime_ns for p in (confirmed / "confirm").glob("trial_*/result.json")}
    proc = run_cli("confirm", confirmed.name, cwd=confirmed.parent, timeout=300)  # relative
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = {p: p.stat().st_mtime_ns for p in (confirmed / "confirm").glob("trial_*/result.json")}
    assert after == before  # nothing trained, nothing replayed
    said = " ".join(proc.stdout.split())
    assert "2 configs x 2 seeds = 4 trials" in said and "literature default" in said
    assert "beyond seed noise" in said or "literature default is #1" in said

    r = run_main(capsys, "confirm", str(confirmed), "--seeds", "5")
    assert_one_error(r, "already holds a confirmation with top-k 2 and 2 seeds", "move that")


def test_report_shows_the_confirmation(confirmed: Path, tmp_path: Path) -> None:
    from fashion_tune.report import build_report

    report = build_report(str(confirmed), tmp_path / "rep", top_k=1)
    conf = report.confirm
    assert conf is not None and conf.present and conf.missing == 0
    html = (tmp_path / "rep" / "index.html").read_text()
    md = (tmp_path / "rep" / "report.md").read_text()
    for c in conf.configs:
        assert c.stats is not None and c.stats.low is not None
        for v in c.seeds:
            assert f"{v.value:.4g}" in html and f"{v.value:.4g}" in md
        assert f"[{c.stats.low:.4g}, {c.stats.high:.4g}]" in html
    assert "Seed confirmation" in html and "95% interval" in html
    verdict = conf.verdict.split(":")[0]
    assert verdict in html.replace("&#39;", "'") and "## Seed confirmation" in md
    doc = json.loads((tmp_path / "rep" / "leaderboard.json").read_text())
    assert len(doc["confirmation"]["configs"]) == 2


# -- bad input: one error line, nothing written ----------------------------------------------


def test_bad_inputs_are_one_error_line(
    confirmed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = run_main(capsys, "confirm", str(tmp_path / "nope"))
    assert_one_error(r, "does not exist")
    (tmp_path / "empty").mkdir()
    r = run_main(capsys, "confirm", str(tmp_path / "empty"))
    assert_one_error(r, "is not a Ray Tune experiment")

    copy = tmp_path / "copy"
    shutil.copytree(confirmed, copy, ignore=shutil.ignore_patterns("confirm"))
    for k, s, frag in (("0", "2", "--top-k"), ("101", "2", "--top-k"), ("2", "1", "--seeds")):
        r = run_main(capsys, "confirm", str(copy), "--top-k", k, "--seeds", s)
        assert_one_error(r, frag)
    r = run_main(capsys, "confirm", str(copy), "--max-failures", "-1")
    assert_one_error(r, "max-failures")

    (copy / "fashion_tune_search.json").rename(copy / "moved.json")
    r = run_main(capsys, "confirm", str(copy))
    assert_one_error(r, "not a fashion-tune search")
    (copy / "moved.json").rename(copy / "fashion_tune_search.json")

    state = sorted(copy.glob("experiment_state-*.json"))[-1]
    doc = json.loads(state.read_text())
    meta = json.loads(doc["trial_data"][0][0])
    meta["status"] = "RUNNING"
    doc["trial_data"][0][0] = json.dumps(meta)
    state.write_text(json.dumps(doc))
    r = run_main(capsys, "confirm", str(copy))
    assert_one_error(r, "has not finished", "--resume")

    meta["status"] = "TERMINATED"
    doc["trial_data"][0][0] = json.dumps(meta)
    state.write_text(json.dumps(doc))
    for d in copy.glob("trial_*"):  # no trial reached the full budget
        (d / "result.json").write_text(json.dumps({"kimg": 0.0, "fd": 1.0}) + "\n")
    r = run_main(capsys, "confirm", str(copy))
    assert_one_error(r, "no trial", "reached the full budget")
    assert not (copy / "confirm").exists()
