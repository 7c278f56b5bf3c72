"""An experiment folder (local or URI) -> plain records, without Ray and without unpickling.

What is read, in order of trust:

* ``experiment_state-*.json`` (the newest): Ray's trial list, statuses, folders, errors.
  Only its JSON fields are read; its pickled blobs are left alone.
* each trial folder: ``params.json``, ``config.json``, ``result.json`` (one line per tick;
  ``progress.csv`` or our ``metrics.jsonl`` when it is missing), ``checkpoint_NNNNNN/``,
  ``error.txt``. After a crash a folder may hold only checkpoints: then the newest
  checkpoint's own history stands in for the results.
* ``fashion_tune_search.json`` (the search's description) and ``fashion_tune_finished/``.

Anything missing becomes a warning in :attr:`Experiment.warnings`, never an exception;
only a folder that is no experiment at all raises :class:`ReportError`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from fashion_tune import experiment_layout as layout
from fashion_tune.data.storage import Store
from fashion_tune.errors import FashionTuneError
from fashion_tune.metrics.names import OBJECTIVE

SEARCH_FILE = layout.SEARCH_FILE
LEDGER_DIR = layout.LEDGER_DIR
CHECKPOINT_RE = layout.CHECKPOINT_RE
ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-_]")
TRIAL_FILES = layout.TRIAL_FILES


class ReportError(FashionTuneError):
    """The experiment cannot be reported (not an experiment, a bad option)."""


@dataclass
class CheckpointInfo:
    name: str  # checkpoint_000003
    metrics: dict[str, Any] | None  # the report saved with it (None: unknown)


@dataclass
class TrialRecord:
    trial_id: str
    folder: str | None  # folder name inside the experiment (None: no folder found)
    status: str  # Ray's status when the state was last written, or UNKNOWN
    params: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] | None = None  # the full resolved trial config
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per tick report
    rows_source: str = ""  # which file the rows came from
    checkpoints: list[CheckpointInfo] = field(default_factory=list)
    error: str | None = None  # ANSI-free error text
    in_ledger: bool = False  # recorded as finished by our search callback


@dataclass
class Experiment:
    location: str
    name: str
    store: Store
    search: dict[str, Any] | None
    metric: str
    mode: str
    trials: list[TrialRecord]
    warnings: list[str] = field(default_factory=list)

    def trial_store(self, trial: TrialRecord) -> Store:
        assert trial.folder is not None
        return sub_store(self.store, trial.folder)


def sub_store(store: Store, name: str) -> Store:
    return Store(store.fs, store.path(name), store.describe(name))


def strip_ansi(text: str) -> str:
    return ANSI_RE.sub("", text)


def _entries(store: Store) -> dict[str, bool]:
    """Names in a folder -> is it a folder."""
    info = store.fs.get_file_info(store.root)
    if info.type != pafs.FileType.Directory:
        return {}
    sel = pafs.FileSelector(store.root, recursive=False)
    return {
        i.path.rstrip("/").rsplit("/", 1)[-1]: i.type == pafs.FileType.Directory
        for i in store.fs.get_file_info(sel)
    }


def _read_json(store: Store, name: str) -> Any:
    try:
        return json.loads(store.read_bytes(name))
    except (OSError, ValueError):
        return None


def _state_trials(store: Store, names: list[str], warnings: list[str]) -> list[dict[str, Any]]:
    """The trial entries of the newest experiment_state-*.json (JSON fields only)."""
    states = sorted(n for n in names if layout.is_experiment_state(n))
    if not states:
        warnings.append("no experiment_state-*.json: trial statuses are unknown")
        return []
    doc = _read_json(store, states[-1])
    if not isinstance(doc, dict):
        warnings.append(f"{states[-1]} cannot be read: trial statuses are unknown")
        return []
    out = []
    for pair in doc.get("trial_data", []):
        try:
            meta, run = json.loads(pair[0]), json.loads(pair[1])
        except (ValueError, TypeError, IndexError):
            continue
        out.append(
            {
                "trial_id": str(meta.get("trial_id", "")),
                "status": str(meta.get("status", "UNKNOWN")),
                "folder": meta.get("relative_logdir"),
                "config": meta.get("config") if isinstance(meta.get("config"), dict) else {},
                "error_file": run.get("error_filename"),
                "last_result": run.get("last_result") or {},
            }
        )
    return out


def _usable(value: Any) -> bool:
    """Can the report compute with this value? (an integer too large for a float cannot)"""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return False
    return True


def _json_lines(store: Store, name: str, where: str, warnings: list[str]) -> list[dict[str, Any]]:
    """The JSON-object lines of a file; each line that is not one is reported, not dropped
    silently (a cut-short last line is what an interrupted trial leaves)."""
    lines = store.read_bytes(name).decode(errors="replace").splitlines()
    rows, bad, dropped = [], [], []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError):  # also: numbers longer than Python parses
            row = None
        if not isinstance(row, dict):
            bad.append(i)
            continue
        for key in [k for k, v in row.items() if not _usable(v)]:
            dropped.append(f"{key} (line {i})")
            row[key] = None
        row.pop("config", None)
        rows.append(row)
    if bad:
        last = (
            " (the last line: cut short when the trial was interrupted?)"
            if bad == [len(lines)]
            else ""
        )
        listed = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if bad[5:] else "")
        warnings.append(f"{where}/{name}: line {listed} is not a JSON object; skipped{last}")
    if dropped:
        more = f" and {len(dropped) - 3} more" if dropped[3:] else ""
        warnings.append(
            f"{where}/{name}: a number too large to use in {', '.join(dropped[:3])}{more}; "
            "treated as missing"
        )
    return rows


def _parse_rows(
    store: Store, files: dict[str, bool], where: str, warnings: list[str]
) -> tuple[list[dict[str, Any]], str]:
    if layout.RESULT_FILE in files:
        rows = _json_lines(store, layout.RESULT_FILE, where, warnings)
        if rows:
            return rows, layout.RESULT_FILE
    if layout.PROGRESS_FILE in files:
        text = store.read_bytes(layout.PROGRESS_FILE).decode(errors="replace")
        rows = [{k: _number(v) for k, v in r.items()} for r in csv.DictReader(io.StringIO(text))]
        if rows:
            return rows, layout.PROGRESS_FILE
    if layout.TRIAL_METRICS_FILE in files:
        rows = _json_lines(store, layout.TRIAL_METRICS_FILE, where, warnings)
        if rows:
            return rows, layout.TRIAL_METRICS_FILE
    return [], ""


def _number(text: str | None) -> Any:
    if text is None or text == "":
        return None
    try:
        number = int(text)
    except ValueError:
        pass
    else:
        return number if _usable(number) else None
    try:
        return float(text)
    except ValueError:
        return text


def checkpoint_state(store: Store, name: str) -> dict[str, Any] | None:
    """A checkpoint's saved state (weights-only load), or None when unreadable."""
    import torch

    try:
        data = store.read_bytes(f"{name}/{layout.CHECKPOINT_STATE_FILE}")
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception:  # missing, truncated, foreign
        return None
    return state if isinstance(state, dict) else None


