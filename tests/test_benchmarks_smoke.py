"""No rotten benchmarks (issue 16): every script in benchmarks/ runs its --smoke path.

``--smoke`` is a seconds-long run of a benchmark's real code path with tiny sizes that
prints its table as usual (numbers meaningless, and the header says so). Every
``benchmarks/*.py`` not starting with ``_`` is collected, so a new benchmark without
``--smoke`` fails here. The smoke runs share one tiny shard set and its metric
reference (``benchmarks/_bench_common.smoke_shards``, in this session's cache), so only
the first run that needs it pays for it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
# run by a test of their own with stronger checks (not twice)
COVERED = {"chaos.py": "tests/test_chaos.py"}
SCRIPTS = sorted(
    p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_") and p.name not in COVERED
)
TIMEOUT = 300

# per script, regexes (multiline) its smoke output must match: a line of its table. A script
# not listed (a new one) must print "SMOKE RUN" and exit 0; add its table line here.
EXPECTED: dict[str, list[str]] = {
    "symmetrize.py": [r"^\| inversion \(\d+ steps\) \| ", r"^\| pixel-mirror average \| "],
    "data_loading.py": [
        r"^\| FM 32px L \| \(a\) \| ShardBatches \| main \| (\*\*)?[\d,]+(\*\*)? \|",
        r"^\| JPEG 64px RGB \| \(b\) \| ImageFolder",
        r"^\| FM 32px L \| [\d.,]+x (met|MISSED) \|",
    ],
    "fashiongan_fabric.py": [
        r"^\| map \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| 1?[\d.]+ \|",
        r"^\| control \| 0\.125 \| ",  # the fabric-blind control scores exactly chance
        r"^targets for gram \(",
        r"^\| code \| ",
        r"^\| ceiling: each fabric.s own garment, cut elsewhere \| [\d.]+ \| [\d.]+ \|",
    ],
    "gpu_packing.py": [r"^\| 2 \| [\d.]+ \| [\d,]+ \| [\d,]+ \|"],
    "metric_inception.py": [r"^\| new fd \(the objective\) \| (-?[\d.]+|nan) \|"],
    "metric_sanity.py": [r"^\| held-out reals \| [\d.]+ \|", r"^(PASS|FAIL)  new fd:"],
    "record_curves.py": [
        r"^\| 0\.\d+ \| ",  # a tick of the tick-to-tick noise table
        r"^\| [01] \| (dcgan|resnet) \| [\d.]+ \| ",  # a config of the sampling noise table
    ],
    "reference_startup.py": [r"^\| now, set made by `data prepare` \(reference inside\) \| \d+ \|"],
    "replay.py": [r"^\| promotion / compute \| [\d.]+ \|", r"^\| fifo \| 1\.00 \|"],
    "replay_vs_live.py": [r"^\| 0 \| dcgan \| [\d.]+ \| \d+ \| \d+ \|"],
    "search_efficiency.py": [r"^\| promotion / compute \| 2 \| ", r"^\| [\d.]+ \| 2 \| 1 \| 2 \|"],
    "search_live.py": [r"^\| full \| \d+ \| ", r"^\| asha-1 \| \d+ \| "],
    "search_overhead.py": [r"^\| reuse \| [\d.]+ \| ", r"^\| no Ray \| [\d.]+ \| "],
    "training_speed.py": [r"^\| 32 px, like-for-like \| [\d,]+ \| [\d,]+ \| [\d.]+x"],
}


@pytest.fixture
def smoke_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """This session's isolated cache (conftest), a private matplotlib folder, a private
    temp root for an embedded Ray (short: Ray's socket paths must fit), and one BLAS /
    OpenMP thread per process: with more runnable threads than cores (two cores, other
    jobs) two threads spin-wait for each other and cost several times the CPU of one."""
    ray_temp = tempfile.mkdtemp(prefix="ftb-")  # mode 0700, as ray_private wants
    (tmp_path / "mpl").mkdir()
    env = {
        **os.environ,
        "MPLCONFIGDIR": str(tmp_path / "mpl"),
        "FASHION_TUNE_RAY_TEMP": ray_temp,
        "RAY_AUTH_MODE": "disabled",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    env.pop("RAY_ADDRESS", None)  # never join a cluster someone left running
    yield env
    shutil.rmtree(ray_temp, ignore_errors=True)


def test_every_listed_benchmark_exists() -> None:
    """The expectations name real scripts (a renamed one must not silently drop its check)."""
    assert set(EXPECTED) <= set(SCRIPTS), set(EXPECTED) - set(SCRIPTS)


@pytest.mark.timeout(TIMEOUT + 30)
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_smoke(script: str, smoke_env: dict[str, str]) -> None:
    source = (BENCHMARKS / script).read_text()
    assert "--smoke" in source, f"benchmarks/{script} has no --smoke run (issue 16)"
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, str(BENCHMARKS / script), "--smoke"],
            cwd=ROOT,
            env=smoke_env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"{script} --smoke ran over {TIMEOUT} s:\n{out[-3000:]}")
    took = time.perf_counter() - t0
    tail = f"{script} --smoke ({took:.0f} s):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, tail
    assert "SMOKE RUN" in proc.stdout, tail  # the header says the numbers mean nothing
    for pattern in EXPECTED.get(script, []):
        assert re.search(pattern, proc.stdout, re.MULTILINE), f"no line /{pattern}/ in {tail}"
