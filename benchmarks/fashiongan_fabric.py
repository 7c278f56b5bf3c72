"""FashionGAN's fabric, measured: does the texture of the swatch reach the garment (issue 18)?

On fabric-mnist (Fashion-MNIST silhouettes made of procedural colour fabrics; a test set,
not a claim about real garments), at 64 px (16 px fabric patches) and 32 px (8 px) beside
it, three fashiongan models are trained alike for --kimg, one after the other, from one
seed:

* ``today``: the default local texture loss (block statistics, ``loss.texture=stats``);
* ``gram``: FashionGAN's Gram-matrix texture loss (``loss.texture=gram``);
* ``control``: the same model with the fabric zeroed (``model.fabric_in=false``), the
  baseline every retrieval is read against (it must score chance, 1/K).

Each model's last checkpoint takes the swap test (``fashion_tune.metrics.swap``) on the same
N held-out sketches x K = 8 fabrics of other held-out garments: ``fabric_top1`` (colour and
texture statistics), ``texture_top1`` (the pattern alone, colour removed), ``shape_iou``,
``edge_f1`` and ``fd`` of the N x K outputs; the table prints each model's fd as a ratio
of the control's, and the issue's targets: fabric_top1 >= 0.9, shape_iou >= 0.8, fd within
20% of the control's. A swap sheet per model (the fabrics on top, a row per sketch) is
written to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch
from _bench_common import SMOKE_HELP, SMOKE_THREADS, print_header, smoke_banner

from fashion_tune.checkpoint import load
from fashion_tune.config import MetricsConfig, TrialConfig
from fashion_tune.data.reader import ShardSet
from fashion_tune.metrics import reference
from fashion_tune.metrics.swap import SwapSet, render, swap_scores, swap_sheet
from fashion_tune.pair_inputs import rebuild_paired
from fashion_tune.training import train

VARIANTS: dict[str, dict[str, Any]] = {
    "today": {"loss.texture": "stats"},
    "gram": {"loss.texture": "gram"},
    "control": {"model.fabric_in": False},
}
K = 8
TARGETS = {"fabric_top1": 0.9, "shape_iou": 0.8, "fd_vs_control": 1.2}
SHEET_ROWS = 6  # sketches drawn on each sheet


def model_settings(size: int, kimg: float, smoke: bool) -> dict[str, Any]:
    """One fashiongan config for every variant (widths and batch sized for a CPU)."""
    width = 8 if smoke else 32
    return {
        "model.arch": "fashiongan",
        "data.conditional": False,
        "model.z_dim": 16,  # two colours + a pattern (kind, period, angle): more than 8 numbers
        "model.g_width": width,
        "model.d_width": width,
        "data.batch_size": 16 if smoke else 32,
        "schedule.total_kimg": kimg,
        "schedule.tick_kimg": kimg / 4,
        "metrics.num_samples": 64 if smoke else 1000,
        "metrics.kid_subset_size": 32 if smoke else 500,
        "metrics.kid_subsets": 5 if smoke else 50,
        "runtime.device": "cpu",
        "runtime.seed": 0,
    }


def prepared(size: int, limit: int | None) -> str:
    """fabric-mnist at ``size`` px with pairs and its metric reference, made once in the
    benchmarks' cache."""
    from fashion_tune.data.prepare import prepare
    from fashion_tune.data.sources import SourceOptions
    from fashion_tune.data.storage import cache_root

    out = cache_root() / "bench-data" / f"fabric-mnist-{size}-{limit or 'all'}"
    out.parent.mkdir(parents=True, exist_ok=True)
    prepare("fabric-mnist", None, str(out), SourceOptions(size=size, limit=limit), pairs=True)
    return str(out)