def _read_trial(exp_store: Store, rec: TrialRecord, warnings: list[str]) -> None:
    assert rec.folder is not None
    store = sub_store(exp_store, rec.folder)
    files = _entries(store)
    params = _read_json(store, layout.PARAMS_FILE) if layout.PARAMS_FILE in files else None
    if isinstance(params, dict):
        rec.params = params
    cfg_file = layout.TRIAL_CONFIG_FILE
    config = _read_json(store, cfg_file) if cfg_file in files else None
    if isinstance(config, dict):
        rec.config = config
    rec.rows, rec.rows_source = _parse_rows(store, files, rec.folder, warnings)
    by_ckpt = {r.get("checkpoint_dir_name"): r for r in rec.rows if r.get("checkpoint_dir_name")}
    names = sorted(n for n, is_dir in files.items() if is_dir and CHECKPOINT_RE.match(n))
    for n in names:
        rec.checkpoints.append(CheckpointInfo(n, by_ckpt.get(n)))
    if not rec.rows and names:
        # results were staged elsewhere when the driver died: the checkpoint keeps a history
        state = checkpoint_state(store, names[-1])
        if state and isinstance(state.get("history"), str):
            rec.rows = json.loads(state["history"])
            rec.rows_source = f"{names[-1]}/checkpoint.pt"
            warnings.append(
                f"{rec.folder}: no result.json; its results were read from {rec.rows_source}"
            )
    for info in rec.checkpoints:
        if info.metrics is None:
            state = checkpoint_state(store, info.name)
            if state and isinstance(state.get("metrics"), str):
                info.metrics = json.loads(state["metrics"])
    if layout.ERROR_FILE in files:
        text = store.read_bytes(layout.ERROR_FILE).decode(errors="replace")
        rec.error = strip_ansi(text).strip()


