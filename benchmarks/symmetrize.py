"""Symmetrize (issue 17, item 4): what the latent inversion of a flipped image buys.

The seed paper's second idea (Makkapati & Patro 2017; ``fashion_tune/symmetrize.py``):
for a generated image x, find z* with G(z*) ~ flip(x) and show (x + G(z*)) / 2. This
measures it as ``fashion-tune sample CHECKPOINT --symmetrize`` runs it, on one checkpoint:

original        n images of the checkpoint's EMA generator, ``fashion-tune sample``'s way:
                ``rebuild_generator`` (the EMA weights), noise ``fixed_noise(n, z_dim,
                --seed)``, classes in turn (0, 1, ..., 0, 1, ...) for a conditional GAN,
                ``sampling.generate`` (batches of 256, batch statistics).
inversion       ``invert_flipped(G, x, y, steps=--steps, seed=--seed)`` on all n at once
                (as ``sample`` calls it: one call, default lr / beta), its ``.symmetrized``.
pixel mirror    the trivial fix, measured in the same run: (x + flip(x)) / 2 (perfectly
                symmetric, but two garments' worth of detail blurred into one).

Each set is scored by ``metrics.evaluate.score_images`` against the shard set's metric
reference, the function a trial's ``Evaluator`` and ``fashion-tune evaluate`` call, with
the checkpoint's metric settings at n samples (as ``fashion-tune evaluate`` does for a
checkpoint: kid subsets of min(metrics.kid_subset_size, n)) and each image's class as the
class it claims (conditional GANs; unconditional ones: the feature net's guess). fd depends
on n: compare the rows with each other, not with a trial's fd at its own
``metrics.num_samples`` (the ``metric_ref`` ruler printed says which settings scored them).

Seconds: generation, the inversion and the mirror average are each timed on their own
(after one untimed warm-up of the generator's forward and of a 1-step inversion); the
inversion's row is its own cost, on top of generating the originals.

Run:  ``.venv/bin/python benchmarks/symmetrize.py --checkpoint CKPT [--data SHARDS] [--n 1000]
[--steps 200] [--seed 0] [--device cpu|cuda] [--json OUT]``. CKPT is anything ``fashion-tune
sample`` takes: a checkpoint folder (a trial's ``checkpoint_*/``, a run's ``tick-*``), its
``checkpoint.pt``, or a run / ``fashion-tune report`` export folder. --data defaults to the
shard set the checkpoint's config trained on (``data.path``).

``--smoke``: without --checkpoint, first trains a tiny model (widths 8, one 64-image tick) on
a 500-image set; then n=64, steps=5; seconds, to check the code path; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _bench_common import (
    SMOKE_HELP,
    SMOKE_IMAGES,
    SMOKE_THREADS,
    loadavg,
    machine,
    smoke_banner,
    smoke_shards,
)

from fashion_tune.checkpoint import load
from fashion_tune.config import MetricsConfig, TrialConfig
from fashion_tune.data.reader import ShardSet
from fashion_tune.errors import FashionTuneError
from fashion_tune.losses import flip
from fashion_tune.metrics import reference
from fashion_tune.metrics.evaluate import score_images
from fashion_tune.sampling import fixed_noise, generate
from fashion_tune.symmetrize import invert_flipped
from fashion_tune.training import rebuild_generator, train

SMOKE_N, SMOKE_STEPS = 64, 5
# the tiny model a --smoke run without --checkpoint trains first (tests/conftest.py's
# tiny_overrides, one tick)
SMOKE_TRAIN: dict[str, Any] = {
    "data.batch_size": 32,
    "model.z_dim": 16,
    "model.g_width": 8,
    "model.d_width": 8,
    "schedule.total_kimg": 0.064,
    "schedule.tick_kimg": 0.064,
    "metrics.num_samples": 64,
    "metrics.kid_subset_size": 32,
    "metrics.kid_subsets": 5,
    "runtime.threads": SMOKE_THREADS,
    "runtime.device": "cpu",
}
COLUMNS = ("fd", "kid", "precision", "recall", "sym_excess", "sym_gap", "sym_asym")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_tiny(data: Path, run_dir: Path) -> Path:
    """A one-tick model on the smoke set (--smoke without --checkpoint)."""
    cfg = TrialConfig().with_overrides({"data.path": str(data), **SMOKE_TRAIN})
    res = train(cfg, run_dir, log=lambda _: None)
    if res.status != "finished" or res.checkpoint is None:
        raise RuntimeError(f"the tiny smoke model ended {res.status!r} without a checkpoint")
    return res.checkpoint


def fmt(v: float) -> str:
    return "nan" if not math.isfinite(v) else f"{v:.4f}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device)
    state, cfg = load(args.checkpoint)
    if state.get("task") == "paired":
        raise SystemExit("symmetrize: a fashiongan checkpoint has no noise-to-image generator")
    G = rebuild_generator(state, cfg).to(device)
    data = args.data or cfg.data.path
    try:
        shards = ShardSet(data)
    except FashionTuneError as exc:
        if args.data:
            raise
        raise FashionTuneError(f"{exc} (the checkpoint's data.path; give --data SHARDS)") from None
    meta = state["model_meta"]
    if int(meta["img_size"]) != shards.image_size or int(meta["channels"]) != shards.channels:
        raise SystemExit(
            f"symmetrize: the checkpoint makes {meta['img_size']} px images with "
            f"{meta['channels']} channel(s); {data} holds {shards.image_size} px with "
            f"{shards.channels}"
        )
    if G.num_classes and G.num_classes != shards.num_classes:
        raise SystemExit(
            f"symmetrize: the generator has {G.num_classes} classes; {data} has "
            f"{shards.num_classes}"
        )
    t0 = time.perf_counter()
    loc, _, built = reference.ensure(data, args.reference, log=print)
    if built:
        print(f"  made the metric reference of {data} in {time.perf_counter() - t0:.0f} s (once)")
    ref = reference.load(loc, shards)
    n = args.n
    mcfg = MetricsConfig(
        num_samples=n,
        kid_subset_size=min(cfg.metrics.kid_subset_size, n),
        kid_subsets=cfg.metrics.kid_subsets,
    )
    print(f"  checkpoint {args.checkpoint}")
    print(
        f"  generator  {cfg.model.arch}, {meta['img_size']} px x {meta['channels']} ch, "
        f"z {G.z_dim}, width {cfg.model.g_width}, "
        + (f"{G.num_classes} classes (in turn)" if G.num_classes else "unconditional")
        + f", {sum(p.numel() for p in G.parameters()):,} params, on {device}"
    )
    print(f"  data       {data} (reference {ref.hash}, {ref.task})")
    print(f"  settings   n {n}, seed {args.seed}, inversion steps {args.steps}")

    y = torch.arange(n) % G.num_classes if G.num_classes else None
    z = fixed_noise(n, G.z_dim, args.seed)
    classes = None if y is None else y.numpy()
    y_dev = None if y is None else y.to(device)

    # warm-up (untimed): the forward pass, and a 1-step inversion (backward) of one batch
    warm = generate(G, z[:64], None if y is None else y[:64])
    invert_flipped(G, warm.to(device), None if y_dev is None else y_dev[:64], steps=1)
    sync(device)

    t0 = time.perf_counter()
    images = generate(G, z, y)
    sync(device)
    gen_s = time.perf_counter() - t0

    x = images.to(device)
    sync(device)
    t0 = time.perf_counter()
    inv = invert_flipped(G, x, y_dev, steps=args.steps, seed=args.seed)
    sync(device)
    inv_s = time.perf_counter() - t0
    symmetrized = inv.symmetrized.float().cpu()
    recon_err = (inv.reconstruction.float().cpu() - flip(images)).pow(2).flatten(1).mean(1)
    # invert_flipped draws G(z*) in eval mode (running statistics) while generate() (the
    # originals, every trial's scores) uses batch statistics: how far apart are the two on
    # the originals' own noise? (0 for a generator without batch norm)
    with torch.no_grad():
        G.eval()
        bn_gap = float(
            sum(
                (G(z[i : i + 256].to(device), None if y_dev is None else y_dev[i : i + 256]))
                .float()
                .cpu()
                .sub(images[i : i + 256])
                .pow(2)
                .sum()
                for i in range(0, n, 256)
            )
            / images.numel()
        )
        G.train()

    t0 = time.perf_counter()
    mirrored = (images + flip(images)) / 2
    mirror_s = time.perf_counter() - t0

    rows: dict[str, dict[str, Any]] = {}
    for name, imgs, secs in (
        ("original", images, gen_s),
        (f"inversion ({args.steps} steps)", symmetrized, inv_s),
        ("pixel-mirror average", mirrored, mirror_s),
    ):
        t0 = time.perf_counter()
        scores = score_images(ref, mcfg, imgs, classes)
        rows[name] = {
            **scores,
            "seconds": secs,
            "ms_per_image": 1000 * secs / n,
            "score_seconds": time.perf_counter() - t0,
        }
    return {
        "checkpoint": str(args.checkpoint),
        "data": str(data),
        "reference": ref.hash,
        "metric_ref": rows["original"]["metric_ref"],
        "n": n,
        "steps": args.steps,
        "seed": args.seed,
        "device": str(device),
        "generation_s": gen_s,
        "inversion_s": inv_s,
        "inversion_over_generation": inv_s / gen_s if gen_s > 0 else float("nan"),
        "inversion_loss": inv.loss,
        "reconstruction_mse": float(recon_err.mean()),  # G(z*) vs flip(x), [-1, 1] scale
        "z_star_norm": float(inv.z.norm(dim=1).mean()),  # a N(0, I) start: ~sqrt(z_dim)
        "z_dim": G.z_dim,
        "eval_vs_batch_stats_mse": bn_gap,  # G(z) in eval mode vs generate()'s, same z
        "rows": rows,
    }


def table(res: dict[str, Any]) -> str:
    lines = [
        "| images | " + " | ".join(COLUMNS) + " | seconds | ms / image |",
        "|---|" + "---:|" * (len(COLUMNS) + 2),
    ]
    for name, r in res["rows"].items():
        cells = [fmt(float(r[c])) for c in COLUMNS]
        cells += [f"{r['seconds']:.3f}", f"{r['ms_per_image']:.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--checkpoint", type=Path, help="what `fashion-tune sample` takes")
    ap.add_argument("--data", help="shard set to score against (default: the checkpoint's)")
    ap.add_argument("--reference", help="metric reference location (default: SHARDS/_reference)")
    ap.add_argument("--n", type=int, default=1000, help="images generated and scored")
    ap.add_argument("--steps", type=int, default=200, help="inversion steps (sample's default)")
    ap.add_argument("--seed", type=int, default=0, help="noise seed (sample's --seed)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="sample: cpu")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    ap.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = ap.parse_args(argv)
    if args.n < 2 or args.steps < 1:
        ap.error("--n must be >= 2 and --steps >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"symmetrize --device cuda: no CUDA device is visible (torch {torch.__version__})")
        return 0

    tmp: tempfile.TemporaryDirectory[str] | None = None
    if args.smoke:
        args.n, args.steps, args.threads = SMOKE_N, SMOKE_STEPS, SMOKE_THREADS
        smoke_banner(
            "symmetrize.py",
            f"n {SMOKE_N}, {SMOKE_STEPS} inversion steps"
            + (
                ""
                if args.checkpoint
                else f", a tiny model (widths 8, one 64-image tick) on a {SMOKE_IMAGES}-image set"
            ),
        )
    elif args.checkpoint is None:
        ap.error("--checkpoint is required (or --smoke)")
    torch.set_num_threads(args.threads)

    print("Symmetrize benchmark: latent inversion of the flipped image vs the pixel mirror")
    for k, v in machine().items():
        print(f"  {k:<10} {v}")
    print(f"  threads    torch.set_num_threads({args.threads})")
    print(f"  load avg   {loadavg()} (1/5/15 min) at the start")
    t_start = time.perf_counter()
    try:
        if args.smoke and args.checkpoint is None:
            data = smoke_shards()
            tmp = tempfile.TemporaryDirectory(prefix="symmetrize-smoke-")
            t0 = time.perf_counter()
            args.checkpoint = train_tiny(data, Path(tmp.name))
            args.data = args.data or str(data)
            print(f"  trained the tiny smoke model in {time.perf_counter() - t0:.1f} s")
        res = run(args)
    except FashionTuneError as exc:  # a missing / foreign shard set or checkpoint: one line
        print(f"symmetrize: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if tmp is not None:
            tmp.cleanup()

    print()
    print(table(res))
    print(
        f"\ninversion / generation time: {res['inversion_over_generation']:,.0f}x "
        f"({res['inversion_s']:.2f} s for {res['steps']} steps vs {res['generation_s']:.3f} s "
        f"for {res['n']} images); inversion loss {res['inversion_loss']:.4f}, "
        f"mean |G(z*) - flip(x)|^2 {res['reconstruction_mse']:.4f} ([-1, 1] pixels); "
        f"mean |z*| {res['z_star_norm']:.3f} (a N(0, I) draw: ~{math.sqrt(res['z_dim']):.1f})"
    )
    print(
        "batch norm: invert_flipped draws G(z*) with running statistics (eval mode), generate() "
        "the originals with batch statistics; on the originals' noise the two differ by "
        f"mean |G_eval(z) - G_batch(z)|^2 {res['eval_vs_batch_stats_mse']:.4f}"
    )
    print(
        f"metric reference {res['reference']}; ruler (reference + settings) {res['metric_ref']} "
        f"(n {res['n']}: fd compares across these rows, not with a trial's at its own n)"
    )
    print(f"total {time.perf_counter() - t_start:.1f} s; load avg {loadavg()} at the end")
    if args.json:
        payload = {
            "machine": machine(),
            "smoke": args.smoke,
            "threads": args.threads,
            **res,
            "rows": {
                name: {
                    k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                    for k, v in r.items()
                }
                for name, r in res["rows"].items()
            },
        }
        args.json.write_text(json.dumps(payload, indent=2, default=_jsonable))
    return 0


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


if __name__ == "__main__":
    sys.exit(main())
