"""Chaos, small: benchmarks/chaos.py --smoke through its real path.

8 smallest-budget trials of a promotion-ASHA search on the embedded Ray; two trial workers
are SIGKILLed 4 s apart and the driver once (after 2 trials ended), then ``--resume``.
The script itself checks that every trial ended exactly once, that no finished trial was
trained again, that no checkpoint was lost, that the Optuna journal agrees with Ray, and
that the report renders; here each check must pass and the kills must have happened.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(900)
def test_chaos_smoke_keeps_every_trial_once(fmnist_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    env = {**os.environ, "MPLCONFIGDIR": str(tmp_path / "mpl")}
    proc = subprocess.run(
        [sys.executable, "benchmarks/chaos.py", "--smoke", "--data", str(fmnist_small),
         "--keep", str(tmp_path / "work"), "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=840,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    doc = json.loads(out.read_text())
    assert doc["kills"].get("driver") == 1, doc["kills"]
    assert doc["kills"].get("worker", 0) >= 1, doc["kills"]
    assert len(doc["checks"]) == 5
    failed = {name: detail for name, (ok, detail) in doc["checks"].items() if not ok}
    assert not failed, failed
    assert "PASS  1 every trial ended once" in proc.stdout