def load_experiment(location: str) -> Experiment:
    """Read everything an experiment folder holds; raise ReportError if it is none."""
    store = Store.open(location)
    info = store.fs.get_file_info(store.root)
    if info.type == pafs.FileType.NotFound:
        raise ReportError(f"experiment {location} does not exist")
    if info.type != pafs.FileType.Directory:
        raise ReportError(f"{location} is a file, not an experiment folder")
    entries = _entries(store)
    names = sorted(entries)
    trial_dirs = [
        n
        for n, is_dir in entries.items()
        if is_dir
        and any(f in TRIAL_FILES or CHECKPOINT_RE.match(f) for f in _entries(sub_store(store, n)))
    ]
    has_state = any(layout.is_experiment_state(n) for n in names)
    if not has_state and SEARCH_FILE not in entries and not trial_dirs:
        raise ReportError(
            f"{location} is not a Ray Tune experiment: no experiment_state-*.json, "
            f"{SEARCH_FILE} or trial folders there (give the folder `fashion-tune search` "
            "printed, e.g. results/<name>)"
        )
    warnings: list[str] = []
    search = _read_json(store, SEARCH_FILE) if SEARCH_FILE in entries else None
    if not isinstance(search, dict):
        search = None
        warnings.append(
            f"no {SEARCH_FILE} (an older or foreign experiment): the objective, search "
            "space and ASHA rungs are inferred from the trials"
        )
    ledger_store = sub_store(store, LEDGER_DIR)
    ledger = {
        n.removesuffix(".json"): _read_json(ledger_store, n)
        for n in (_entries(ledger_store) if entries.get(LEDGER_DIR) else {})
        if n.endswith(".json")
    }

    trials: dict[str, TrialRecord] = {}
    for st in _state_trials(store, names, warnings):
        folder = st["folder"] if st["folder"] in entries else None
        rec = TrialRecord(st["trial_id"], folder, st["status"], params=dict(st["config"]))
        if st["error_file"] and folder is None:
            rec.error = f"errored (Ray's error file {st['error_file']} is gone)"
        trials[rec.trial_id] = rec
    known = {t.folder for t in trials.values()}
    for d in sorted(trial_dirs):
        if d not in known:
            tid = d.removeprefix("trial_")
            while tid in trials:
                tid += "_"
            trials[tid] = TrialRecord(tid, d, "UNKNOWN")
    for rec in trials.values():
        rec.in_ledger = rec.trial_id in ledger
        if rec.folder is None:
            if rec.status != "PENDING":
                warnings.append(
                    f"trial {rec.trial_id}: its folder is missing; only its status (and the "
                    "last value our ledger recorded, if any) is known: it is not ranked"
                )
            entry = ledger.get(rec.trial_id)
            if isinstance(entry, dict) and isinstance(entry.get("result"), dict):
                rec.rows, rec.rows_source = [entry["result"]], f"{LEDGER_DIR}/ (last report only)"
            continue
        _read_trial(store, rec, warnings)
        if not rec.rows:
            warnings.append(f"{rec.folder}: no results reported")
        if not rec.checkpoints:
            warnings.append(f"{rec.folder}: no checkpoint left (no samples or export for it)")

    metric = str(search["metric"]) if search else OBJECTIVE
    mode = str(search["mode"]) if search else "min"
    name = str(search.get("name")) if search and search.get("name") else _basename(location)
    return Experiment(location, name, store, search, metric, mode, list(trials.values()), warnings)


def _basename(location: str) -> str:
    return location.rstrip("/").rsplit("/", 1)[-1] or location
