"""Helpers shared by the search benchmarks: the machine, its load, a scoped env variable."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def machine() -> dict[str, str]:
    import ray
    import torch

    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = os.cpu_count() or 0
    return {
        "cpu": f"{model}, {cores} logical cores",
        "python": platform.python_version(),
        "ray": ray.__version__,
        "torch": torch.__version__,
        "os": platform.platform(),
        "bytecode": bytecode(),
    }


def bytecode() -> str:
    """Whether imports can use cached bytecode: without it every new process compiles torch."""
    if sys.flags.dont_write_bytecode:
        return "not written (PYTHONDONTWRITEBYTECODE is set): new processes compile from source"
    return "written" + (f" under {sys.pycache_prefix}" if sys.pycache_prefix else "")


def loadavg() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())
