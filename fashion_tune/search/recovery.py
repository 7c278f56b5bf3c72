"""Check and repair an experiment before ``--resume`` (gaps of Ray Tune 2.60), unpickling nothing.

Ray writes its state files into a driver staging folder on the driver's machine and a
background thread copies them into the experiment folder. That copy overwrites in place:
a driver killed mid-copy (more likely with state written at every step) leaves a file
there empty or cut short, and ``Tuner.restore`` then fails to restore the run and quietly
starts over. The staging copies are written by rename and survive a killed driver on the
same machine: for every state file, keep the newest copy that reads back whole, and put
it in place before Ray restores.

Security: ``Tuner.restore`` unpickles the experiment's files, so

* a local experiment must be owned by the current user and writable by nobody else;
* staging copies are read only from the embedded Ray's private temp folder
  (``ray_private.make_temp_root``: mode 0700, owned by us), and only files we own;
  Ray's default ``/tmp/ray`` is world-writable and is never looked at;
* "reads back whole" is decided by walking the pickle's opcodes (``pickletools``),
  which runs none of them.
"""

from __future__ import annotations

import json
import os
import pickletools
import stat
from pathlib import Path

from fashion_tune import experiment_layout as layout
from fashion_tune.data.storage import Store, is_uri
from fashion_tune.errors import FashionTuneError
from fashion_tune.search import ray_private


def readable(name: str, data: bytes) -> bool:
    """Does this state file read back whole? (JSON parsed; pickles walked, never run.)"""
    try:
        if layout.is_experiment_state(name):
            json.loads(data)
        else:
            ops = list(pickletools.genops(data))
            if not ops or ops[-1][0].name != "STOP":
                return False
    except Exception:  # truncated, empty or not a pickle at all
        return False
    return True


def _others_can_write(st: os.stat_result) -> bool:
    mode = stat.S_IMODE(st.st_mode)
    return bool(mode & 0o002) or bool(mode & 0o020 and st.st_gid != os.getgid())


def check_trusted(experiment: str) -> None:
    """Refuse to resume (= unpickle) a local experiment another user could have written.

    Object-store experiments are trusted as the bucket is: resume only from your own.
    """
    if is_uri(experiment) and not experiment.startswith("file://"):
        return
    folder = Path(experiment.removeprefix("file://"))
    paths = [folder.parent, folder, folder / layout.TUNER_FILE]
    if folder.is_dir():  # Ray's state files hold pickles (the JSON one too), and the trial
        # folders hold the checkpoints a resumed trial loads
        paths += [p for p in folder.iterdir() if layout.is_state_file(p.name) or p.is_dir()]
    for path in paths:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(st.st_mode):
            st = os.stat(path)
        # a sticky parent (like /tmp) lets nobody else rename or replace our folder in it
        sticky_parent = path == folder.parent and bool(st.st_mode & stat.S_ISVTX)
        if st.st_uid not in (os.getuid(), 0) or (_others_can_write(st) and not sticky_parent):
            owner = "another user" if st.st_uid not in (os.getuid(), 0) else "others"
            raise FashionTuneError(
                f"will not resume {experiment}: {path} can be written by {owner} "
                f"(mode {stat.S_IMODE(st.st_mode):o}, uid {st.st_uid}) and resuming "
                "unpickles it; copy the experiment to a folder only you can write"
            )


def _staged_copies(experiment: str, names: list[str]) -> dict[str, list[bytes]]:
    """State file name -> its copies in our private staging folders, newest folder first.

    A staging folder is this experiment's when it holds one of its experiment_state files
    by name (the names carry each driver session's start time; another experiment of the
    same name under another --storage has others).
    """
    ours = {n for n in names if layout.is_experiment_state(n)}
    name = experiment.rstrip("/").rsplit("/", 1)[-1]
    found = [d for d in ray_private.staging_dirs(name) if ours & set(os.listdir(d))]
    folders = sorted(found, key=lambda p: p.stat().st_mtime)
    copies: dict[str, list[bytes]] = {}
    for folder in reversed(folders):
        for path in folder.iterdir():
            if layout.is_state_file(path.name):
                data = ray_private.read_own_file(path)
                if data is not None:
                    copies.setdefault(path.name, []).append(data)
    return copies


def repair_state_files(experiment: str) -> list[str]:
    """Put an intact copy of every damaged state file in place; the names repaired.

    Raises FashionTuneError when a damaged file has no intact copy on this machine.
    """
    store = Store.open(experiment)
    names = [n for n in store.listdir() if layout.is_state_file(n)]
    damaged = [n for n in names if not readable(n, store.read_bytes(n))]
    copies = _staged_copies(experiment, names) if damaged else {}
    repaired = []
    for name in damaged:
        intact = next((c for c in copies.get(name, []) if readable(name, c)), None)
        if intact is None:
            raise FashionTuneError(
                f"cannot resume {experiment}: Ray's state file {name} is damaged (the "
                "driver died while copying it) and no intact copy is in this machine's "
                f"private Ray temp folder ({ray_private.temp_root()}); resume on the machine "
                "that ran the driver, or start a new experiment"
            )
        store.write_atomic(name, intact)
        repaired.append(name)
    return repaired
