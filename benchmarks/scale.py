"""A search at the scale it exists for (issue 16): 1,000 real trials, and the scheduler at 10,000.

Two parts, each against a baseline measured in the same run:

1. **The scheduler alone** (``benchmarks/replay.py``): ``PromotionAsha`` replayed against
   synthetic copies of the recorded learning curves (each copy's fd scaled by its own
   factor, so configs differ) at 100 / 1,000 / 10,000 trials on 16 simulated workers, with
   the time of every ``on_trial_result`` and ``choose_trial_to_run`` call; Ray's stopping
   ASHA and FIFO in the same replay are the baselines (Ray calls each of these once per
   controller step).
2. **Live searches** of ``--base`` (100) and ``--trials`` (1,000) real trials on the
   embedded Ray: the real trainable at the smallest budget the space schema allows that
   still has 2 ticks (a DCGAN of width 8, 2 ticks of 32 images, 64 scored samples),
   promotion ASHA, Optuna TPE, the journal, the finished ledger, as ``fashion-tune search``
   runs them (each size in a fresh process). Printed side by side:

   * wall time / theoretical minimum, the minimum being the sum of every trial's own time
     in the trainable (Ray's ``time_total_s``: setup, training, evaluation, checkpoint) over
     the slots (``max_concurrent``), Ray's "bookkeeping overhead" method;
   * driver RSS at start (the first controller step: Ray and torch loaded), middle and end
     of the search (psutil, sampled every 2 s of controller steps);
   * driver time per controller step (a step includes Ray's wait for events) in the
     scheduler, the searcher (TPE's suggest and the journal), Ray's experiment-state
     writes, our scheduler file and the finished ledger;
   * TPE's suggest latency at trials 10 / 100 / 1,000;
   * the Optuna journal's size and the time to load it (``optuna.load_study``);
   * ``fashion-tune report`` time and page size.

Run: ``python benchmarks/scale.py`` (about an hour on 2 cores; ``--replay-only`` takes a
minute or two), ``--smoke`` for a seconds-long check of the whole path. Results:
benchmarks/RESULTS.md, "Scale".
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parents[1]

from _bench_common import loadavg, machine  # noqa: E402

# the smallest trial the schema allows with 2 ticks (and a metric that means something)
TINY_SPACE = """\
name: {name}
description: Scale benchmark (benchmarks/scale.py).
objective: {{metric: fd, mode: min}}
fixed:
  data.batch_size: 16
  model.arch: dcgan
  model.z_dim: 16
  model.g_width: 8
  model.d_width: 8
  schedule.total_kimg: 0.064
  schedule.tick_kimg: 0.032
  metrics.num_samples: 64
  metrics.kid_subset_size: 32
  metrics.kid_subsets: 2
  runtime.threads: 1
  runtime.device: cpu
params:
  optim.lr_g: {{loguniform: [1.0e-4, 2.0e-3]}}
  optim.lr_d: {{loguniform: [1.0e-4, 2.0e-3]}}
  loss.symmetry: {{choice: [none, consistency, pixel]}}
  loss.lambda_sym: {{loguniform: [0.05, 2.0], when: {{loss.symmetry: [consistency, pixel]}}}}
points:
  - {{optim.lr_g: 2.0e-4, optim.lr_d: 2.0e-4, loss.symmetry: none}}
scheduler: {{type: asha, budget: kimg, grace_kimg: 0.032, reduction_factor: 2, smooth: 1}}
searcher: {{type: optuna, seed: 0}}
num_samples: {trials}
max_concurrent: {slots}
resources: {{cpu: 1, gpu: 0}}
"""


# -- 1. the scheduler alone, replayed ----------------------------------------------------------
class Timed:
    """Wraps a scheduler and times the two calls Ray makes every controller step."""

    def __init__(self, inner: Any, times: dict[str, list[float]]) -> None:
        self.inner, self.times = inner, times

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self.inner, name)
        if name not in ("on_trial_result", "choose_trial_to_run"):
            return fn

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.times[name].append(time.perf_counter() - t0)

        return timed


def synthetic_curves(n: int, seed: int = 0) -> Any:
    """``n`` configs: the recorded curves in turn, each copy's fd scaled by its own factor."""
    from replay import Curves, load_curves

    base = load_curves()
    rng = random.Random(seed)
    out = []
    for i in range(n):
        c = base.curves[i % len(base)]
        f = math.exp(rng.gauss(0, 0.1))
        out.append(c.__class__(**{**c.__dict__, "index": i, "fd": tuple(x * f for x in c.fd)}))
    return Curves(tuple(out), base.ref_gflop_per_kimg, base.meta)


