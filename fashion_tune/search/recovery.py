"""Repair Ray's experiment-state files before ``--resume`` (a gap of Ray Tune 2.60).

Ray writes its state files into a driver staging folder on the head machine
(``<ray temp>/session_*/artifacts/<start>/<name>/driver_artifacts``) and a
background thread copies them into the experiment folder. That copy overwrites
in place: a driver killed mid-copy (more likely with state written at every
step) leaves a file there empty or cut short, and ``Tuner.restore`` then fails
to restore the run and quietly starts over. The staging copies are written by
rename and survive a killed driver on the same machine: for every state file,
keep the newest copy that reads back, and put it in place before Ray restores.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import tempfile
from pathlib import Path

from fashion_tune.data.storage import Store
from fashion_tune.errors import FashionTuneError

STATE_PATTERNS = (
    "experiment_state-*.json",
    "search_gen_state-*.json",  # a cloudpickle, despite its name
    "searcher-state-*.pkl",
    "callback-states-*.pkl",
)


def _is_state_file(name: str) -> bool:
    return any(fnmatch.fnmatch(name, p) for p in STATE_PATTERNS)


def readable(name: str, data: bytes) -> bool:
    """Does this state file read back whole?"""
    try:
        if name.startswith("experiment_state-"):
            json.loads(data)
        else:
            from ray import cloudpickle

            cloudpickle.loads(data)
    except Exception:
        return False
    return True


def staging_dirs(names: list[str], experiment_name: str) -> list[Path]:
    """This machine's driver staging folders of the experiment, newest last.

    A staging folder is ours when it holds one of the experiment's state files by name
    (the names carry each driver session's start time).
    """
    ours = {n for n in names if fnmatch.fnmatch(n, STATE_PATTERNS[0])}
    root = os.environ.get("RAY_TMPDIR") or tempfile.gettempdir()
    pattern = f"{root}/ray/session_*/artifacts/*/{experiment_name}/driver_artifacts"
    found = [Path(p) for p in glob.glob(pattern) if ours & set(os.listdir(p))]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def repair_state_files(experiment: str) -> list[str]:
    """Put an intact copy of every damaged state file in place; the names repaired.

    Raises FashionTuneError when a damaged file has no intact copy on this machine.
    """
    store = Store.open(experiment)
    names = [n for n in store.listdir() if _is_state_file(n)]
    stagings = staging_dirs(names, experiment.rstrip("/").rsplit("/", 1)[-1])
    repaired = []
    for name in sorted(set(names) | {p.name for d in stagings for p in d.iterdir()}):
        if not _is_state_file(name):
            continue
        current = store.read_bytes(name) if name in names else None
        if current is not None and readable(name, current):
            continue
        copies = [d / name for d in reversed(stagings) if (d / name).is_file()]
        intact = next((c.read_bytes() for c in copies if readable(name, c.read_bytes())), None)
        if intact is None:
            if current is None:
                continue
            raise FashionTuneError(
                f"cannot resume {experiment}: Ray's state file {name} is damaged (the "
                "driver died while copying it) and no intact copy is on this machine; "
                "resume on the machine that ran the driver, or start a new experiment"
            )
        store.write_atomic(name, intact)
        repaired.append(name)
    return repaired
