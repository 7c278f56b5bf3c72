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
    import torch

    try:
        import ray

        ray_version = ray.__version__
    except ImportError:  # a GPU box carrying only what a training benchmark needs
        ray_version = "not installed"

    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    cores = os.cpu_count() or 0
    info = {
        "cpu": f"{model}, {cores} logical cores",
        "python": platform.python_version(),
        "ray": ray_version,
        "torch": torch.__version__,
        "os": platform.platform(),
        "bytecode": bytecode(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def print_header(title: str) -> dict[str, str]:
    """Print a benchmark's title, its machine and the load at the start; return the machine."""
    info = machine()
    print(title)
    for k, v in info.items():
        print(f"  {k:<10} {v}")
    print(f"  load avg   {loadavg()} (1/5/15 min) at the start")
    return info


def bytecode() -> str:
    """Whether imports can use cached bytecode: without it every new process compiles torch."""
    if sys.flags.dont_write_bytecode:
        return "not written (PYTHONDONTWRITEBYTECODE is set): new processes compile from source"
    return "written" + (f" under {sys.pycache_prefix}" if sys.pycache_prefix else "")


def loadavg() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


# -- --smoke: every benchmark's seconds-long run of its real code path -------------------------
SMOKE_IMAGES = 500  # Fashion-MNIST images in the smoke shard set
SMOKE_HELP = "a seconds-long run of the real code path with tiny sizes (its numbers mean nothing)"


def smoke_banner(script: str, what: str) -> None:
    """The header line of a --smoke run: what it shrank, and that its numbers mean nothing."""
    print(
        f"SMOKE RUN ({script} --smoke): {what}. Tiny sizes to check the code path: "
        "every number below is meaningless.",
        flush=True,
    )


# Smoke runs use one torch thread per process: on a busy machine (other jobs, more runnable
# threads than cores) two OpenMP threads spin-wait for each other and a step costs 10-15x the
# CPU time it does on one thread.
SMOKE_THREADS = 1


def smoke_shards(size: int = 32, images: int = SMOKE_IMAGES, with_reference: bool = True) -> Path:
    """A tiny Fashion-MNIST shard set (the first ``images`` records) for --smoke runs, with
    its metric reference unless told otherwise (~10 s on 2 cores, once).

    Kept under ``$FASHION_TUNE_CACHE/bench-data`` like the benchmarks' other generated
    inputs, so every smoke run after the first reuses it."""
    from fashion_tune.data.prepare import prepare
    from fashion_tune.data.sources import SourceOptions
    from fashion_tune.data.storage import cache_root

    out = cache_root() / "bench-data" / f"smoke-fmnist-{size}-{images}"
    out.parent.mkdir(parents=True, exist_ok=True)
    prepare("fashion-mnist", None, str(out), SourceOptions(size=size, limit=images))
    if with_reference:
        import torch

        from fashion_tune.metrics import reference

        threads = torch.get_num_threads()
        torch.set_num_threads(SMOKE_THREADS)
        try:
            reference.ensure(str(out), log=lambda _: None)
        finally:
            torch.set_num_threads(threads)
    return out
