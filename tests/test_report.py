"""``fashion-tune report`` on a real tiny experiment, on broken copies of it, and on bad input."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_one_line_error, run_cli


# -- helpers: read the experiment the way a test can trust, and break copies of it ----------
def result_rows(trial_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in (trial_dir / "result.json").read_text().splitlines()]


def best_fd(rows: list[dict[str, Any]]) -> float:
    return min(r["fd"] for r in rows if math.isfinite(r["fd"]))


def trial_dirs(exp: Path) -> list[Path]:
    return sorted(p for p in exp.glob("trial_*") if (p / "result.json").exists())


def copy_experiment(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_state(exp: Path, trial_id: str, **fields: Any) -> None:
    """Change one trial's JSON fields in Ray's newest experiment_state-*.json."""
    path = sorted(exp.glob("experiment_state-*.json"))[-1]
    doc = json.loads(path.read_text())
    for pair in doc["trial_data"]:
        meta = json.loads(pair[0])
        if meta["trial_id"] == trial_id:
            meta.update(fields)
            pair[0] = json.dumps(meta)
    path.write_text(json.dumps(doc))


@pytest.fixture(scope="module")
def tiny_report(tiny_experiment: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "out"
    proc = run_cli("report", str(tiny_experiment), "--out", str(out), "--top-k", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return out


# -- a real report ---------------------------------------------------------------------------
def test_report_ranks_by_best_value_over_all_ticks(tiny_report: Path, tiny_experiment: Path):
    for name in ("index.html", "report.md", "leaderboard.csv", "leaderboard.json"):
        assert (tiny_report / name).stat().st_size > 0, name
    for name in ("metric-vs-kimg.png", "pareto.png", "asha.png"):
        assert (tiny_report / "images" / name).exists(), name
    expected = {p.name.removeprefix("trial_"): result_rows(p) for p in trial_dirs(tiny_experiment)}
    order = sorted(expected, key=lambda t: best_fd(expected[t]))
    doc = json.loads((tiny_report / "leaderboard.json").read_text())
    trials = doc["trials"]
    assert [t["trial_id"] for t in trials] == order
    assert [t["rank"] for t in trials] == list(range(1, len(order) + 1))
    for t in trials:
        rows = expected[t["trial_id"]]
        assert t["best"] == best_fd(rows)
        assert t["last"] == rows[-1]["fd"]
        assert t["kimg"] == max(r["kimg"] for r in rows)
        best_row = next(r for r in rows if r["fd"] == t["best"])
        assert t["best_kimg"] == best_row["kimg"]
        assert t["sym_excess_at_best"] == best_row["sym_excess"]
        assert t["recall_at_best"] == best_row["recall"]
        assert "sym_gap_at_best" not in t  # superseded by sym_excess where both exist
    with open(tiny_report / "leaderboard.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["trial_id"] for r in table] == order
    for r, t in zip(table, trials):
        assert float(r["best"]) == t["best"] and float(r["last"]) == t["last"]
    # the ASHA summary counts what result.json says
    budget = doc["asha"]["max_kimg"]
    reached = [max(r["kimg"] for r in rows) for rows in expected.values()]
    assert doc["asha"]["used_kimg"] == pytest.approx(sum(reached))
    assert doc["asha"]["full_kimg"] == pytest.approx(len(reached) * budget)
    assert doc["asha"]["finished"] == sum(k >= budget - 1e-6 for k in reached)
    stopped = sum(r["stopped"] for r in doc["asha"]["rungs"])
    assert stopped == sum(k < budget - 1e-6 for k in reached)
    # promotion ASHA in compute units: its promotions, the compute saved, Optuna's states
    asha = doc["asha"]
    assert asha["unit"] == "compute" and sum(asha["promotions"].values()) > 0
    computes = [max(r["compute"] for r in rows) for rows in expected.values()]
    assert asha["used"] == pytest.approx(sum(computes))
    assert 0 < asha["savings"] < 1
    assert asha["optuna_states"]["PRUNED"] == stopped
    assert sum(asha["optuna_states"].values()) == len(expected)
    html = (tiny_report / "index.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing from the network
    assert "total_kimg" in html  # each top trial's full config is in the page
    assert "promoted" in html and "compute units" in html


def test_ranking_ignores_the_last_report(tiny_experiment: Path, tmp_path: Path):
    """A trial whose early tick was the best of all ranks first, whatever its last value."""
    from fashion_tune.report import load_experiment
    from fashion_tune.report.rank import leaderboard

    exp = copy_experiment(tiny_experiment, tmp_path / "exp")
    longer = [p for p in trial_dirs(exp) if len(result_rows(p)) > 1]
    worst = max(longer, key=lambda p: best_fd(result_rows(p)))
    rows = result_rows(worst)
    rows[0]["fd"] = -5.0  # its first tick now beats everything; its last row is unchanged
    (worst / "result.json").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    entries = leaderboard(load_experiment(str(exp)), "fd", "min")
    assert entries[0].name == worst.name and entries[0].best == -5.0
    assert entries[0].last == rows[-1]["fd"] != -5.0


def test_exported_checkpoint_works_with_sample(tiny_report: Path, tmp_path: Path):
    exports = sorted((tiny_report / "checkpoints").iterdir())
    assert [p.name.split("-")[0] for p in exports] == ["1", "2", "3"]
    for p in exports:
        assert {"checkpoint.pt", "config.json", "trial.json"} <= {f.name for f in p.iterdir()}
    html = (tiny_report / "index.html").read_text()
    assert f"fashion-tune sample {exports[0]}" in html
    png = tmp_path / "x.png"
    proc = run_cli("sample", str(exports[0]), "--out", str(png), "--n", "16")
    assert proc.returncode == 0, proc.stderr
    assert png.stat().st_size > 0


def test_importance_handles_conditional_params(tiny_experiment: Path):
    from fashion_tune.report import load_experiment
    from fashion_tune.report.importance import compute
    from fashion_tune.report.rank import leaderboard

    exp = load_experiment(str(tiny_experiment))
    entries = leaderboard(exp, "fd", "min")
    imp = compute(exp, entries, "min")
    searched = {p["key"] for p in exp.search["params"]}  # type: ignore[index]
    assert imp.n_trials == len(entries)
    assert set(imp.values) | set(imp.left_out) <= searched
    assert imp.values or imp.message
    few = compute(exp, entries[:2], "min")
    assert few.values == {} and few.message and "not enough trials" in few.message


# -- broken experiments and bad input ---------------------------------------------------------
def test_errored_trial_and_missing_checkpoint(tiny_experiment: Path, tmp_path: Path):
    exp = copy_experiment(tiny_experiment, tmp_path / "exp")
    dirs = sorted(trial_dirs(exp), key=lambda p: best_fd(result_rows(p)))
    best, broken = dirs[0], dirs[-1]
    for p in best.glob("checkpoint_*"):  # the #1 trial lost its checkpoints
        shutil.rmtree(p)
    for name in ("result.json", "progress.csv", "metrics.jsonl"):  # another one errored early
        (broken / name).unlink()
    for p in broken.glob("checkpoint_*"):
        shutil.rmtree(p)
    (broken / "error.txt").write_text("\x1b[31mRuntimeError: boom <b>bold</b>\x1b[0m\n")
    edit_state(exp, broken.name.removeprefix("trial_"), status="ERROR")
    out = tmp_path / "out"
    proc = run_cli("report", str(exp), "--out", str(out), "--top-k", "2")
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]
    assert any(best.name in w and "no checkpoint" in w for w in warnings), proc.stderr
    assert any(broken.name in w and "no results" in w for w in warnings), proc.stderr
    doc = json.loads((out / "leaderboard.json").read_text())
    by_name = {t["trial"]: t for t in doc["trials"]}
    assert by_name[best.name]["rank"] == 1 and by_name[best.name]["exported_checkpoint"] is None
    assert by_name[broken.name]["outcome"] == "errored" and by_name[broken.name]["rank"] is None
    assert by_name[broken.name]["error"] == "RuntimeError: boom <b>bold</b>"  # ANSI stripped
    html = (out / "index.html").read_text()
    assert "RuntimeError: boom &lt;b&gt;bold&lt;/b&gt;" in html and "\x1b" not in html
    assert "No exported checkpoint" in html
    assert len(list((out / "checkpoints").iterdir())) == 1  # #2 was exported


def test_foreign_experiment_without_our_files(tiny_experiment: Path, tmp_path: Path):
    """No fashion_tune_search.json and no Ray state: rank from the trial folders alone."""
    from fashion_tune.report import ReportError, build_report

    exp = copy_experiment(tiny_experiment, tmp_path / "exp")
    (exp / "fashion_tune_search.json").unlink()
    for p in exp.glob("experiment_state-*.json"):
        p.unlink()
    report = build_report(str(exp), tmp_path / "out", top_k=1)
    assert len(report.entries) == len(trial_dirs(exp))
    assert report.metric == "fd" and report.entries[0].rank == 1
    assert any("fashion_tune_search.json" in w for w in report.warnings)
    assert (tmp_path / "out" / "index.html").exists()
    build_report(str(exp), tmp_path / "out", top_k=1)  # a report folder may be rewritten
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ReportError, match="non-empty folder"):  # any other folder is not
        build_report(str(exp), tmp_path / "mine", top_k=1)


def test_not_an_experiment(tmp_path: Path):
    (tmp_path / "notes.txt").write_text("hello")
    assert_one_line_error(run_cli("report", str(tmp_path)), "not a Ray Tune experiment")
    assert_one_line_error(run_cli("report", str(tmp_path / "nope")), "does not exist")


def test_unknown_metric(tiny_experiment: Path, tmp_path: Path):
    proc = run_cli("report", str(tiny_experiment), "--metric", "fid50k", "--out", str(tmp_path))
    assert_one_line_error(proc, "unknown metric 'fid50k'", "kid")


def test_trials_scored_with_another_reference_are_not_ranked_together(
    tiny_experiment: Path, tmp_path: Path
):
    exp = copy_experiment(tiny_experiment, tmp_path / "exp")
    dirs = sorted(trial_dirs(exp), key=lambda p: best_fd(result_rows(p)))
    rulers = {r["metric_ref"] for d in dirs for r in result_rows(d)}
    assert len(rulers) == 1  # one search, one ruler
    odd = dirs[0]  # the best trial, scored (say) by another reference
    rows = result_rows(odd)
    for r in rows:
        r["metric_ref"] = "0123456789ab"
    (odd / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    proc = run_cli("report", str(exp), "--out", str(out), "--top-k", "2")
    assert proc.returncode == 0, proc.stderr
    warning = [ln for ln in proc.stderr.splitlines() if "different metric reference" in ln]
    assert warning and odd.name in warning[0] and "0123456789ab" in warning[0], proc.stderr
    doc = json.loads((out / "leaderboard.json").read_text())
    by_name = {t["trial"]: t for t in doc["trials"]}
    assert by_name[odd.name]["rank"] is None and by_name[odd.name]["outcome"] == "other ruler"
    assert by_name[dirs[1].name]["rank"] == 1


def test_an_experiment_from_before_the_new_metrics_still_reports(
    tiny_experiment: Path, tmp_path: Path
):
    """Trials scored before metric_ref, recall, diversity and sym_excess existed: ranked as
    one (unknown) ruler; the symmetry view falls back to sym_gap; nothing is made up."""
    exp = copy_experiment(tiny_experiment, tmp_path / "exp")
    new = {"metric_ref", "precision", "recall", "density", "coverage", "diversity", "sym_excess"}
    for d in trial_dirs(exp):
        rows = [{k: v for k, v in r.items() if k not in new} for r in result_rows(d)]
        (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    proc = run_cli("report", str(exp), "--out", str(out), "--top-k", "1")
    assert proc.returncode == 0, proc.stderr
    assert "different metric reference" not in proc.stderr
    doc = json.loads((out / "leaderboard.json").read_text())
    assert all(t["rank"] for t in doc["trials"] if t["best"] is not None)
    assert "recall_at_best" not in doc["trials"][0] and "sym_gap_at_best" in doc["trials"][0]
    assert "sym\\_gap" in (out / "report.md").read_text()  # Markdown-escaped


# -- the all-trials curves plot at many trials --------------------------------------------------
def _curves_axes(monkeypatch: pytest.MonkeyPatch, n: int, top_k: int) -> Any:
    """metric_vs_kimg over ``n`` made-up trials (ranked by best fd); its axes, unsaved."""
    from fashion_tune.report import plots
    from fashion_tune.report.collect import TrialRecord
    from fashion_tune.report.rank import Entry

    entries = []
    for i in range(n):
        rows = [{"kimg": 0.5 * k, "fd": 10.0 + i + 1 / k} for k in range(1, 2 + i % 4)]
        trial = TrialRecord(f"t{i:04d}", f"trial_t{i:04d}", "TERMINATED", rows=rows)
        outcome = "stopped" if i % 4 < 3 else "finished"
        entries.append(
            Entry(trial, rows[-1]["fd"], rows[-1], rows[-1]["fd"], 0.5, outcome, None, i + 1)
        )
    entries.append(
        Entry(TrialRecord("none", "trial_none", "ERROR"), None, None, None, 0, "errored", None)
    )
    assert plots.curve_counts(entries, "fd", top_k) == (n, min(n, top_k))
    saved: list[Any] = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: saved.append(fig) or path)
    plots.metric_vs_kimg(entries, "fd", top_k, [0.5, 1.0], 2.0, Path("unused.png"))
    return saved[0].axes[0]


def test_curves_of_many_trials_keep_the_top_readable(monkeypatch: pytest.MonkeyPatch):
    from matplotlib.collections import LineCollection

    few = _curves_axes(monkeypatch, 40, 3)  # as before: every trial a line with its points
    assert not [c for c in few.collections if isinstance(c, LineCollection)]
    assert len([ln for ln in few.lines if ln.get_marker() == "."]) == 40

    many = _curves_axes(monkeypatch, 150, 3)
    (rest,) = [c for c in many.collections if isinstance(c, LineCollection)]
    assert len(rest.get_segments()) == 147  # the others: one thin, faint collection
    assert rest.get_alpha() < 0.5 and max(rest.get_linewidths()) < 1
    top = [ln for ln in many.lines if ln.get_marker() == "."]
    assert len(top) == 3  # only the top trials have points, in colour, above the rest
    assert all(ln.get_zorder() > rest.get_zorder() and ln.get_linewidth() == 2 for ln in top)
    assert len({ln.get_color() for ln in top}) == 3
    labels = [t.get_text() for t in many.get_legend().get_texts()]
    assert labels[:4] == [
        "#1 trial_t0000",
        "#2 trial_t0001",
        "#3 trial_t0002",
        "the other 147 trials",
    ]
    import matplotlib.pyplot as plt

    plt.close(few.figure)
    plt.close(many.figure)
