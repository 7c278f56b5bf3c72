"""Chaos: a search whose trial workers are SIGKILLed every ~20 s and whose driver dies once.

``fashion-tune search`` runs ``--trials`` (200) smallest-budget real trials (the space of
benchmarks/scale.py: promotion ASHA, Optuna TPE, the journal, the finished ledger) on the
embedded Ray, as a subprocess with a private Ray temp folder. Meanwhile this script

* SIGKILLs a random trial worker (a ``ray::ImplicitFunc`` process under the driver) every
  ``--every`` seconds (+-25%), during the first run and during the resumed one;
* SIGKILLs the driver once, after ``--driver-after`` of the trials ended (its embedded
  Ray's processes die with it, as on a crashed head), then runs the same command with
  ``--resume``.

Then it checks, and prints, that

1. every trial ended exactly once: Ray's saved state holds ``--trials`` trials, all
   TERMINATED, and each trial's ticks were recorded one by one, none twice;
2. no finished trial was retrained: a trial in the finished ledger when the driver died
   has the same records after the resume (a replayed ledger row aside);
3. no checkpoint was lost: every trial that trained has a checkpoint in its folder, and
   every finished trial's ledger tick has its checkpoint;
4. the Optuna journal agrees with Ray: COMPLETE = trials at their full budget, PRUNED =
   trials ended before it; FAIL only for Optuna trials asked after the last saved state;
5. ``fashion-tune report`` renders the experiment.

Exit 1 when a check fails. ``--smoke`` (tests/test_chaos.py): 8 trials, 2 worker kills
4 s apart, the driver after 2 trials ended. Results: benchmarks/RESULTS.md, "Chaos".
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]

from _bench_common import loadavg, machine  # noqa: E402
from scale import TINY_SPACE, prepare_data  # noqa: E402

LEDGER_DIR = "fashion_tune_finished"


def _rows(trial_dir: Path) -> list[dict[str, Any]]:
    path = trial_dir / "result.json"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _ledger(exp: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for p in sorted((exp / LEDGER_DIR).glob("*.json")):
        with contextlib.suppress(ValueError, OSError):  # one being renamed into place
            out[p.stem] = json.loads(p.read_text())
    return out


def _trial_workers(driver: int) -> list[Any]:
    import psutil

    try:
        family = psutil.Process(driver).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for p in family:
        with contextlib.suppress(psutil.Error):
            if p.cmdline() and p.cmdline()[0].startswith("ray::ImplicitFunc"):
                out.append(p)
    return out


def _ours(temp: Path) -> list[Any]:
    """Every process of this run's embedded Ray (found by its private temp folder)."""
    import psutil

    out = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(str(temp) in part for part in p.info["cmdline"] or []):
                out.append(p)
    return out


def _kill_all(procs: list[Any]) -> None:
    import psutil

    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=30)


class Chaos:
    def __init__(
        self, trials: int, every: float, driver_after: float, seed: int, work: Path, cap: int
    ):
        self.trials, self.every, self.driver_after = trials, every, driver_after
        self.cap = cap  # at most this many worker kills in all
        self.rng = random.Random(seed)
        self.work = work
        # the embedded Ray's private temp root: short, for Ray's socket paths
        self.temp = Path(tempfile.mkdtemp(prefix="ftc-", dir="/tmp"))
        self.kills: list[dict[str, Any]] = []
        self.exp = work / "results" / "chaos"

    def _worker_kills(self) -> int:
        return sum(k["what"] == "worker" for k in self.kills)

    def command(self, data: str, resume: bool) -> list[str]:
        space = self.work / "chaos.yaml"
        if not space.exists():
            space.write_text(TINY_SPACE.format(name="chaos", trials=self.trials, slots=2))
        cmd = [sys.executable, "-m", "fashion_tune", "search", str(space), "--data", data]
        cmd += ["--storage", str(self.work / "results"), "--max-failures", "4"]
        return cmd + (["--resume"] if resume else [])

    def run(self, data: str, resume: bool, kill_driver: bool, log: Any) -> int | None:
        """One driver run with worker kills; returns its exit code (None: we killed it)."""
        env = {**os.environ, "FASHION_TUNE_RAY_TEMP": str(self.temp)}
        proc = subprocess.Popen(
            self.command(data, resume), cwd=ROOT, env=env, stdout=log, stderr=log,
            start_new_session=True,
        )  # fmt: skip
        try:
            next_kill = time.monotonic() + self.every * self.rng.uniform(0.75, 1.25)
            while proc.poll() is None:
                time.sleep(0.2)
                if kill_driver and len(_ledger(self.exp)) >= self.driver_after:
                    family = [*_trial_workers(proc.pid), *_ours(self.temp)]
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    _kill_all(family + _ours(self.temp))
                    self.kills.append({"t": time.time(), "what": "driver"})
                    return None
                if time.monotonic() >= next_kill and self._worker_kills() < self.cap:
                    workers = _trial_workers(proc.pid)
                    if workers:
                        victim = self.rng.choice(workers)
                        with contextlib.suppress(Exception):
                            victim.kill()
                            self.kills.append({"t": time.time(), "what": "worker"})
                    next_kill = time.monotonic() + self.every * self.rng.uniform(0.75, 1.25)
            return proc.returncode
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            _kill_all(_ours(self.temp))


