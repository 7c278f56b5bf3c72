"""``--resume`` unpickles nothing from a place another user can write; the embedded Ray
listens on loopback only; Ray / Optuna internals are used only for the versions known.

The "malicious" state files here are real pickles whose loading would create a marker
file: a test passes only if the marker never appears.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import SPACES

from fashion_tune import experiment_layout as layout
from fashion_tune.errors import FashionTuneError
from fashion_tune.search import ray_private
from fashion_tune.search.recovery import check_trusted, readable, repair_state_files
from tests.cli_helpers import assert_one_error, run_main

START = "2026-01-02_03-04-05"
STATE = f"experiment_state-{START}.json"
SEARCHER = f"searcher-state-{START}.pkl"


class _Touch:
    """Unpickling this creates ``path``: proof that something was unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def _experiment(root: Path) -> Path:
    """An experiment whose searcher state was cut short by a killed driver."""
    exp = root / "results" / "quick"
    exp.mkdir(parents=True)
    (exp / STATE).write_text(json.dumps({"trial_data": []}))
    (exp / SEARCHER).write_bytes(b"\x80\x05")  # cut short
    (exp / layout.TUNER_FILE).write_bytes(pickle.dumps({"fine": 1}))
    return exp


def _staging(root: Path, marker: Path) -> Path:
    """A staging folder under ``root`` in Ray's layout, holding an intact-looking copy."""
    staging = root / "ray" / "session_x" / "artifacts" / "t" / "quick" / "driver_artifacts"
    staging.mkdir(parents=True)
    (staging / STATE).write_text(json.dumps({"trial_data": []}))
    (staging / SEARCHER).write_bytes(pickle.dumps(_Touch(str(marker))))
    return staging


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