def measure(data: str, size: int, args: argparse.Namespace, out: Path) -> dict[str, dict[str, Any]]:
    shards = ShardSet(data)
    loc, _, _ = reference.ensure(data, log=lambda _: None)
    ref = reference.load(loc, shards)
    swap = SwapSet.draw(shards, args.sketches, K)
    mcfg = MetricsConfig(num_samples=args.sketches * K, kid_subset_size=args.sketches * K // 2)
    rows: dict[str, dict[str, Any]] = {}
    for name, extra in VARIANTS.items():
        settings = {**model_settings(size, args.kimg, args.smoke), **extra, "data.path": data}
        settings["runtime.threads"] = args.threads
        cfg = TrialConfig().with_overrides(settings)
        t0 = time.perf_counter()
        res = train(cfg, out / f"{size}px-{name}", log=lambda _: None)
        seconds = time.perf_counter() - t0
        if res.checkpoint is None:
            raise RuntimeError(f"{name} at {size} px ended {res.status!r} without a checkpoint")
        state, cfg_loaded = load(str(res.checkpoint))
        G, E = rebuild_paired(state, cfg_loaded)
        outputs = render(G, E, swap)
        scores = swap_scores(outputs, swap, ref, mcfg)
        sheet = out / f"swap-{size}px-{name}.png"
        swap_sheet(outputs, swap, scale=max(1, 64 // size), rows=SHEET_ROWS).save(sheet)
        rows[name] = {**scores, "train_s": seconds, "kimg": res.metrics.get("kimg"),
                      "status": res.status, "sheet": str(sheet)}  # fmt: skip
        print(f"  {size} px {name}: trained {seconds:.0f} s; {table_row(name, rows)}", flush=True)
    for r in rows.values():
        r["fd_vs_control"] = r["fd"] / rows["control"]["fd"]
    return rows


def fmt(v: Any, digits: int = 3) -> str:
    return "nan" if not isinstance(v, (int, float)) or not math.isfinite(v) else f"{v:.{digits}f}"


def table_row(name: str, rows: dict[str, dict[str, Any]]) -> str:
    r = rows[name]
    cells = [fmt(r[c]) for c in ("fabric_top1", "texture_top1", "shape_iou", "edge_f1")]
    cells += [fmt(r["fd"]), fmt(r.get("fd_vs_control", math.nan), 2)]
    return f"| {name} | " + " | ".join(cells) + f" | {r['train_s']:.0f} |"


def verdict(r: dict[str, Any]) -> str:
    ok = [
        r["fabric_top1"] >= TARGETS["fabric_top1"],
        r["shape_iou"] >= TARGETS["shape_iou"],
        r["fd_vs_control"] <= TARGETS["fd_vs_control"],
    ]
    return "met" if all(ok) else "MISSED"


def table(size: int, rows: dict[str, dict[str, Any]], chance: float) -> str:
    lines = [
        f"### {size} px (fabric patch {size // 4} px), K = {K}: chance {chance:.3f}",
        "",
        "| model | fabric_top1 | texture_top1 | shape_iou | edge_f1 | fd | fd / control "
        "| train s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [table_row(n, rows) for n in rows]
    lines.append("")
    for n in ("today", "gram"):
        lines.append(
            f"targets for {n} (fabric_top1 >= 0.9, shape_iou >= 0.8, fd <= 1.2x control): "
            f"{verdict(rows[n])}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--sizes", default="64,32", help="image sizes, comma-separated")
    ap.add_argument("--kimg", type=float, default=40.0, help="training length of each model")
    ap.add_argument("--sketches", type=int, default=125, help="N held-out sketches (x K = 8)")
    ap.add_argument("--limit", type=int, help="Fashion-MNIST images (default: all)")
    ap.add_argument("--data64", help="a prepared fabric-mnist set at 64 px with --pairs")
    ap.add_argument("--data32", help="the same at 32 px (default: prepared in the cache)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--out", type=Path, default=Path("runs/bench-fashiongan-fabric"))
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    ap.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.smoke:
        sizes, args.kimg, args.sketches, args.limit = [32], 0.064, 4, 200
        args.threads = SMOKE_THREADS
        smoke_banner("fashiongan_fabric.py", "32 px only, 200 images, widths 8, 64 images each")
    if args.kimg <= 0 or args.sketches < 2 or any(s not in (32, 64, 128) for s in sizes):
        ap.error("--kimg must be > 0, --sketches >= 2 and --sizes among 32, 64, 128")
    torch.set_num_threads(args.threads)
    info = print_header(
        "FashionGAN fabric benchmark: the swap test of today's model, the Gram loss, the control"
    )
    print(f"  plan       {args.kimg:g} kimg per model, N = {args.sketches} sketches x K = {K}")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": info, "kimg": args.kimg, "k": K, "sizes": {}}
    t0 = time.perf_counter()
    for size in sizes:
        data = getattr(args, f"data{size}", None) or prepared(size, args.limit)
        rows = measure(data, size, args, args.out)
        results["sizes"][str(size)] = rows
        print()
        print(table(size, rows, 1.0 / K))
        print(flush=True)
    results["seconds"] = time.perf_counter() - t0
    print(f"total {results['seconds']:.0f} s; sheets in {args.out}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
