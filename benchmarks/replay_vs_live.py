"""Does the replay predict a live search? (issue 10, part 6: "one live search on embedded Ray
confirms the replay's verdict at small scale").

The first ``--configs`` recorded configs (``benchmarks/data/curves_fmnist32.json``), cut to a
``--kimg`` budget, are searched twice with the same scheduler settings, arrival order (the
space's points, in record order) and 2 workers:

live    ``fashion_tune.search.tuner.run_search`` on the embedded Ray: real trials, real
        pauses and resumes from checkpoints, Optuna handing out the points in order;
replay  ``benchmarks/replay.py`` on the recorded curves, cut to the same budget.

A trial's fd at a tick does not depend on the run (same config, seed, one thread), so the
script first checks that the live fds equal the recorded ones, then compares what each run
trained: ticks per config, who was promoted and who finished, the compute spent, and the
best finished config. Wall-clock order can differ (live ticks do not take their recorded
seconds), so asynchronous decisions can differ a little; the script says where.

Run: ``.venv/bin/python benchmarks/replay_vs_live.py [--configs 8] [--kimg 3]`` (~3-6 min on
2 cores). Nothing is asserted.

``--smoke``: 2 configs; the replay over their first 2 recorded ticks (1.1 kimg), the live
search over 2 tiny ticks (widths 8, 64 images, 64 samples, grace 1 tick) on a 500-image set:
one short search on embedded Ray, to check the code path; its numbers (and the fd mismatch)
mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from _bench_common import SMOKE_HELP, SMOKE_IMAGES, loadavg, machine, smoke_banner, smoke_shards
from replay import Curve, Curves, load_curves, replay

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "fashion-mnist-32"
SMOKE_LIVE: dict[str, Any] = {  # the live search's settings in a --smoke run
    "model.g_width": 8,
    "model.d_width": 8,
    "schedule.total_kimg": 0.128,
    "schedule.tick_kimg": 0.064,
    "metrics.num_samples": 64,
    "metrics.kid_subset_size": 32,
    "metrics.kid_subsets": 5,
}


def cut(curves: Curves, configs: list[int], kimg: float) -> Curves:
    """The chosen configs, each cut to the ticks of a ``kimg`` budget (progress rescaled)."""
    out = []
    for new, i in enumerate(configs):
        c = curves.curves[i]
        n = sum(1 for k in c.kimg if k <= kimg + 0.01)
        total = c.kimg[n - 1]
        out.append(
            Curve(
                index=new,
                params=c.params,
                kimg=c.kimg[:n],
                fd=c.fd[:n],
                seconds=c.seconds[:n],
                gflop=c.gflop[:n],
                progress=tuple(min(1.0, k / total) for k in c.kimg[:n]),
                diverged=c.diverged[:n],
            )
        )
    return replace(curves, curves=tuple(out))


def space_doc(
    curves: Curves, kimg: float, sched: dict[str, Any], name: str, extra: dict[str, Any]
) -> dict[str, Any]:
    fixed = {**curves.meta["fixed"], "schedule.total_kimg": kimg, **extra}
    return {
        "name": name,
        "fixed": fixed,
        "params": curves.meta["space"],
        "points": [dict(c.params) for c in curves.curves],
        "scheduler": sched,
        "searcher": {"type": "random", "seed": 0},
        "num_samples": len(curves.curves),
        "max_concurrent": 2,
        "resources": {"cpu": 1, "gpu": 0},
    }


def live(
    curves: Curves,
    kimg: float,
    sched: dict[str, Any],
    tmp: Path,
    data: Path = DATA,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The live search; ``extra`` overrides the recorded fixed settings (--smoke)."""
    from fashion_tune.search.space import load_space
    from fashion_tune.search.tuner import SearchOptions, run_search

    path = tmp / "live.yaml"
    doc = space_doc(curves, kimg, sched, "live", extra or {})
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    space = load_space(path)
    run_search(space, SearchOptions(storage=str(tmp), data=str(data), verbose=0))
    exp = tmp / "live"
    by_params: dict[str, list[dict[str, Any]]] = {}
    for trial in sorted(exp.glob("trial_*")):
        params = json.loads((trial / "params.json").read_text())
        rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]
        by_params[json.dumps(params, sort_keys=True)] = rows
    state = json.loads((exp / "fashion_tune_scheduler.json").read_text())
    return {"rows": by_params, "events": state["events"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=8)
    ap.add_argument("--kimg", type=float, default=3.0)
    ap.add_argument("--grace-ticks", type=float, default=4, help="of config 0, in compute")
    ap.add_argument("--eta", type=float, default=3.0)
    ap.add_argument("--data", type=Path, default=DATA, help="the shard set the live search reads")
    ap.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = ap.parse_args(argv)
    extra: dict[str, Any] = {}
    if args.smoke:
        args.configs, args.kimg, args.grace_ticks = 2, 1.1, 1  # 2 recorded ticks of 0.512
        smoke_banner(
            "replay_vs_live.py",
            f"{args.configs} configs, the replay over {args.kimg:g} recorded kimg, the live search "
            f"over 2 ticks of 64 images (widths 8) on a {SMOKE_IMAGES}-image set",
        )
        args.data, extra = smoke_shards(), dict(SMOKE_LIVE)

    from fashion_tune.search.promotion import PromotionAsha

    full = load_curves()
    curves = cut(full, list(range(args.configs)), args.kimg)
    grace = args.grace_ticks * curves.compute(curves.curves[0], 0)
    sched = {"type": "asha", "budget": "compute", "grace_kimg": round(grace, 6),
             "reduction_factor": args.eta, "smooth": 2}  # fmt: skip
    print(f"machine: {machine()}; load {loadavg()}")
    print(f"{args.configs} configs, {args.kimg:g} kimg, 2 workers, promotion ASHA in compute: "
          f"grace {grace:.3f} reference kimg, eta {args.eta:g}, smooth 2")  # fmt: skip

    def make() -> PromotionAsha:
        return PromotionAsha("compute", "fd", "min", grace, args.eta, smooth=2)

    order = list(range(len(curves.curves)))
    rep = replay(curves, make, workers=2, order=order, resume_overhead_s=2.0)
    total = curves.total_gflop
    live_sched = dict(sched)
    if args.smoke:  # the same number of the live config 0's (tiny) ticks, in compute
        live_sched["grace_kimg"] = args.grace_ticks * extra["schedule.tick_kimg"]
    with tempfile.TemporaryDirectory(prefix="replay-vs-live-") as d:
        got = live(curves, args.kimg, live_sched, Path(d), args.data, extra)

    mismatch, rows_out = 0.0, []
    live_gflop, live_best, rep_best = 0.0, (math.inf, None), (math.inf, None)
    for c, log in zip(curves.curves, rep.trials, strict=True):
        rows = got["rows"].get(json.dumps(c.params, sort_keys=True), [])
        for r, fd in zip(rows, c.fd, strict=False):
            if math.isfinite(fd):
                mismatch = max(mismatch, abs(r["fd"] - fd) / fd)
        live_gflop += rows[-1]["gflop"] if rows else 0.0
        live_done = bool(rows) and rows[-1]["progress"] >= 1 - 1e-9
        if live_done and rows[-1]["fd"] < live_best[0]:
            live_best = (rows[-1]["fd"], c.index)
        if log.status == "finished" and c.fd[-1] < rep_best[0]:
            rep_best = (c.fd[-1], c.index)
        arch = c.params["model.arch"]
        rows_out.append(
            f"| {c.index} | {arch} | {c.fd[-1]:.2f} | {len(rows)} | {log.ticks} | "
            f"{'finished' if live_done else 'ended early'} | {log.status} |"
        )
    print(f"largest relative fd difference, live vs recorded, same tick: {mismatch:.2e}")
    print("\n| config | arch | fd at the budget | live ticks | replay ticks | live | replay |")
    print("|---:|---|---:|---:|---:|---|---|")
    print("\n".join(rows_out))
    best_full = min((c.fd[-1], c.index) for c in curves.curves)
    print(f"\nbest config at the full budget: #{best_full[1]} (fd {best_full[0]:.2f})")
    print(f"live:   compute {live_gflop / total:.2f} of all to the budget; best finished "
          f"#{live_best[1]} (fd {live_best[0]:.2f})")  # fmt: skip
    print(f"replay: compute {rep.total_gflop / total:.2f} of all to the budget; best finished "
          f"#{rep_best[1]} (fd {rep_best[0]:.2f})")  # fmt: skip
    same = sum(
        len(got["rows"].get(json.dumps(c.params, sort_keys=True), [])) == log.ticks
        for c, log in zip(curves.curves, rep.trials, strict=True)
    )
    print(f"configs trained to the same tick live and in the replay: {same} of {len(order)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