def replay_costs(sizes: list[int], workers: int) -> list[dict[str, Any]]:
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler
    from replay import replay

    from fashion_tune.search.promotion import PromotionAsha

    makers: dict[str, Callable[[Any], Any]] = {
        "promotion ASHA (ours)": lambda c: PromotionAsha(
            "compute", "fd", "min", grace=2.0, reduction_factor=2, smooth=2
        ),
        "Ray's stopping ASHA": lambda c: AsyncHyperBandScheduler(
            time_attr="compute",
            metric="fd",
            mode="min",
            max_t=c.max_compute,
            grace_period=2.0,  # type: ignore[arg-type]
            reduction_factor=2,
        ),
        "FIFO": lambda c: FIFOScheduler(),
    }
    rows = []
    for n in sizes:
        curves = synthetic_curves(n)
        order = list(range(n))
        random.Random(1).shuffle(order)
        for label, make in makers.items():
            times: dict[str, list[float]] = defaultdict(list)
            t0 = time.perf_counter()
            res = replay(curves, lambda m=make, c=curves, t=times: Timed(m(c), t), workers, order)
            wall = time.perf_counter() - t0
            calls = times["on_trial_result"] + times["choose_trial_to_run"]
            rows.append(
                {
                    "trials": n,
                    "scheduler": label,
                    "steps": len(calls),
                    "mean_ms": 1e3 * statistics.fmean(calls),
                    "p99_ms": 1e3 * sorted(calls)[int(0.99 * (len(calls) - 1))],
                    "result_ms": 1e3 * statistics.fmean(times["on_trial_result"]),
                    "choose_ms": 1e3 * statistics.fmean(times["choose_trial_to_run"]),
                    "decide_s": sum(calls),
                    "replay_s": wall,
                    "finished": sum(t.status == "finished" for t in res.trials),
                }
            )
            r = rows[-1]
            print(
                f"  {n:>6} trials  {label:<22} {r['steps']:>7} calls  mean {r['mean_ms']:.3f} ms"
                f"  p99 {r['p99_ms']:.3f} ms  (result {r['result_ms']:.3f}, choose "
                f"{r['choose_ms']:.3f})  deciding {r['decide_s']:.1f} s of {wall:.1f} s",
                flush=True,
            )
    return rows


# -- 2. a live search, in a fresh process ---------------------------------------------------------
PROFILED = {
    "scheduler": [
        ("fashion_tune.search.promotion", "PromotionAsha", "on_trial_result"),
        ("fashion_tune.search.promotion", "PromotionAsha", "choose_trial_to_run"),
        ("fashion_tune.search.promotion", "PromotionAsha", "on_trial_add"),
        ("fashion_tune.search.promotion", "PromotionAsha", "on_trial_complete"),
        ("fashion_tune.search.promotion", "PromotionAsha", "on_trial_remove"),
    ],
    "searcher": [
        ("fashion_tune.search.searcher", "PrunedAwareOptunaSearch", "suggest"),
        ("fashion_tune.search.searcher", "PrunedAwareOptunaSearch", "on_trial_result"),
        ("fashion_tune.search.searcher", "PrunedAwareOptunaSearch", "on_trial_complete"),
    ],
    "experiment state": [
        ("ray.tune.execution.tune_controller", "TuneController", "checkpoint"),
    ],
    "scheduler file": [
        ("fashion_tune.search.callbacks", "SchedulerStateCallback", "_write"),
    ],
    "ledger": [
        ("fashion_tune.search.callbacks", "FinishedLedger", "on_trial_complete"),
    ],
    "step": [
        ("ray.tune.execution.tune_controller", "TuneController", "step"),
    ],
}


