"""The CLI contract, for every command the Typer app registers (new ones are covered as added).

A user's mistake (no arguments, an unknown option or command, a wrongly typed value)
prints exactly one ``error:`` line on stderr and exits 2; ``--help`` exits 0; nothing
prints a traceback; the exit code of the command comes back out of ``main()`` (3 for a
diverged trial, 130 for Ctrl-C). The bulk runs in-process through ``main(argv)``; a few
run the real console script to prove the entry point.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main

from fashion_tune.cli import app
from tests.cli_helpers import Result, run_main
from tests.cli_helpers import empty_cwd_fixture as empty_cwd_fixture
from tests.conftest import tiny_overrides

SCRIPT = Path(sys.executable).with_name("fashion-tune")


@dataclass(frozen=True)
class Cmd:
    path: tuple[str, ...]
    command: object  # typer's click command or group

    @property
    def is_group(self) -> bool:
        return bool(getattr(self.command, "commands", None))

    def __str__(self) -> str:
        return " ".join(self.path) or "(root)"


def _walk(command: object, path: tuple[str, ...] = ()) -> list[Cmd]:
    out = [Cmd(path, command)]
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        out += _walk(sub, (*path, name))
    return out


ALL = _walk(typer.main.get_command(app))
LEAVES = [c for c in ALL if not c.is_group]
GROUPS = [c for c in ALL if c.is_group]


def _params(cmd: Cmd) -> list:
    return list(getattr(cmd.command, "params", []))


def _placeholders(cmd: Cmd) -> list[str]:
    """A value for each required argument, so parsing reaches the options."""
    return [
        "placeholder"
        for p in _params(cmd)
        if p.param_type_name == "argument" and getattr(p, "required", False)
    ]


def _numeric_option(cmd: Cmd) -> str | None:
    for p in _params(cmd):
        if p.param_type_name != "option" or getattr(p, "is_flag", False):
            continue
        bare = p.bare_type() if hasattr(p, "bare_type") else getattr(p.type, "name", "")
        if bare in ("int", "float", "integer"):
            return str(p.opts[0])
    return None


def assert_usage_error(r: Result, *fragments: str) -> None:
    assert r.code == 2, (r.code, r.out, r.err)
    assert "Traceback" not in r.out + r.err, r.err
    assert len(r.error_lines) == 1, r.err
    for frag in fragments:
        assert frag in r.error_lines[0], r.error_lines[0]


def test_every_registered_command_is_enumerated() -> None:
    names = {str(c) for c in ALL}
    for expected in ("data prepare", "data inspect", "trial", "search", "sample", "report"):
        assert expected in names, names


# -- every command: --help, no arguments, an unknown option, a wrongly typed value ----------
@pytest.mark.parametrize("cmd", ALL, ids=str)
def test_help_exits_0(cmd: Cmd, capsys: pytest.CaptureFixture[str]) -> None:
    r = run_main(capsys, *cmd.path, "--help")
    assert r.code == 0, r.err
    assert "Usage" in r.out and "Traceback" not in r.out + r.err
    assert not r.error_lines


@pytest.mark.parametrize("cmd", ALL, ids=str)
def test_no_arguments_is_one_error_line(
    cmd: Cmd, capsys: pytest.CaptureFixture[str], empty_cwd: Path
) -> None:
    r = run_main(capsys, *cmd.path)
    assert_usage_error(r)
    if cmd.is_group:  # like git / click: the help, then what is missing
        assert "Usage" in r.out and "missing command" in r.error_lines[0]
    assert list(empty_cwd.iterdir()) == [], "a failed command left files behind"


@pytest.mark.parametrize("cmd", ALL, ids=str)
def test_unknown_option_is_one_error_line(
    cmd: Cmd, capsys: pytest.CaptureFixture[str], empty_cwd: Path
) -> None:
    r = run_main(capsys, *cmd.path, *_placeholders(cmd), "--no-such-option")
    assert_usage_error(r, "--no-such-option", f"{' '.join(('fashion-tune', *cmd.path))} --help")


@pytest.mark.parametrize("cmd", GROUPS, ids=str)
def test_unknown_command_is_one_error_line(
    cmd: Cmd, capsys: pytest.CaptureFixture[str], empty_cwd: Path
) -> None:
    assert_usage_error(run_main(capsys, *cmd.path, "no-such-command"), "no-such-command")


@pytest.mark.parametrize("value", [["abc"], []], ids=["wrong-type", "no-value"])
@pytest.mark.parametrize("cmd", LEAVES, ids=str)
def test_bad_option_value_is_one_error_line(
    cmd: Cmd, value: list[str], capsys: pytest.CaptureFixture[str], empty_cwd: Path
) -> None:
    option = _numeric_option(cmd)
    if option is None:
        pytest.skip(f"{cmd} has no numeric option")
    r = run_main(capsys, *cmd.path, *_placeholders(cmd), option, *value)
    assert_usage_error(r, option)


# -- the real console script ----------------------------------------------------------------
def _script(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    assert SCRIPT.exists(), f"the console script {SCRIPT} is not installed"
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        ([], 2, "missing command"),
        (["trial", "--kimg", "abc"], 2, "--kimg"),
        (["data"], 2, "missing command"),
        (["report"], 2, "experiment"),
        (["no-such-command"], 2, "no-such-command"),
        (["--help"], 0, None),
    ],
)
def test_console_script_exit_codes(
    tmp_path: Path, args: list[str], code: int, fragment: str | None
) -> None:
    proc = _script(*args, cwd=tmp_path)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    if fragment is None:
        assert not errors
    else:
        assert len(errors) == 1 and fragment in errors[0], proc.stderr


def test_python_dash_m_returns_the_exit_code(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fashion_tune", "sample", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert proc.returncode == 2, proc.stderr
    assert "does not exist" in proc.stderr and "Traceback" not in proc.stderr


# -- exit codes of commands that ran: diverged (3), interrupted (130) ------------------------
def _sets(overrides: dict) -> list[str]:
    return [f"--set={k}={v}" for k, v in overrides.items()]


def test_diverged_trial_exits_3(fmnist_small: Path, tmp_path: Path) -> None:
    cfg = tiny_overrides(
        fmnist_small,
        **{
            "optim.lr_d": 1e30,
            "optim.lr_g": 1e30,
            "loss.gan": "wgan",
            "model.d_norm": "none",
            "schedule.total_kimg": 0.64,
        },
    )
    proc = _script("trial", *_sets(cfg), "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "trial diverged" in proc.stdout and "Traceback" not in proc.stderr


def test_ctrl_c_exits_130_and_the_trial_resumes(fmnist_small: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = tiny_overrides(fmnist_small, **{"schedule.total_kimg": 64})
    proc = subprocess.Popen(
        [str(SCRIPT), "trial", *_sets(cfg), "--out", str(run)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 240
        while not (run / "metrics.jsonl").exists():  # one tick checkpointed
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no tick within 240 s"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("interrupted")]
    assert len(lines) == 1 and "--resume" in lines[0], err
    ticks = [json.loads(x)["tick"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    # into the same folder without --resume: refused, the run is kept
    again = _script("trial", *_sets(cfg), "--out", str(run), cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr, again.stderr
    # the partial work is resumable: one more tick after the last checkpointed one
    resumed = _script(
        "trial",
        "--resume",
        str(run),
        "--out",
        str(run),
        "--kimg",
        str((ticks[-1] + 1) * 0.064),
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr
    after = [json.loads(x)["tick"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert after == list(range(1, after[-1] + 1)), after  # each tick once, none lost
    assert after[-1] > ticks[-1], after
