"""Search efficiency, live (issue 4): ASHA against training every configuration in full.

The earlier measurement, on embedded Ray with 12 configs: ``benchmarks/search_efficiency.py``
is now the replay study over recorded learning curves (issue 10); this script keeps the live
comparison (it still uses ``kid`` and the issue-4 schedule) for a small-scale check. Since
issue 10 ``scheduler.type: asha`` is promotion ASHA with compute budgets; the issue-4 numbers
in RESULTS.md were measured with Ray's stopping ASHA in kimg (now ``asha-stop``).

K configurations are drawn once (Optuna's random sampler, seed 0) from a CPU-sized version of
``search_spaces/quick.yaml`` (the same parameters: arch, lr_g, lr_d, GAN loss, symmetry
variant and weight; widths 16, ``metrics.num_samples`` 500, ticks of 1 kimg). They are written
into the space YAML as ``points`` with ``num_samples: K``, so every run evaluates exactly the
same K configs, started in the same order, through ``fashion_tune.search.tuner.run_search`` on
the embedded local Ray (2 trials at a time, 1 CPU and 1 thread each):

full   FIFO scheduler: every config trained to the full budget (``schedule.total_kimg``).
asha   ASHA as fashion-tune sets it up (``time_attr`` kimg, grace 1 tick, reduction factor 3,
       max = the full budget, one bracket), repeated: with 2 trials running at once its
       verdicts depend on the order in which results arrive, so repeats can differ.

A trial's results do not depend on the run: same config, same seed, one thread on the CPU give
the same kid at the same kimg (the script checks this and prints the largest difference).

Compute is counted in kimg trained, and as trial-seconds (each tick's training + evaluation
time, from its ``img_per_s`` and ``eval_frac``): a ResNet kimg costs several DCGAN kimg, and
trial-seconds also grow with the machine's load. A Tune callback stamps every tick report as
the driver receives it; sorted by that time, the reports give the compute spent so far (the
sum of each trial's kimg increments) and the running best kid. For each run the script finds
the compute (and the wall time since run_search started) at which the running best kid first
gets within 5% (and, stricter, 1%) of

  * the final best kid of the full-budget run (the best over all its reports), and
  * the run's own final best kid (5%).

Target: ASHA reaches the full run's best (within 5%) with <= 1/3 of the full run's total
compute. Reports arriving while the other slot is mid-tick make the count up to ~1 tick low
for that slot; the wall-time column has no such error.

Run: ``.venv/bin/python benchmarks/search_live.py [--quick]`` (the full run takes
~10-15 min on 2 cores, --quick ~3 min). No timing or ratio is asserted. ``--smoke``: 2 configs
of 2 tiny ticks (widths 8, 64 images, 64 samples) on a 500-image set, one ASHA run; seconds
after Ray's start, to check the code path; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from _bench_common import (
    SMOKE_HELP,
    SMOKE_IMAGES,
    env,
    loadavg,
    machine,
    smoke_banner,
    smoke_shards,
)

from fashion_tune.data.prepare import prepare
from fashion_tune.data.sources import SourceOptions

ROOT = Path(__file__).resolve().parents[1]
CONCURRENCY = 2
TARGET = 1 / 3  # ASHA's compute to reach the full run's best (within 5%) / the full run's compute
WITHIN = 0.05
PARAMS: dict[str, Any] = {  # search_spaces/quick.yaml's parameters
    "model.arch": {"choice": ["dcgan", "resnet"]},
    "optim.lr_g": {"loguniform": [1.0e-4, 1.0e-3]},
    "optim.lr_d": {"loguniform": [1.0e-4, 1.0e-3]},
    "loss.gan": {"choice": ["ns", "hinge"]},
    "loss.symmetry": {"choice": ["none", "consistency", "adversarial", "pixel"]},
    "loss.lambda_sym": {
        "loguniform": [0.05, 2.0],
        "when": {"loss.symmetry": ["consistency", "adversarial", "pixel"]},
    },
}
FIXED: dict[str, Any] = {
    "model.g_width": 16,
    "model.d_width": 16,
    "metrics.num_samples": 500,
    "metrics.kid_subset_size": 250,
    "metrics.kid_subsets": 20,
    "runtime.threads": 1,
    "runtime.device": "cpu",
}


@dataclass(frozen=True)
class Plan:
    configs: int  # K
    total_kimg: float
    tick_kimg: float
    asha_runs: int
    grace_ticks: int = 1  # ASHA's grace period in ticks
    overrides: dict[str, Any] = field(default_factory=dict)  # of FIXED


FULL = Plan(configs=12, total_kimg=6.0, tick_kimg=1.0, asha_runs=3)
QUICK = Plan(configs=6, total_kimg=3.0, tick_kimg=1.0, asha_runs=1)
SMOKE = Plan(
    configs=2,
    total_kimg=0.128,
    tick_kimg=0.064,
    asha_runs=1,
    overrides={
        "model.g_width": 8,
        "model.d_width": 8,
        "metrics.num_samples": 64,
        "metrics.kid_subset_size": 32,
        "metrics.kid_subsets": 5,
    },
)


@dataclass
class Report:
    t: float  # since run_search started, s
    config: int  # index into the points
    kimg: float
    kid: float
    cost: float  # s of training + evaluation in this tick (from img_per_s and eval_frac)


@dataclass
class Run:
    name: str
    wall: float = 0.0
    reports: list[Report] = field(default_factory=list)
    load: tuple[float, float] = (0.0, 0.0)

    def final_kimg(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for r in self.reports:
            out[r.config] = max(out.get(r.config, 0.0), r.kimg)
        return out

    @property
    def total_kimg(self) -> float:
        return sum(self.final_kimg().values())

    @property
    def best(self) -> float:
        return min((r.kid for r in self.reports if math.isfinite(r.kid)), default=math.nan)

    @property
    def total_cost(self) -> float:
        return sum(r.cost for r in self.reports)

    def reach(self, target: float, within: float = WITHIN) -> tuple[float, float, float] | None:
        """(kimg, trial-s, wall s) spent when the running best kid first got within WITHIN of
        ``target``; None if it never did."""
        spent, cost = 0.0, 0.0
        last: dict[int, float] = {}
        for r in sorted(self.reports, key=lambda r: r.t):
            spent += r.kimg - last.get(r.config, 0.0)
            cost += r.cost
            last[r.config] = r.kimg
            if math.isfinite(r.kid) and r.kid <= target * (1 + within):
                return spent, cost, r.t
        return None


def make_recorder(points: list[dict[str, Any]]) -> Any:
    from ray.tune import Callback

    keys = [json.dumps(p, sort_keys=True) for p in points]

    class Recorder(Callback):
        """Stamps each tick report as the driver receives it."""

        def __init__(self) -> None:
            self.t0 = time.time()
            self.reports: list[Report] = []
            self.kimg: dict[int, float] = {}

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
            config = keys.index(json.dumps(dict(trial.config), sort_keys=True))
            kid = result.get("kid")
            kid = float(kid) if isinstance(kid, (int, float)) else math.nan
            kimg = float(result["kimg"])
            train_s = (kimg - self.kimg.get(config, 0.0)) * 1000 / max(result["img_per_s"], 1e-9)
            cost = train_s / max(1.0 - float(result["eval_frac"]), 1e-3)
            self.kimg[config] = kimg
            self.reports.append(Report(time.time() - self.t0, config, kimg, kid, cost))

    return Recorder()


def draw_points(folder: Path, data: Path, plan: Plan) -> list[dict[str, Any]]:
    """K configurations from the space, drawn once with Optuna's random sampler (seed 0)."""
    import optuna

    from fashion_tune.search.space import load_space

    path = folder / "draw.yaml"
    # fifo: the default ASHA's grace period may exceed a short (--smoke) budget
    doc = {"fixed": fixed(data, plan), "params": PARAMS, "scheduler": {"type": "fifo"}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    space = load_space(path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    points = []
    for _ in range(plan.configs):
        trial = study.ask()
        space(trial)
        points.append(dict(trial.params))
    return points


def fixed(data: Path, plan: Plan) -> dict[str, Any]:
    return {
        **FIXED,
        **plan.overrides,
        "data.path": str(data),
        "schedule.total_kimg": plan.total_kimg,
        "schedule.tick_kimg": plan.tick_kimg,
    }


def write_space(
    folder: Path, name: str, data: Path, plan: Plan, points: list[dict[str, Any]], sched: dict
) -> Path:
    space = {
        "name": name,
        "objective": {"metric": "kid", "mode": "min"},
        "fixed": fixed(data, plan),
        "params": PARAMS,
        "points": points,
        "scheduler": sched,
        "searcher": {"type": "optuna", "seed": 0},
        "num_samples": len(points),
        "max_concurrent": CONCURRENCY,
        "resources": {"cpu": 1, "gpu": 0},
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def run_one(name: str, space_path: Path, data: Path, work: Path, points: list) -> Run:
    from fashion_tune.search.space import load_space
    from fashion_tune.search.tuner import SearchOptions, run_search

    space = load_space(space_path)
    assert [dict(p) for p in space.points] == points, "points changed on their way through YAML"
    recorder = make_recorder(points)
    opts = SearchOptions(
        storage=str(work / "results"), name=name, data=str(data), verbose=0, callbacks=(recorder,)
    )
    run = Run(name)
    load0 = os.getloadavg()[0]
    t0 = time.time()
    recorder.t0 = t0
    grid = run_search(space, opts)
    run.wall = time.time() - t0
    run.load = (load0, os.getloadavg()[0])
    errors = [r.error for r in grid if r.error]
    if errors or len(grid) != len(points):
        raise SystemExit(f"{name}: {len(errors)} failed trials of {len(grid)}: {errors[:1]}")
    run.reports = list(recorder.reports)
    return run


# -- report --------------------------------------------------------------------------------------
def describe(p: dict[str, Any]) -> str:
    sym = p["loss.symmetry"]
    if sym != "none":
        sym += f" {p['loss.lambda_sym']:.2g}"
    return (
        f"{p['model.arch']} {p['loss.gan']} lr_g {p['optim.lr_g']:.1e} "
        f"lr_d {p['optim.lr_d']:.1e} sym {sym}"
    )


def determinism(full: Run, others: list[Run]) -> float:
    """The largest relative kid difference between runs at the same (config, kimg)."""
    ref = {(r.config, round(r.kimg, 6)): r.kid for r in full.reports}
    worst = 0.0
    for run in others:
        for r in run.reports:
            k = ref.get((r.config, round(r.kimg, 6)))
            if k is not None and math.isfinite(k) and math.isfinite(r.kid):
                worst = max(worst, abs(r.kid - k) / max(abs(k), 1e-12))
    return worst


def report(full: Run, ashas: list[Run], points: list[dict[str, Any]]) -> tuple[str, dict]:
    target = full.best
    lines = [
        f"{len(points)} configs. 'reach' = compute spent when the running best kid first got "
        f"within {WITHIN:.0%} of a target kid: kimg trained, trial-s (training + evaluation "
        "seconds from the ticks' img_per_s and eval_frac) and wall s since run_search started. "
        "Fractions are of the full run's totals.",
        "",
        "| run | wall s | total kimg | total trial-s | stopped early | final best kid | "
        "reach full-run best: kimg | trial-s | wall s | **kimg / full** | trial-s / full | "
        "wall / full | reach own best: kimg |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    summary: dict[str, Any] = {"target_kid": target, "runs": {}}
    for run in [full, *ashas]:
        got = run.reach(target)
        own = run.reach(run.best)
        stopped = sum(1 for k in run.final_kimg().values() if k < max_kimg(full) - 1e-6)
        fracs = (
            (got[0] / full.total_kimg, got[1] / full.total_cost, got[2] / full.wall)
            if got
            else (math.inf, math.inf, math.inf)
        )
        cells = f"{got[0]:.0f} | {got[1]:.0f} | {got[2]:.0f}" if got else "never | - | -"
        lines.append(
            f"| {run.name} | {run.wall:.0f} | {run.total_kimg:.0f} | {run.total_cost:.0f} | "
            f"{stopped} | {run.best:.4f} | {cells} | **{fmt(fracs[0])}** | {fmt(fracs[1])} | "
            f"{fmt(fracs[2])} | {f'{own[0]:.0f}' if own else 'never'} |"
        )
        summary["runs"][run.name] = {
            "wall": run.wall,
            "total_kimg": run.total_kimg,
            "total_trial_s": run.total_cost,
            "stopped": stopped,
            "best_kid": run.best,
            "reach_full_best": got,
            "reach_own_best": own,
            "frac_kimg": fracs[0],
            "frac_trial_s": fracs[1],
            "frac_wall": fracs[2],
            "load": run.load,
        }
    strict = 0.01
    lines += [
        "",
        f"Stricter: the running best within {strict:.0%} of the full run's best kid.",
        "",
        "| run | kimg | kimg / full | trial-s / full | wall / full |",
        "|---|---:|---:|---:|---:|",
    ]
    for run in [full, *ashas]:
        got = run.reach(target, strict)
        summary["runs"][run.name]["reach_full_best_1pct"] = got
        lines.append(
            f"| {run.name} | {got[0]:.0f} | {got[0] / full.total_kimg:.2f} | "
            f"{got[1] / full.total_cost:.2f} | {got[2] / full.wall:.2f} |"
            if got
            else f"| {run.name} | never | - | - | - |"
        )
    lines += [
        "",
        "Largest relative kid difference at the same (config, kimg) between runs: "
        f"{determinism(full, ashas):.2g}",
        "",
        "| # | config | full: best kid (at kimg) | full: last kid | "
        + " | ".join(f"{a.name}: kimg" for a in ashas)
        + " |",
        "|---:|---|---:|---:|" + "---:|" * len(ashas),
    ]
    for i, p in enumerate(points):
        mine = [r for r in full.reports if r.config == i and math.isfinite(r.kid)]
        best = min(mine, key=lambda r: r.kid) if mine else None
        last = max(mine, key=lambda r: r.kimg) if mine else None
        kimgs = " | ".join(f"{a.final_kimg().get(i, 0):.0f}" for a in ashas)
        best_cell = f"{best.kid:.4f} ({best.kimg:.0f})" if best else "-"
        mark = " **best**" if best and best.kid == target else ""
        lines.append(
            f"| {i} | {describe(p)} | {best_cell}{mark} | "
            f"{last.kid if last else math.nan:.4f} | {kimgs} |"
        )
    return "\n".join(lines), summary


def fmt(frac: float) -> str:
    return f"{frac:.2f}" if math.isfinite(frac) else "never"


def max_kimg(full: Run) -> float:
    return max(full.final_kimg().values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="6 configs of 3 kimg, one ASHA run")
    parser.add_argument("--configs", type=int, help="K, the number of configurations")
    parser.add_argument("--asha-runs", type=int, help="ASHA repeats")
    parser.add_argument("--grace-ticks", type=int, default=1, help="ASHA's grace period (ticks)")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "fashion-mnist-32")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    base = SMOKE if args.smoke else QUICK if args.quick else FULL
    plan = Plan(
        args.configs or base.configs,
        base.total_kimg,
        base.tick_kimg,
        args.asha_runs if args.asha_runs is not None else base.asha_runs,
        args.grace_ticks,
        base.overrides,
    )
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, localhost-only Ray

    info = machine()
    if args.smoke:
        smoke_banner(
            "search_live.py",
            f"{plan.configs} configs of {plan.total_kimg / plan.tick_kimg:.0f} ticks of "
            f"{plan.tick_kimg * 1000:.0f} images, widths 8, {plan.asha_runs} ASHA run, a "
            f"{SMOKE_IMAGES}-image set",
        )
    print("Search efficiency benchmark: ASHA vs full budget" + (" (--quick)" if args.quick else ""))
    for k, v in info.items():
        print(f"  {k:<8} {v}")
    print(f"  plan     {asdict(plan)}")
    print(f"  load avg {loadavg()} (1/5/15 min) at the start")
    t_start = time.perf_counter()

    if args.smoke:
        data = smoke_shards()
    else:
        data = args.data.resolve()
        prepare("fashion-mnist", None, str(data), SourceOptions(size=32))
    from fashion_tune.metrics import reference

    t0 = time.perf_counter()
    reference.ensure(str(data), log=lambda _: None)
    if time.perf_counter() - t0 > 2:
        print(f"  metric feature net / real stats ready in {time.perf_counter() - t0:.0f} s (once)")

    from fashion_tune.search.tuner import init_ray

    with tempfile.TemporaryDirectory(prefix="fashion-tune-efficiency-") as tmp:
        work = Path(tmp)
        points = draw_points(work, data, plan)
        print(f"  {len(points)} configs (drawn once, seed 0):")
        for i, p in enumerate(points):
            print(f"    {i:2d} {describe(p)}")
        t0 = time.perf_counter()
        # init_ray(None) would join the cluster named in /tmp/ray/ray_current_cluster
        # (left by any `ray start` or test cluster) instead of starting its own
        with env("RAY_ADDRESS", "local"):
            init_ray(None)
        print(f"  ray init {time.perf_counter() - t0:.1f} s\n")
        fifo = write_space(work, "full", data, plan, points, {"type": "fifo"})
        asha_sched = {
            "type": "asha",
            "grace_kimg": plan.tick_kimg * plan.grace_ticks,
            "reduction_factor": 3,
            "max_kimg": plan.total_kimg,
        }
        asha = write_space(work, "asha", data, plan, points, asha_sched)
        full = run_one("full", fifo, data, work, points)
        print(
            f"  full      wall {full.wall:6.0f} s, {full.total_kimg:.0f} kimg, best kid "
            f"{full.best:.4f}; load {full.load[0]:.2f} -> {full.load[1]:.2f}",
            flush=True,
        )
        ashas = []
        for rep in range(plan.asha_runs):
            run = run_one(f"asha-{rep + 1}", asha, data, work, points)
            ashas.append(run)
            got = run.reach(full.best)
            print(
                f"  {run.name:<9} wall {run.wall:6.0f} s, {run.total_kimg:.0f} kimg, best kid "
                f"{run.best:.4f}, reached the full run's best after "
                f"{f'{got[0]:.0f} kimg, {got[1]:.0f} trial-s' if got else 'never'}; "
                f"load {run.load[0]:.2f} -> {run.load[1]:.2f}",
                flush=True,
            )
        import ray

        ray.shutdown()

    table, summary = report(full, ashas, points)
    print()
    print(table)
    if ashas:
        fracs = [summary["runs"][a.name]["frac_kimg"] for a in ashas]
        med = statistics.median(fracs)
        verdict = "met" if med <= TARGET else "MISSED"
        print(
            f"\nASHA's kimg to reach the full run's best kid (within {WITHIN:.0%}) / the full run's"
            f" kimg: median {fmt(med)} (runs {', '.join(fmt(f) for f in fracs)}), target "
            f"<= {TARGET:.2f}: {verdict}"
        )
    print(f"\ntotal {time.perf_counter() - t_start:.1f} s; load avg at the end {loadavg()}")
    if args.json:
        payload = {
            "machine": info,
            "quick": args.quick,
            "smoke": args.smoke,
            "plan": asdict(plan),
            "points": points,
            "runs": [asdict(r) for r in [full, *ashas]],
            "summary": summary,
        }
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