def check(exp: Path, trials: int, before: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The five checks of the module docstring; each a (passed, detail) pair."""
    out: dict[str, Any] = {}
    state_file = max(glob.glob(str(exp / "experiment_state-*.json")))
    state = json.loads(Path(state_file).read_text())
    statuses = {}
    for t, _ in state["trial_data"]:
        t = json.loads(t)
        statuses[t["trial_id"]] = t["status"]
    ledger = _ledger(exp)
    dup = []
    for tid in statuses:
        ticks = [r["tick"] for r in _rows(exp / f"trial_{tid}") if not r.get("replayed")]
        if ticks != list(range(1, len(ticks) + 1)):
            dup.append((tid, ticks))
    ended = all(s == "TERMINATED" for s in statuses.values())
    out["1 every trial ended once"] = (
        len(statuses) == trials and ended and not dup and len(ledger) == trials,
        f"{len(statuses)} trials in Ray's state ({Counter(statuses.values())}), "
        f"{len(ledger)} in the ledger, ticks recorded twice or skipped in {len(dup)}"
        + "".join(f"; {tid}: ticks {ticks}" for tid, ticks in dup[:3]),
    )
    retrained = [
        tid
        for tid, rows in before.items()
        if [r for r in _rows(exp / f"trial_{tid}") if not r.get("replayed")] != rows
    ]
    out["2 no finished trial retrained"] = (
        not retrained,
        f"{len(before)} finished before the driver died, {len(retrained)} retrained",
    )
    lost = []
    for tid in statuses:
        rows = [r for r in _rows(exp / f"trial_{tid}") if not r.get("replayed")]
        ckpts = list((exp / f"trial_{tid}").glob("checkpoint_*/checkpoint.pt"))
        if rows and not ckpts:
            lost.append(tid)
    out["3 no checkpoint lost"] = (
        not lost,
        f"{len(lost)} trials that trained have no checkpoint",
    )
    out.update(_journal_check(exp, ledger))
    return out


def _journal_check(exp: Path, ledger: dict[str, dict[str, Any]]) -> dict[str, Any]:
    import optuna

    from fashion_tune.search.searcher import load_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(exp, exp.name)
    states = Counter(t.state.name for t in study.get_trials(deepcopy=False)) if study else {}
    full = sum(e["result"].get("progress", 0) >= 1 - 1e-9 for e in ledger.values())
    early = len(ledger) - full
    ok = (
        states.get("COMPLETE", 0) == full
        and states.get("PRUNED", 0) + states.get("FAIL", 0) >= early
        and set(states) <= {"COMPLETE", "PRUNED", "FAIL"}
    )
    return {
        "4 journal agrees with Ray": (
            ok,
            f"Ray: {full} at full budget, {early} ended early; journal: {dict(states)}",
        )
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--every", type=float, default=20.0, help="seconds between worker kills")
    ap.add_argument("--driver-after", type=int, default=None, help="ended trials (default: 40%%)")
    ap.add_argument("--max-kills", type=int, default=10**6, help="worker kills in all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", help="a shard set (default: 2,000 Fashion-MNIST images, made once)")
    ap.add_argument("--keep", type=Path, help="keep the experiment under this folder")
    ap.add_argument("--json", type=Path, help="also write the checks here")
    ap.add_argument("--smoke", action="store_true", help="8 trials, 2 worker kills 4 s apart")
    args = ap.parse_args()
    if args.smoke:
        args.trials, args.every, args.driver_after = 8, 4.0, args.driver_after or 2
        args.max_kills = min(args.max_kills, 2)
    driver_after = args.driver_after or max(1, int(0.4 * args.trials))
    print("# chaos: " + ("SMOKE RUN" if args.smoke else "full run"))
    print(f"machine: {machine()}; load average {loadavg()}", flush=True)
    cache = Path(os.environ.get("FASHION_TUNE_CACHE", Path.home() / ".cache/fashion-tune"))
    data = args.data or prepare_data(cache / "bench-fmnist-2000")
    work = args.keep or Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    chaos = Chaos(args.trials, args.every, driver_after, args.seed, work, args.max_kills)
    t0 = time.monotonic()
    with open(work / "search.log", "w") as log:
        first = chaos.run(data, resume=False, kill_driver=True, log=log)
        if first is not None:
            raise SystemExit(f"the search ended ({first}) before the driver was killed")
        ledger = _ledger(chaos.exp)
        before = {tid: _rows(chaos.exp / f"trial_{tid}") for tid in ledger}
        print(f"driver killed after {time.monotonic() - t0:.0f} s with {len(before)} ended")
        rc = chaos.run(data, resume=True, kill_driver=False, log=log)
    wall = time.monotonic() - t0
    if rc != 0:
        tail = (work / "search.log").read_text()[-3000:]
        raise SystemExit(f"the resumed search failed ({rc}); log {work}/search.log:\n{tail}")
    shutil.rmtree(chaos.temp, ignore_errors=True)  # Ray's temp folders (ours all ended)
    results = check(chaos.exp, args.trials, before)
    rep = subprocess.run(
        [sys.executable, "-m", "fashion_tune", "report", str(chaos.exp), "--out",
         str(work / "report")],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    results["5 report renders"] = (
        rep.returncode == 0 and (work / "report" / "index.html").exists(),
        "exit 0" if rep.returncode == 0 else rep.stderr[-300:],
    )
    kills = Counter(k["what"] for k in chaos.kills)
    print(f"\n{args.trials} trials in {wall:.0f} s; killed {kills['worker']} trial workers and "
          f"the driver {kills['driver']} time(s); experiment {chaos.exp}")  # fmt: skip
    for name, (ok, detail) in results.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}: {detail}")
    print(f"load average at the end {loadavg()}")
    if args.json:
        doc = {"wall_s": wall, "kills": dict(kills), "checks": results, "trials": args.trials}
        args.json.write_text(json.dumps(doc, indent=1))
    if not all(ok for ok, _ in results.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
