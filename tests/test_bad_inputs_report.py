"""``fashion-tune report`` on bad input and damaged experiments: one line, never a traceback.

The experiments are small but real folders in Ray Tune's layout (an ``experiment_state``
JSON, trial folders with ``params.json`` / ``result.json``, our search file and ledger),
written here so each test breaks exactly one thing; the report itself runs unmocked
through the console entry point.
"""

from __future__ import annotations

import csv
import json
import resource
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI, ROOT, assert_one_line_error, run_cli

from fashion_tune import experiment_layout as layout
from tests.cli_helpers import full_filesystem, read_only

KIDS = {"aaa": [0.30, 0.10, 0.20], "bbb": [0.25, 0.22, 0.21], "ccc": [0.40, 0.35]}
PARAMS = {"aaa": {"optim.lr_g": 2e-4}, "bbb": {"optim.lr_g": 1e-3}, "ccc": {"optim.lr_g": 5e-4}}


def _rows(kids: list[float]) -> list[dict[str, Any]]:
    return [
        {"tick": i, "kimg": 0.064 * i, "kid": k, "fd": 10 * k, "sym_gap": 0.5, "diverged": 0}
        for i, k in enumerate(kids, 1)
    ]


def make_experiment(root: Path, params: dict[str, dict[str, Any]] | None = None) -> Path:
    """A three-trial experiment as Ray Tune + fashion-tune leave it (no checkpoints)."""
    params = params or PARAMS
    exp = root / "exp"
    exp.mkdir(parents=True)
    trial_data = []
    for tid, kids in KIDS.items():
        folder = exp / f"trial_{tid}"
        folder.mkdir()
        (folder / layout.PARAMS_FILE).write_text(json.dumps(params[tid]))
        lines = [json.dumps({**r, "trial_id": tid}) for r in _rows(kids)]
        (folder / layout.RESULT_FILE).write_text("\n".join(lines) + "\n")
        meta = {"trial_id": tid, "status": "TERMINATED", "relative_logdir": folder.name}
        meta["config"] = params[tid]
        run = {"error_filename": None, "last_result": _rows(kids)[-1]}
        trial_data.append([json.dumps(meta), json.dumps(run)])
    state = {"trial_data": trial_data, "runner_data": {}, "stats": {}}
    (exp / "experiment_state-2026-01-01_00-00-00.json").write_text(json.dumps(state))
    search = {
        "name": "exp",
        "metric": "kid",
        "mode": "min",
        "params": [],
        "scheduler": {"type": "fifo", "max_kimg": 0.192},
    }
    (exp / layout.SEARCH_FILE).write_text(json.dumps(search))
    (exp / layout.LEDGER_DIR).mkdir()
    for tid, kids in KIDS.items():
        entry = {"trial_id": tid, "config": params[tid], "result": _rows(kids)[-1]}
        (exp / layout.LEDGER_DIR / layout.ledger_entry_name(tid)).write_text(json.dumps(entry))
    return exp


def report(exp: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run_cli("report", str(exp), "--out", str(out), "--top-k", "1", *extra)


def csv_rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "leaderboard.csv", newline="") as f:
        return {r["trial_id"]: r for r in csv.DictReader(f)}


def warnings_of(proc: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("warning:")]


def assert_clean_success(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "error:" not in proc.stderr, proc.stderr


@pytest.fixture
def exp(tmp_path: Path) -> Path:
    return make_experiment(tmp_path)


# -- options a user can get wrong ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--seed", "-1"], ["--seed", "-1"]),
        (["--seed", str(2**40)], ["--seed"]),
        (["--top-k", "0"], ["--top-k"]),
        (["--mode", "sideways"], ["--mode", "sideways"]),
        (["--metric", "fid50k"], ["unknown metric", "fid50k"]),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(
    exp: Path, tmp_path: Path, args: list[str], fragments: list[str]
) -> None:
    out = tmp_path / "report"
    proc = report(exp, out, *args)
    assert_one_line_error(proc, *fragments)
    assert not out.exists()
    assert not list(tmp_path.glob(".report.tmp-*"))


@pytest.mark.parametrize(
    "where",
    ["/proc/fashion-tune-report", "/proc/version/report", "file"],
    ids=["read-only-fs", "under-a-file", "out-is-a-file"],
)
def test_unwritable_out_is_one_line(exp: Path, tmp_path: Path, where: str) -> None:
    out = Path(where) if where != "file" else tmp_path / "a-file"
    if where == "file":
        out.write_text("not a report\n")
    proc = report(exp, out)
    assert_one_line_error(proc, str(out))
    if where == "file":
        assert out.read_text() == "not a report\n"


def test_foreign_folder_is_refused_untouched(exp: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    proc = report(exp, out)
    assert_one_line_error(proc, "holds no report")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]


# -- a failed report leaves the previous one intact ------------------------------------------


def _limit_file_size() -> None:  # in the child: writes beyond 2 KiB fail with EFBIG
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))


