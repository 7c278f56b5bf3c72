"""Helpers for the bad-input tests: run ``main(argv)`` in-process, check the one-line
contract, and make a folder truly read-only (root ignores permission bits, so as root a
read-only bind mount is used; where neither works the test is skipped, never faked)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from fashion_tune.cli import main


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def said(self) -> str:
        """stdout with rich's line wrapping undone (whitespace runs become one space)."""
        return " ".join(self.out.split())

    @property
    def error_lines(self) -> list[str]:
        return [ln for ln in self.err.splitlines() if ln.startswith("error:")]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    """The real CLI entry point in this process (argv parsed, errors mapped, code returned)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def assert_one_error(r: Result, *fragments: str, code: int = 2) -> str:
    """Exit ``code``, exactly one ``error:`` line holding every fragment, no traceback."""
    assert r.code == code, (r.code, r.out, r.err)
    assert "Traceback" not in r.out + r.err, r.err
    assert len(r.error_lines) == 1, r.err
    line = r.error_lines[0]
    for frag in fragments:
        assert frag in line, line
    return line


@pytest.fixture(name="empty_cwd")
def empty_cwd_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty folder so commands find no default data, spaces or runs (import it
    into a test module to use it)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``path`` with its size and mtime: to prove nothing changed."""
    if not path.exists():
        return {}
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@contextmanager
def read_only(folder: Path) -> Iterator[Path]:
    """``folder`` made read-only for this process while the block runs."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield folder
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    mount = shutil.which("mount")
    umount = shutil.which("umount")
    if not mount or not umount:
        pytest.skip("running as root without mount(8): cannot make a read-only folder")
    bind = subprocess.run([mount, "--bind", str(folder), str(folder)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"running as root and cannot bind-mount: {bind.stderr.decode().strip()}")
    try:
        ro = subprocess.run(
            [mount, "-o", "remount,ro,bind", str(folder)], capture_output=True, text=True
        )
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only: {ro.stderr.strip()}")
        yield folder
    finally:
        subprocess.run([umount, str(folder)], check=True)


@contextmanager
def full_filesystem(folder: Path, size: str = "64k") -> Iterator[Path]:
    """A tiny tmpfs mounted on ``folder``: writes beyond ``size`` fail with ENOSPC."""
    mount = shutil.which("mount")
    umount = shutil.which("umount")
    if os.geteuid() != 0 or not mount or not umount:
        pytest.skip("needs root and mount(8) to make a small file system")
    made = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {made.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run([umount, str(folder)], check=True)
