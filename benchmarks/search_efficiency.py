"""Search efficiency as a replay study (issue 10, part 6): which scheduler finds the best config
for the least compute?

The learning curves of K configs recorded by ``benchmarks/record_curves.py`` (trained to the
full budget, fd evaluated every tick, seconds and FLOPs measured per tick) are replayed with
``benchmarks/replay.py``: the real scheduler objects decide, on a simulated clock with 4 and
16 workers, over many arrival orders (seeds: permutations of the K configs):

fifo        Ray's FIFOScheduler: every config to its full budget (the baseline).
ray-asha    Ray's stopping ASHA (AsyncHyperBandScheduler, one bracket).
promotion   fashion-tune's promotion ASHA (fashion_tune.search.promotion.PromotionAsha).

each ASHA with budgets in ``compute`` (training FLOPs in kimg of the reference config,
config 0 = the literature default) and in ``kimg``.

"Reach" is the moment the search first holds a trial that finished its full budget with a
final fd within 5% of the best final fd of all K configs. For each scheduler x budget x
workers the script prints, over the seeds, the median and 90th percentile of the compute
spent by then (GFLOPs trained by all trials, as a fraction of training every config to its
full budget) and of the simulated wall time, the share of seeds that never reach it, and the
compute and wall time until the search ends.

Target: promotion ASHA with compute budgets reaches it with <= 1/3 of the full compute in
>= 90% of seeds.

Run: ``.venv/bin/python benchmarks/search_efficiency.py [--seeds 50 --json FILE]`` (seconds;
``--sweep`` adds a table of promotion ASHA's settings). The earlier live comparison on
embedded Ray (issue 4) is ``benchmarks/search_live.py``. ``--smoke`` replays the first 12
recorded configs over 2 orders on 2 workers, with both sweeps, in seconds (the committed
curves are only read), to check the code path; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from _bench_common import SMOKE_HELP, smoke_banner
from replay import DEFAULT_CURVES, Curves, ReplayResult, load_curves, replay

TARGET = 1 / 3  # promotion ASHA's compute to reach / every config at full budget
TARGET_SHARE = 0.9  # ... in at least this share of seeds
WITHIN = 0.05
ETA = 3.0


@dataclass(frozen=True)
class Setting:
    """One scheduler setup to replay."""

    name: str  # fifo, ray-asha, promotion
    budget: str  # compute, kimg, or "-" (fifo)
    grace: float = 0.0
    eta: float = ETA
    smooth: int = 2
    brackets: int = 1

    @property
    def label(self) -> str:
        return self.name if self.budget == "-" else f"{self.name} / {self.budget}"

    def factory(self, curves: Curves) -> Callable[[], Any]:
        """The scheduler as ``fashion_tune.search.tuner.make_scheduler`` builds it: max_t is the
        full budget in kimg; with compute budgets none for ours (each config ends at its own
        full budget) and a huge one for Ray's, which needs one."""
        from fashion_tune.search.tuner import ASHA_STOP_MAX_T

        by_kimg = self.budget == "kimg"
        if self.name == "fifo":
            from ray.tune.schedulers import FIFOScheduler

            return FIFOScheduler
        if self.name == "ray-asha":
            from ray.tune.schedulers import AsyncHyperBandScheduler

            return lambda: AsyncHyperBandScheduler(
                time_attr=self.budget,
                metric="fd",
                mode="min",
                max_t=curves.max_kimg if by_kimg else ASHA_STOP_MAX_T,
                grace_period=self.grace,
                reduction_factor=self.eta,
                brackets=self.brackets,
            )
        if self.name == "promotion":
            from fashion_tune.search.promotion import PromotionAsha

            return lambda: PromotionAsha(
                time_attr=self.budget,
                metric="fd",
                mode="min",
                grace=self.grace,
                reduction_factor=self.eta,
                brackets=self.brackets,
                smooth=self.smooth,
                max_t=curves.max_kimg if by_kimg else None,
            )
        raise ValueError(self.name)


def settings(curves: Curves) -> list[Setting]:
    """Grace = one tick of the reference config (config 0) in each unit."""
    ref = curves.curves[0]
    grace_kimg = ref.kimg[0]
    grace_compute = curves.compute(ref, 0)
    return [
        Setting("fifo", "-"),
        Setting("ray-asha", "compute", grace_compute),
        Setting("ray-asha", "kimg", grace_kimg),
        Setting("promotion", "compute", grace_compute),
        Setting("promotion", "kimg", grace_kimg),
    ]