def test_private_staging_copy_repairs_without_unpickling(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "private"
    root.mkdir(mode=0o700)
    _staging(root, marker)
    monkeypatch.setenv(ray_private.TEMP_ENV, str(root))
    exp = _experiment(tmp_path)
    assert repair_state_files(str(exp)) == [SEARCHER]
    assert (exp / SEARCHER).read_bytes() == pickle.dumps(_Touch(str(marker)))
    assert not marker.exists()  # "reads back whole" was decided without running it


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o755, 0o750])
def test_staging_in_a_shared_folder_is_never_read(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    root = tmp_path / "shared"  # like Ray's default /tmp/ray: others can enter or write
    root.mkdir()
    root.chmod(mode)
    _staging(root, marker)
    monkeypatch.setenv(ray_private.TEMP_ENV, str(root))
    exp = _experiment(tmp_path)
    with pytest.raises(FashionTuneError, match=f"{SEARCHER} is damaged"):
        repair_state_files(str(exp))
    assert (exp / SEARCHER).read_bytes() == b"\x80\x05" and not marker.exists()


def test_staging_through_a_link_is_never_read(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    _staging(real, marker)
    link = tmp_path / "link"
    link.symlink_to(real)
    monkeypatch.setenv(ray_private.TEMP_ENV, str(link))
    with pytest.raises(FashionTuneError, match="is damaged"):
        repair_state_files(str(_experiment(tmp_path)))


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_staged_file_owned_by_another_user_is_never_read(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "private"
    root.mkdir(mode=0o700)
    staging = _staging(root, marker)
    os.chown(staging / SEARCHER, 65534, 65534)
    monkeypatch.setenv(ray_private.TEMP_ENV, str(root))
    with pytest.raises(FashionTuneError, match="is damaged"):
        repair_state_files(str(_experiment(tmp_path)))


def test_pickle_check_runs_nothing(marker: Path) -> None:
    payload = pickle.dumps(_Touch(str(marker)))
    assert readable(SEARCHER, payload)
    assert not readable(SEARCHER, payload[:-1]) and not readable(SEARCHER, b"")
    assert not readable(STATE, b'{"trial_data": [')
    assert not marker.exists()


# -- the temp root Ray is started in --------------------------------------------------------


def test_temp_root_is_created_private(monkeypatch: pytest.MonkeyPatch) -> None:
    short = Path(tempfile.mkdtemp(prefix="ftt-", dir="/tmp"))  # Ray's sockets fit under it
    try:
        monkeypatch.setenv(ray_private.TEMP_ENV, str(short / "fresh"))
        ray_dir = ray_private.make_temp_root()
        assert ray_dir == short / "fresh" / "ray"
        assert (short / "fresh").stat().st_mode & 0o777 == 0o700
    finally:
        shutil.rmtree(short)


def test_temp_root_too_long_for_rays_sockets_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray would fail deep inside ray.init with a traceback (AF_UNIX paths hold 107 bytes)."""
    root = tmp_path / ("x" * 60)
    monkeypatch.setenv(ray_private.TEMP_ENV, str(root))
    with pytest.raises(FashionTuneError, match="too long for Ray's socket paths"):
        ray_private.make_temp_root()
    assert not root.exists()  # nothing made


@pytest.mark.parametrize("problem", ["open", "link", "file"])
def test_temp_root_that_is_not_private_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str
) -> None:
    root = tmp_path / "root"
    if problem == "open":
        root.mkdir()
        root.chmod(0o777)
    elif problem == "link":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        root.symlink_to(tmp_path / "elsewhere")
    else:
        root.write_text("x")
    monkeypatch.setenv(ray_private.TEMP_ENV, str(root))
    with pytest.raises(FashionTuneError, match=ray_private.TEMP_ENV):
        ray_private.make_temp_root()


# -- resuming an experiment another user could have written ------------------------------


@pytest.mark.parametrize("target", ["folder", "tuner", "state", "json-state", "trial", "storage"])
def test_resume_refuses_an_experiment_others_can_write(
    capsys: Any, tmp_path: Path, fmnist_small: Path, target: str
) -> None:
    exp = _experiment(tmp_path)
    (exp / SEARCHER).write_bytes(pickle.dumps({"ok": 1}))
    (exp / "trial_0001").mkdir()
    path = {
        "folder": exp,
        "tuner": exp / layout.TUNER_FILE,
        "state": exp / SEARCHER,
        "json-state": exp / STATE,
        "trial": exp / "trial_0001",
        "storage": exp.parent,
    }[target]
    path.chmod(0o777 if path.is_dir() else 0o666)
    with pytest.raises(FashionTuneError, match="will not resume"):
        check_trusted(str(exp))
    argv = ["search", str(SPACES / "tiny.yaml"), "--name", "quick", "--resume"]
    argv += ["--storage", str(exp.parent), "--data", str(fmnist_small), "--dry-run"]
    r = run_main(capsys, *argv)
    assert_one_error(r, "will not resume", str(path))


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file to another user")
def test_resume_refuses_an_experiment_of_another_user(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    os.chown(exp / layout.TUNER_FILE, 65534, 65534)
    with pytest.raises(FashionTuneError, match="another user"):
        check_trusted(str(exp))


def test_own_private_experiment_is_trusted(tmp_path: Path) -> None:
    exp = _experiment(tmp_path)
    for p in (exp.parent, exp):
        p.chmod(0o755)
    check_trusted(str(exp))
    exp.parent.chmod(0o1777)  # a sticky shared parent (like /tmp): nobody can swap our folder
    check_trusted(str(exp))
    exp.chmod(0o1777)  # but anyone could add a newer state file to the experiment itself
    with pytest.raises(FashionTuneError, match="will not resume"):
        check_trusted(str(exp))


# -- versions -----------------------------------------------------------------------------


def test_other_ray_version_is_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ray_private.WRITTEN_FOR, "ray", "9.99.")
    with pytest.raises(FashionTuneError, match=r"relies on ray 9\.99\.x internals"):
        ray_private.check_versions()


# -- the embedded Ray listens on loopback only ----------------------------------------------


def test_embedded_ray_listens_on_loopback_only(tmp_path: Path) -> None:
    import psutil
    import ray

    from fashion_tune.search.tuner import init_ray

    init_ray(None, num_cpus=1)
    try:
        assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
        family = [*psutil.Process().children(recursive=True), psutil.Process()]
        pids = {p.pid for p in family}
        listening = [
            c.laddr
            for c in psutil.net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.pid in pids
        ]
        assert listening, "no listening socket of Ray was found"
        for addr in listening:
            assert addr.ip in ("127.0.0.1", "::ffff:127.0.0.1", "::1"), listening
        session = Path(ray._private.worker._global_node.get_session_dir_path())
        assert ray_private.temp_root() in session.parents
    finally:
        ray.shutdown()