def _profile(stats: dict[str, list[float]], suggest: list[float], rss: list[tuple]) -> None:
    """Time the driver's calls by patching their classes in this process (nothing pickled)."""
    import importlib

    import psutil

    proc = psutil.Process()
    for group, targets in PROFILED.items():
        for module, cls_name, meth in targets:
            cls = getattr(importlib.import_module(module), cls_name)
            orig = getattr(cls, meth)

            def wrapper(*a: Any, _o: Any = orig, _g: str = group, _m: str = meth, **k: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return _o(*a, **k)
                finally:
                    dt = time.perf_counter() - t0
                    stats[_g].append(dt)
                    if _m == "suggest":
                        suggest.append(dt)
                    if _g == "step":
                        ctl = a[0]
                        done = sum(t.status == "TERMINATED" for t in ctl.get_trials())
                        if not rss or time.time() - rss[-1][0] > 2:  # Ray runs by now
                            rss.append((time.time(), done, proc.memory_info().rss))

            setattr(cls, meth, wrapper)


def live_one(trials: int, slots: int, data: str, workdir: Path) -> dict[str, Any]:
    """One search of ``trials`` tiny trials (run in its own process by ``live``)."""
    import psutil

    from fashion_tune.search.searcher import journal_path
    from fashion_tune.search.space import load_space
    from fashion_tune.search.tuner import SearchOptions, run_search

    name = f"scale{trials}"
    space_file = workdir / f"{name}.yaml"
    space_file.write_text(TINY_SPACE.format(name=name, trials=trials, slots=slots))
    stats: dict[str, list[float]] = defaultdict(list)
    suggest: list[float] = []
    rss: list[tuple] = []  # (time, trials ended, RSS), from the first controller step on
    _profile(stats, suggest, rss)
    space = load_space(str(space_file))
    storage = workdir / "results"
    opts = SearchOptions(storage=str(storage), data=data, verbose=0, max_failures=1)
    t0 = time.perf_counter()
    grid = run_search(space, opts)
    wall = time.perf_counter() - t0
    rss.append((time.time(), trials, psutil.Process().memory_info().rss))
    own = [float(r.metrics.get("time_total_s", 0.0)) for r in grid if r.metrics]
    exp = storage / name

    import optuna

    from fashion_tune.search.searcher import load_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    t1 = time.perf_counter()
    study = load_study(exp, name)
    states = [t.state.name for t in study.get_trials(deepcopy=False)] if study else []
    journal_s = time.perf_counter() - t1
    steps = len(stats["step"])
    t2 = time.perf_counter()
    rep = subprocess.run(
        [sys.executable, "-m", "fashion_tune", "report", str(exp), "--out", str(workdir / "rep")],
        capture_output=True,
        text=True,
    )
    report_s = time.perf_counter() - t2
    page = workdir / "rep" / "index.html"
    mid = min(rss, key=lambda r: abs(r[1] - trials / 2))
    return {
        "trials": trials,
        "slots": slots,
        "results": len(own),
        "wall_s": wall,
        "min_s": sum(own) / slots,
        "rss_mb": [rss[0][2] / 2**20, mid[2] / 2**20, rss[-1][2] / 2**20],
        "steps": steps,
        "per_step_ms": {g: 1e3 * sum(v) / max(steps, 1) for g, v in stats.items()},
        "total_s": {g: sum(v) for g, v in stats.items()},
        "suggest_ms": {str(i): 1e3 * suggest[i - 1] for i in (10, 100, 1000) if i <= len(suggest)},
        "journal_mb": journal_path(str(exp)).stat().st_size / 2**20,
        "journal_load_s": journal_s,
        "journal_states": {s: states.count(s) for s in sorted(set(states))},
        "report_s": report_s,
        "report_ok": rep.returncode == 0,
        "report_error": rep.stderr[-500:] if rep.returncode else "",
        "page_kb": page.stat().st_size / 1024 if page.exists() else 0.0,
    }


def live(trials: int, slots: int, data: str, keep: Path | None) -> dict[str, Any]:
    workdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix=f"scale{trials}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "result.json"
    cmd = [sys.executable, __file__, "--live-one", str(trials), "--slots", str(slots)]
    cmd += ["--data", data, "--workdir", str(workdir), "--json", str(out)]
    with open(workdir / "search.log", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = (workdir / "search.log").read_text()[-3000:]
        raise SystemExit(f"the {trials}-trial search failed (log {workdir}/search.log):\n{tail}")
    return json.loads(out.read_text())


def print_live(rows: list[dict[str, Any]]) -> None:
    cols = [f"{r['trials']} trials" for r in rows]
    print(f"\n  {'':<38}" + "".join(f"{c:>16}" for c in cols))

    def line(label: str, values: list[str]) -> None:
        print(f"  {label:<38}" + "".join(f"{v:>16}" for v in values))

    line("trials with results", [str(r["results"]) for r in rows])
    line("wall time (s)", [f"{r['wall_s']:.0f}" for r in rows])
    line("theoretical minimum (s)", [f"{r['min_s']:.0f}" for r in rows])
    line("wall / minimum (target <= 1.15)", [f"{r['wall_s'] / r['min_s']:.2f}" for r in rows])
    line("driver RSS start/mid/end (MB)", ["/".join(f"{x:.0f}" for x in r["rss_mb"]) for r in rows])
    line(
        "driver RSS growth (MB, target <= 300)",
        [f"{r['rss_mb'][2] - r['rss_mb'][0]:.0f}" for r in rows],
    )
    line("controller steps", [str(r["steps"]) for r in rows])
    for g in ("step", "scheduler", "searcher", "experiment state", "scheduler file", "ledger"):
        line(f"  per step: {g} (ms)", [f"{r['per_step_ms'].get(g, 0):.2f}" for r in rows])
        line(f"  total: {g} (s)", [f"{r['total_s'].get(g, 0):.1f}" for r in rows])
    for i in ("10", "100", "1000"):
        line(
            f"TPE suggest at trial {i} (ms)",
            [f"{r['suggest_ms'].get(i, math.nan):.1f}" for r in rows],
        )
    line("journal size (MB)", [f"{r['journal_mb']:.2f}" for r in rows])
    line("journal load (s)", [f"{r['journal_load_s']:.2f}" for r in rows])
    line(
        "journal states",
        [",".join(f"{k[:4]} {v}" for k, v in r["journal_states"].items()) for r in rows],
    )
    line(
        "report (s, target <= 60)",
        [f"{r['report_s']:.1f}" + ("" if r["report_ok"] else " FAILED") for r in rows],
    )
    line("report page (KB)", [f"{r['page_kb']:.0f}" for r in rows])
    for r in rows:
        if r["report_error"]:
            print(f"  report of {r['trials']} trials failed: {r['report_error']}")


def prepare_data(out: Path) -> str:
    if not (out / "manifest.json").exists():
        subprocess.run(
            [sys.executable, "-m", "fashion_tune", "data", "prepare", "fashion-mnist",
             "--out", str(out), "--limit", "2000"],
            check=True,
        )  # fmt: skip
    return str(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=1000, help="the large live search")
    ap.add_argument("--base", type=int, default=100, help="a smaller search beside it (0: none)")
    ap.add_argument("--slots", type=int, default=2, help="concurrent trials (1 CPU each)")
    ap.add_argument("--replay", type=int, nargs="*", default=[100, 1000, 10000])
    ap.add_argument("--workers", type=int, default=16, help="simulated workers of the replay")
    ap.add_argument("--replay-only", action="store_true")
    ap.add_argument("--skip-replay", action="store_true")
    ap.add_argument("--data", help="a shard set (default: 2,000 Fashion-MNIST images, made once)")
    ap.add_argument("--keep", type=Path, help="keep the searches under this folder")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    ap.add_argument("--smoke", action="store_true", help="seconds-long run of the whole path")
    ap.add_argument("--live-one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.live_one:  # the child process of one live search
        res = live_one(args.live_one, args.slots, args.data, args.workdir)
        args.json.write_text(json.dumps(res, indent=1))
        return
    if args.smoke:  # one live search of 4 trials on the shared tiny smoke set
        args.trials, args.base, args.replay, args.workers = 4, 0, [50, 200], 4
    print("# scale: " + ("SMOKE RUN, numbers meaningless" if args.smoke else "full run"))
    print(f"machine: {machine()}; load average {loadavg()}")
    out: dict[str, Any] = {"machine": machine()}
    if not args.skip_replay:
        print(f"\n## the scheduler alone: replayed, {args.workers} simulated workers")
        out["replay"] = replay_costs(args.replay, args.workers)
    if not args.replay_only:
        cache = Path(os.environ.get("FASHION_TUNE_CACHE", Path.home() / ".cache/fashion-tune"))
        if args.data:
            data = args.data
        elif args.smoke:
            from _bench_common import smoke_shards

            data = str(smoke_shards())
        else:
            data = prepare_data(cache / "bench-fmnist-2000")
        rows = []
        for n in (args.base, args.trials) if args.base else (args.trials,):
            print(f"\n## live search of {n} trials ({args.slots} slots) ...", flush=True)
            keep = args.keep / f"scale{n}" if args.keep else None
            rows.append(live(n, args.slots, data, keep))
        out["live"] = rows
        print_live(rows)
    print(f"\nload average at the end {loadavg()}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