def test_failed_report_keeps_the_old_one(exp: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert_clean_success(report(exp, out))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert (out / "index.html").exists() and any(p.suffix == ".png" for p in before)

    # a second report that runs out of room half-way (its figures exceed the file limit)
    proc = subprocess.run(
        [*CLI, "report", str(exp), "--out", str(out), "--top-k", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        preexec_fn=_limit_file_size,
    )
    assert_one_line_error(proc, str(out), "unchanged")
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before
    assert not list(tmp_path.glob(".report.*"))  # the half-built folder is gone


def test_read_only_out_keeps_the_old_report(exp: Path, tmp_path: Path) -> None:
    parent = tmp_path / "reports"
    out = parent / "quick"
    assert_clean_success(report(exp, out))
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with read_only(parent):
        proc = report(exp, out)
    assert_one_line_error(proc, str(out))
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_full_disk_mid_report_keeps_the_old_one(exp: Path, tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    with full_filesystem(disk, size="256k"):  # room for one report (~180 KiB), not two
        out = disk / "report"
        assert_clean_success(report(exp, out))
        before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        proc = report(exp, out)
        assert_one_line_error(proc, str(out), "unchanged")
        after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert after == before
        assert [p.name for p in disk.iterdir()] == ["report"]  # no half-built folder left


def test_report_replaces_the_previous_one_whole(exp: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert_clean_success(report(exp, out))
    (out / "images" / "stale.png").write_bytes(b"old")
    assert_clean_success(report(exp, out))
    assert not (out / "images" / "stale.png").exists()
    assert (out / "index.html").exists()
    assert not list(tmp_path.glob(".report.*"))


# -- damaged experiments: reported, not silently dropped or mislabelled ----------------------


def test_huge_number_in_result_json_is_a_warning(exp: Path, tmp_path: Path) -> None:
    path = exp / "trial_ccc" / layout.RESULT_FILE
    rows = _rows(KIDS["ccc"])
    rows[0]["fd"] = int("9" * 400)  # json.dumps writes all 400 digits
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    proc = report(exp, tmp_path / "report")
    assert_clean_success(proc)
    found = [w for w in warnings_of(proc) if "too large" in w]
    assert len(found) == 1 and "trial_ccc/result.json" in found[0] and "fd" in found[0]
    assert csv_rows(tmp_path / "report")["ccc"]["best"] == "0.35"


@pytest.mark.parametrize(
    ("garbage", "line"),
    [("this is not json", 2), ("[1, 2, 3]", 2), ('{"kid": 0.1, "tick": ', 4)],
    ids=["text", "not-an-object", "cut-short-last-line"],
)
def test_garbage_line_in_result_json_is_a_warning(
    exp: Path, tmp_path: Path, garbage: str, line: int
) -> None:
    path = exp / "trial_bbb" / layout.RESULT_FILE
    lines = path.read_text().splitlines()
    lines.insert(line - 1, garbage)
    path.write_text("\n".join(lines) + "\n")
    proc = report(exp, tmp_path / "report")
    assert_clean_success(proc)
    found = [w for w in warnings_of(proc) if "trial_bbb/result.json" in w]
    assert len(found) == 1 and f"line {line} " in found[0] and "skipped" in found[0]
    assert csv_rows(tmp_path / "report")["bbb"]["best"] == "0.21"  # the good lines count


def test_trial_whose_folder_is_gone_is_marked_not_ranked(exp: Path, tmp_path: Path) -> None:
    import shutil

    # the ledger still holds aaa's last value (0.20), which is not its best (0.10)
    shutil.rmtree(exp / "trial_aaa")
    proc = report(exp, tmp_path / "report")
    assert_clean_success(proc)
    assert any("aaa" in w and "not ranked" in w for w in warnings_of(proc))
    rows = csv_rows(tmp_path / "report")
    assert rows["aaa"]["outcome"] == "folder missing"
    assert rows["aaa"]["rank"] == "" and rows["aaa"]["best"] == ""
    assert rows["aaa"]["last"] == "0.2"
    assert rows["bbb"]["rank"] == "1"  # the trial with the best surviving record
    html = (tmp_path / "report" / "index.html").read_text()
    assert "folder missing" in html


# -- CSV cells a spreadsheet would run --------------------------------------------------------


def test_csv_cells_are_guarded_against_formulas(tmp_path: Path) -> None:
    nasty = ["=HYPERLINK(1)", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx"]
    params = {tid: {"optim.lr_g": 1e-3, "note": nasty[i]} for i, tid in enumerate(KIDS)}
    params["ccc"]["note2"] = nasty[3]
    params["aaa"]["note2"] = nasty[4]
    params["bbb"]["note2"] = nasty[5]
    exp = make_experiment(tmp_path, params)
    out = tmp_path / "report"
    assert_clean_success(report(exp, out))
    with open(out / "leaderboard.csv", newline="") as f:
        cells = [c for row in csv.reader(f) for c in row]
    for value in nasty:
        assert "'" + value in cells, value
        assert value not in cells, value