def sweep_settings(curves: Curves) -> list[Setting]:
    g = curves.compute(curves.curves[0], 0)
    out = []
    for grace_ticks in (1, 3):
        for smooth in (1, 2, 3):
            for brackets in (1, 2):
                out.append(Setting("promotion", "compute", g * grace_ticks, ETA, smooth, brackets))
    return out


def grace_sweep(
    curves: Curves, workers: list[int], seeds: list[list[int]], overhead: float, top_k: int
) -> str:
    """Grace 1, 4 and 16 ticks of config 0 in each unit, ours and Ray's, 1 and 3 brackets."""
    ref = curves.curves[0]
    good = curves.top(top_k)
    lines = [
        "| scheduler / budget | grace (ticks of config 0) | brackets | workers | 5%: median | "
        f"p90 | never | <= 1/3 | top {top_k}: median | p90 | never | <= 1/3 | total / full |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in workers:
        for budget in ("compute", "kimg"):
            tick = curves.compute(ref, 0) if budget == "compute" else ref.kimg[0]
            for ticks in (1, 4, 16):
                if budget == "kimg" and ticks * tick >= curves.max_kimg:
                    continue
                for brackets in (1, 3):
                    for name in ("promotion", "ray-asha"):
                        s = Setting(name, budget, tick * ticks, ETA, 2, brackets)
                        strict = summarize(curves, run_setting(curves, s, w, seeds, overhead))
                        loose = summarize(curves, run_setting(curves, s, w, seeds, overhead, good))
                        lines.append(
                            f"| {s.label} | {ticks} | {brackets} | {w} | "
                            f"{fmt(strict['reach_frac_median'])} | "
                            f"{fmt(strict['reach_frac_p90'])} | {strict['never']:.0%} | "
                            f"{strict['within_target']:.0%} | "
                            f"{fmt(loose['reach_frac_median'])} | "
                            f"{fmt(loose['reach_frac_p90'])} | {loose['never']:.0%} | "
                            f"{loose['within_target']:.0%} | "
                            f"{strict['total_frac_median']:.2f} |"
                        )
    return "\n".join(lines)


def orders(n: int, seeds: int) -> list[list[int]]:
    return [random.Random(seed).sample(range(n), n) for seed in range(seeds)]


def run_setting(
    curves: Curves,
    s: Setting,
    workers: int,
    seeds: list[list[int]],
    overhead: float,
    good: set[int] | None = None,
) -> list[ReplayResult]:
    import numpy as np

    factory = s.factory(curves)
    out = []
    for i, order in enumerate(seeds):
        np.random.seed(i)  # Ray's ASHA deals trials to brackets with np.random
        out.append(replay(curves, factory, workers, order, resume_overhead_s=overhead, good=good))
    return out


# -- statistics ----------------------------------------------------------------------------------
def quantile(xs: list[float], q: float) -> float:
    """The q-quantile (nearest rank, so 'never' = inf stays inf when it is in the tail)."""
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def summarize(curves: Curves, runs: list[ReplayResult]) -> dict[str, Any]:
    full = curves.total_gflop
    frac = [r.reach_gflop / full if r.reached else math.inf for r in runs]
    wall = [r.reach_s if r.reached else math.inf for r in runs]
    return {
        "seeds": len(runs),
        "reach_frac_median": quantile(frac, 0.5),
        "reach_frac_p90": quantile(frac, 0.9),
        "reach_wall_median": quantile(wall, 0.5),
        "reach_wall_p90": quantile(wall, 0.9),
        "never": sum(not r.reached for r in runs) / len(runs),
        "within_target": sum(f <= TARGET for f in frac) / len(runs),
        "total_frac_median": statistics.median(r.total_gflop / full for r in runs),
        "end_wall_median": statistics.median(r.end_s for r in runs),
        "leftover": sum(r.leftover for r in runs),
        "finished_median": statistics.median(
            sum(t.status == "finished" for t in r.trials) for r in runs
        ),
        "resumes_median": statistics.median(sum(t.resumes for t in r.trials) for r in runs),
        "reach_frac": frac,
        "reach_wall": wall,
    }


def fmt(x: float, spec: str = ".2f") -> str:
    return format(x, spec) if math.isfinite(x) else "never"


def table(rows: list[tuple[Setting, int, dict[str, Any]]], fifo_end: dict[int, float]) -> str:
    lines = [
        "| scheduler / budget | workers | reach: compute / full, median | p90 | "
        "wall s, median | p90 | wall / fifo end | never | <= 1/3 | total compute / full | "
        "end wall s | full-budget trials | resumes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s, w, m in rows:
        lines.append(
            f"| {s.label} | {w} | **{fmt(m['reach_frac_median'])}** | {fmt(m['reach_frac_p90'])} "
            f"| {fmt(m['reach_wall_median'], '.0f')} | {fmt(m['reach_wall_p90'], '.0f')} | "
            f"{fmt(m['reach_wall_median'] / fifo_end[w])} | {m['never']:.0%} | "
            f"{m['within_target']:.0%} | {m['total_frac_median']:.2f} | "
            f"{m['end_wall_median']:.0f} | {m['finished_median']:.0f} | "
            f"{m['resumes_median']:.0f} |"
        )
    return "\n".join(lines)


def spearman(a: list[float], b: list[float]) -> float:
    import numpy as np

    ra = np.argsort(np.argsort(a))
    rb = np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def predictiveness(curves: Curves, k: int) -> str:
    """How well fd at each tick ranks configs by their final fd (what ASHA relies on)."""
    ok = [c for c in curves.curves if math.isfinite(c.final_fd)]
    best = min(ok, key=lambda c: c.final_fd)
    top = {curves.curves[i].index for i in curves.top(k)}
    lines = [
        "Rank correlation (Spearman) of fd at each tick with the final fd; the best config's "
        f"rank at that tick (config {best.index}); where the final top {k} rank at that tick.",
        "",
        "| kimg | all configs | resnets only | dcgans only | best config's rank | "
        f"final top {k}: ranks |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for t in range(min(c.ticks for c in ok)):
        cells = []
        for arch in (None, "resnet", "dcgan"):
            sub = [c for c in ok if arch is None or c.params["model.arch"] == arch]
            cells.append(
                f"{spearman([c.fd[t] for c in sub], [c.final_fd for c in sub]):.2f}"
                if len(sub) > 2
                else "-"
            )
        order = sorted(ok, key=lambda c: c.fd[t])
        rank = {c.index: r + 1 for r, c in enumerate(order)}
        lines.append(
            f"| {ok[0].kimg[t]:.2f} | {' | '.join(cells)} | {rank[best.index]} of {len(ok)} | "
            f"{', '.join(str(rank[i]) for i in sorted(top, key=lambda i: rank[i]))} |"
        )
    return "\n".join(lines)


def describe_curves(curves: Curves, within: float) -> str:
    best = curves.best_final_fd
    good = sorted(curves.good(within))
    arch = [c.params["model.arch"] for c in curves.curves]
    full = curves.total_gflop
    lines = [
        f"{len(curves)} configs ({arch.count('dcgan')} dcgan, {arch.count('resnet')} resnet), "
        f"full budget {curves.max_kimg:g} kimg, {curves.curves[0].ticks} ticks each; every config "
        f"to the full budget = {full:.0f} GFLOPs = {full / curves.ref_gflop_per_kimg:.0f} "
        f"reference kimg, {sum(sum(c.seconds) for c in curves.curves):.0f} trial-seconds.",
        f"Best final fd {best:.3f}; within {within:.0%} (fd <= {best * (1 + within):.3f}): "
        f"config(s) {', '.join(str(curves.curves[i].index) for i in good)}.",
    ]
    for i in good:
        c = curves.curves[i]
        lines.append(
            f"  config {c.index}: {c.params} final fd {c.final_fd:.3f}, "
            f"{c.gflop[-1] / full:.1%} of the full compute"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--curves", type=Path, default=DEFAULT_CURVES)
    parser.add_argument("--seeds", type=int, default=50, help="arrival orders (>= 50)")
    parser.add_argument("--workers", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--resume-overhead", type=float, default=2.0, help="s per resume")
    parser.add_argument("--sweep", action="store_true", help="also promotion ASHA's settings")
    parser.add_argument(
        "--top-k", type=int, default=3, help="also: reach = one of the final top k finished"
    )
    parser.add_argument(
        "--grace-sweep",
        action="store_true",
        help="also the grace period (1, 4, 16 ticks of config 0) x budget unit x scheduler x "
        "brackets 1/3, on both criteria",
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    parser.add_argument("--configs", type=int, help="only the first K recorded configs")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        args.configs, args.seeds, args.workers = 12, 2, [2]
        args.sweep = args.grace_sweep = True
        smoke_banner(
            "search_efficiency.py",
            f"the first {args.configs} recorded configs, {args.seeds} orders, "
            f"{args.workers[0]} workers, both sweeps",
        )

    t0 = time.perf_counter()
    curves = load_curves(args.curves)
    if args.configs:
        curves = replace(curves, curves=curves.curves[: args.configs])
    meta = curves.meta
    print("Search efficiency: replay of recorded learning curves")
    print(f"  curves   {args.curves} ({meta.get('machine', {}).get('cpu', '?')})")
    print("  " + describe_curves(curves, WITHIN).replace("\n", "\n  "))
    seeds = orders(len(curves), args.seeds)
    all_settings = settings(curves)
    print(
        f"  {args.seeds} arrival orders; workers {args.workers}; resume overhead "
        f"{args.resume_overhead:g} s; eta {ETA:g}; grace = 1 tick of config 0 = "
        f"{all_settings[2].grace:g} kimg or {all_settings[1].grace:.3f} reference kimg "
        f"(compute); max_t = {curves.max_kimg:g} kimg, or with compute budgets none (ours) "
        f"and 1e9 (Ray's), as make_scheduler builds them (the costliest config's full budget is "
        f"{curves.max_compute:.1f} reference kimg); promotion smooth {all_settings[3].smooth}"
    )
    rows: list[tuple[Setting, int, dict[str, Any]]] = []
    fifo_end: dict[int, float] = {}
    for w in args.workers:
        for s in all_settings:
            m = summarize(curves, run_setting(curves, s, w, seeds, args.resume_overhead))
            if s.name == "fifo":
                fifo_end[w] = m["end_wall_median"]
            rows.append((s, w, m))
    print()
    print(table(rows, fifo_end))
    verdicts = []
    for w, m in [(w, m) for s, w, m in rows if s.label == "promotion / compute"]:
        ok = m["within_target"] >= TARGET_SHARE
        verdicts.append(ok)
        print(
            f"\nTarget (promotion ASHA, compute budget, {w} workers): reach within {WITHIN:.0%} "
            f"of the best with <= {TARGET:.2f} of the full compute in >= {TARGET_SHARE:.0%} of "
            f"seeds: {m['within_target']:.0%} of seeds -> {'MET' if ok else 'MISSED'}"
        )
    top_rows: list[tuple[Setting, int, dict[str, Any]]] = []
    if args.top_k:
        good = curves.top(args.top_k)
        names = ", ".join(str(curves.curves[i].index) for i in sorted(good))
        print(
            f"\nLooser: reach = the first full-budget finish of one of the final top "
            f"{args.top_k} configs ({names}; final fd "
            f"{', '.join(f'{curves.curves[i].final_fd:.2f}' for i in sorted(good))}):\n"
        )
        for w in args.workers:
            for s in all_settings:
                runs = run_setting(curves, s, w, seeds, args.resume_overhead, good)
                top_rows.append((s, w, summarize(curves, runs)))
        print(table(top_rows, fifo_end))
    print()
    print(predictiveness(curves, args.top_k or 3))
    sweep_rows: list[tuple[Setting, int, dict[str, Any]]] = []
    if args.sweep:
        print("\nPromotion ASHA (compute budget) settings:")
        lines = [
            "| grace (ref kimg) | smooth | brackets | workers | reach median | p90 | never | "
            "<= 1/3 | total / full |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for w in args.workers:
            for s in sweep_settings(curves):
                m = summarize(curves, run_setting(curves, s, w, seeds, args.resume_overhead))
                sweep_rows.append((s, w, m))
                lines.append(
                    f"| {s.grace:.3f} | {s.smooth} | {s.brackets} | {w} | "
                    f"{fmt(m['reach_frac_median'])} | {fmt(m['reach_frac_p90'])} | "
                    f"{m['never']:.0%} | {m['within_target']:.0%} | "
                    f"{m['total_frac_median']:.2f} |"
                )
        print("\n".join(lines))
    if args.grace_sweep:
        print("\nGrace period x budget unit (eta 3, smooth 2), both criteria:")
        print(grace_sweep(curves, args.workers, seeds, args.resume_overhead, args.top_k or 3))
    print(f"\nreplayed in {time.perf_counter() - t0:.1f} s")
    if args.json:
        payload = {
            "curves": str(args.curves),
            "configs": len(curves),
            "curves_meta": meta,
            "seeds": args.seeds,
            "resume_overhead_s": args.resume_overhead,
            "within": WITHIN,
            "target": {
                "frac": TARGET,
                "share": TARGET_SHARE,
                "met": bool(verdicts) and all(verdicts),
            },
            "rows": [
                {"setting": s.__dict__, "workers": w, **_jsonable(m)}
                for s, w, m in rows + sweep_rows
            ],
            "top_k": args.top_k,
            "top_k_rows": [
                {"setting": s.__dict__, "workers": w, **_jsonable(m)} for s, w, m in top_rows
            ],
        }
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


def _jsonable(m: dict[str, Any]) -> dict[str, Any]:
    def fix(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v

    return {k: fix(v) for k, v in m.items()}


if __name__ == "__main__":
    sys.exit(main())
