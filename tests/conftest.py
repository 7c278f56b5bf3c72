"""Shared fixtures: real Fashion-MNIST shards, an isolated cache, CLI helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "fashion_tune"]


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.mktemp("env")
    os.environ["FASHION_TUNE_CACHE"] = str(base / "cache")
    os.environ["MPLCONFIGDIR"] = str(base / "mpl")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def shared_data(
    tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]
) -> Path:
    """A folder built once per test run and shared by the xdist workers (each worker has
    its own session, so a session fixture alone built the full 32 px set and its metric
    reference, ~100 s, on both). The first worker builds it under a file lock; the others
    wait, then read it. Data only: nothing may write into it afterwards."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this run's folder, above every worker's own
    folder = base / f"shared-{name}"
    with open(base / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not (folder / ".built").exists():
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def fmnist32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Fashion-MNIST data set as 32 px shards, with its metric reference (made
    once per test run: the references of a set are made the first time they are needed)."""
    from fashion_tune.data.prepare import prepare
    from fashion_tune.data.sources import SourceOptions
    from fashion_tune.metrics import reference

    def build(folder: Path) -> None:
        prepare("fashion-mnist", None, str(folder / "shards"), SourceOptions(size=32))
        reference.ensure(str(folder / "shards"), log=lambda _: None)

    return shared_data(tmp_path_factory, "fmnist32", build) / "shards"


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run the real ``fashion-tune`` entry point in a subprocess."""
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=timeout
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    """A user error: non-zero exit, no traceback, one 'error:' line naming the fragments."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for frag in fragments:
        assert frag in lines[0], lines[0]


@pytest.fixture(scope="session")
def fmnist_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3,000 real Fashion-MNIST images at 32 px: enough for tiny trials and searches."""
    from fashion_tune.data.prepare import prepare
    from fashion_tune.data.sources import SourceOptions
    from fashion_tune.metrics import reference

    def build(folder: Path) -> None:
        out = folder / "shards"
        prepare("fashion-mnist", None, str(out), SourceOptions(size=32, limit=3000))
        reference.ensure(str(out), log=lambda _: None)  # as `data prepare` does

    return shared_data(tmp_path_factory, "fmnist-small", build) / "shards"


@pytest.fixture(scope="session")
def fmnist32_ref(fmnist32: Path) -> Path:
    """The full 32 px set with its metric reference made (a few minutes on 2 cores)."""
    from fashion_tune.metrics import reference

    reference.ensure(str(fmnist32), log=lambda _: None)
    return fmnist32


def tiny_overrides(data: Path, **extra: object) -> dict:
    """A trial config small enough to train a tick in about a second on one CPU thread."""
    base = {
        "data.path": str(data),
        "data.batch_size": 32,
        "model.z_dim": 16,
        "model.g_width": 8,
        "model.d_width": 8,
        "schedule.total_kimg": 0.128,
        "schedule.tick_kimg": 0.064,
        "metrics.num_samples": 128,
        "metrics.kid_subset_size": 64,
        "metrics.kid_subsets": 5,
        "runtime.threads": 1,
        "runtime.device": "cpu",
    }
    base.update(extra)
    return base


SPACES = Path(__file__).resolve().parent / "spaces"


@pytest.fixture(scope="session")
def tiny_experiment(tmp_path_factory: pytest.TempPathFactory, fmnist_small: Path) -> Path:
    """A real, finished search (embedded Ray, Optuna, ASHA) of 6 tiny trials; ~40 s."""
    storage = tmp_path_factory.mktemp("results")
    proc = run_cli(
        "search",
        str(SPACES / "tiny.yaml"),
        "--data",
        str(fmnist_small),
        "--storage",
        str(storage),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return storage / "tiny"
