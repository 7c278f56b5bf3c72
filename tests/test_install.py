"""The declared dependencies tell the truth: installing the wheel without the lock gets
versions the search runs with.

``pip install`` of the wheel (cluster/aws.yaml, any user without uv) ignores uv.lock and
takes the newest versions pyproject.toml admits. fashion_tune/search/ray_private.py refuses
any Ray or Optuna outside ``WRITTEN_FOR``; a range in pyproject.toml wider than that let
pip resolve optuna 5.1.0 and the search refused to start. Two checks:

* static (no network): each ``WRITTEN_FOR`` package's specifier in pyproject.toml admits
  its ``x.y.0`` and no version outside its prefix;
* resolve (needs PyPI): ``uv pip compile pyproject.toml`` resolves the declared ranges
  without the lock, newest first as pip does, for the cluster's Python (3.11) and the
  floor of ``requires-python`` (3.10), with and without the ``inception`` extra, and the
  resolved Ray and Optuna pass ``ray_private.check_versions``. Without a registry this
  fails with a message saying so (CI has one); uv's cache makes each resolve take seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from fashion_tune.search import ray_private

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
RESOLVE_TIMEOUT_S = 300  # a cold cache or a slow registry; a warm resolve takes seconds
# settings that would make uv resolve differently from a plain `pip install`
UV_ENV_DROPPED = (
    "UV_CONSTRAINT",
    "UV_OVERRIDE",
    "UV_BUILD_CONSTRAINT",
    "UV_EXCLUDE_NEWER",
    "UV_RESOLUTION",
    "UV_PRERELEASE",
    "UV_OFFLINE",
    "UV_NO_INDEX",
    "UV_FIND_LINKS",
)


def _declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    return {canonicalize_name(r.name): r for r in reqs}


def _next_minor(prefix: str) -> str:
    major, minor = (int(p) for p in prefix.rstrip(".").split("."))
    return f"{major}.{minor + 1}"


def _outside_probes(prefix: str, spec: SpecifierSet) -> list[str]:
    """Versions just outside ``prefix`` ("5.0." -> "5.1.0", "4.999", "5.1.0rc1", ...),
    plus the neighbours of every version the specifier names: a specifier admits only
    versions with the prefix iff it admits none of these (its admitted set is a union
    of intervals whose ends are the versions it names)."""
    major, minor = (int(p) for p in prefix.rstrip(".").split("."))
    probes = [
        f"{major}.{minor + 1}.0",
        f"{major}.{minor + 1}.0.dev0",
        f"{major}.{minor + 1}.0a1",
        f"{major}.{minor + 1}.0rc1",
        f"{major}.{minor + 1}.0.post1",
        f"{major}.{minor + 1}.1",
        f"{major + 1}.0.0",
        f"{major + 1}.0.0rc1",
        f"{major}.{minor - 1}.999" if minor else "0",
        f"{major - 1}.999.999" if major else "0",
        f"{major}.{minor}.0.dev0",
        "0",
        "9999",
    ]
    for s in spec:
        v = s.version.rstrip(".*")
        rel = [int(x) for x in Version(v).release] + [0, 0]
        a, b, c = rel[:3]
        for cand in (
            v,
            f"{a}.{b}.{c + 1}",
            f"{a}.{b + 1}.0",
            f"{a + 1}.0.0",
            f"{v}.post1",
            f"{v}.dev0",
            f"{v}rc1",
            f"{a}.{b}.{c}.1",
            f"{a}.{b - 1}.999" if b else "0",
        ):
            probes.append(cand)
    # outside by value, not by spelling: "5.0" and "5.0rc1" are 5.0.0 and 5.0.0rc1
    return sorted(
        {p for p in probes if (*Version(p).release, 0)[:2] != (major, minor)}, key=Version
    )


@pytest.mark.parametrize("name", sorted(ray_private.WRITTEN_FOR))
def test_declared_range_is_exactly_what_ray_private_accepts(name: str) -> None:
    prefix = ray_private.WRITTEN_FOR[name]
    declared = _declared()
    assert name in declared, f"{name} is not a dependency in pyproject.toml"
    spec = declared[name].specifier
    first = prefix + "0"
    assert spec.contains(first, prereleases=True), (
        f"pyproject.toml's {name}{spec} excludes {first}, which ray_private.py is written for"
    )
    admitted = [p for p in _outside_probes(prefix, spec) if spec.contains(p, prereleases=True)]
    assert not admitted, (
        f"pyproject.toml's {name}{spec} admits {admitted}, but ray_private.WRITTEN_FOR "
        f"accepts only {prefix}x: pip would install a {name} the search refuses; "
        f"bound it, e.g. {name}>={first},<{_next_minor(prefix)}"
    )


def _uv() -> str:
    pinned = ROOT / ".tools" / "bin" / "uv"  # scripts/setup.sh's copy
    uv = str(pinned) if pinned.exists() else shutil.which("uv")
    if uv is None:
        pytest.fail("uv not found (.tools/bin/uv or on PATH): run scripts/setup.sh")
    return uv


def _resolve(python: str, extras: tuple[str, ...]) -> dict[str, str]:
    """``pip install .``'s versions for ``python`` on Linux x86-64, without uv.lock."""
    cmd = [
        _uv(),
        "pip",
        "compile",
        str(ROOT / "pyproject.toml"),
        "--no-config",  # no [tool.uv] / uv.toml settings: only what the wheel declares
        "--python-version",
        python,
        "--python-platform",
        "x86_64-unknown-linux-gnu",  # the cluster's nodes
        "--resolution",
        "highest",
        "--no-python-downloads",
        "--no-header",
        "--no-annotate",
        "--quiet",
        *(a for e in extras for a in ("--extra", e)),
    ]
    env = {k: v for k, v in os.environ.items() if k not in UV_ENV_DROPPED}
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT_S, env=env, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"resolving pyproject.toml's dependencies took over {RESOLVE_TIMEOUT_S} s: "
            "this test needs a reachable package registry (PyPI or UV_INDEX_URL)"
        )
    if proc.returncode != 0:
        pytest.fail(
            "could not resolve pyproject.toml's dependencies without the lock; this test "
            "needs a reachable package registry (PyPI or UV_INDEX_URL), or the declared "
            f"ranges conflict.\n$ {' '.join(cmd)}\n{proc.stderr[-4000:]}"
        )
    pins = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)", line)
        if m:
            pins[canonicalize_name(m[1])] = m[2]
    assert pins, f"no pins in uv's output:\n{proc.stdout}"
    return pins


@pytest.mark.parametrize("python", ["3.11", "3.10"])
@pytest.mark.parametrize("extras", [(), ("inception",)], ids=["base", "inception"])
def test_unlocked_install_gets_versions_the_search_accepts(
    python: str, extras: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    pins = _resolve(python, extras)
    wrong = {
        name: pins.get(name)
        for name, prefix in ray_private.WRITTEN_FOR.items()
        if not (pins.get(name) or "").startswith(prefix)
    }
    assert not wrong, (
        f"without the lock, Python {python} {list(extras)} resolves {wrong}, but "
        f"ray_private.WRITTEN_FOR accepts {ray_private.WRITTEN_FOR}: bound pyproject.toml"
    )
    # and the project's own check, on the resolved versions
    resolved = {n: pins[n] for n in ray_private.WRITTEN_FOR}
    monkeypatch.setattr(ray_private, "_versions", lambda: resolved)
    ray_private.check_versions()
