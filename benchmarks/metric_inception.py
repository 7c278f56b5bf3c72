"""Does the objective agree with Inception? Rank correlation on real generator checkpoints.

    .venv/bin/python benchmarks/metric_inception.py results/quick [--data data/fashion-mnist-32]
        [--n-fake 250] [--n-real 500] [--per-trial 2]

For every trial of an experiment (e.g. `make demo`'s quick search), up to ``--per-trial``
kept checkpoints (best and newest) give a generator of some quality. Each generates the
same fixed noise and labels; the images are scored by the new objective (fd in the
reference's multi-task feature space), by the old ruler (a label classifier's fd / kid,
rebuilt here) and by Inception (StyleGAN3's TorchScript network from the `inception`
extra: FID and KID against ``--n-real`` real training images). Prints every checkpoint's
scores and the Spearman rank correlations with Inception FID and KID.

``--smoke`` (no experiment needed) trains one tiny generator for 2 ticks on a 500-image set,
keeps both checkpoints in a temp experiment folder and scores them with 8 fakes against 8
reals: seconds, to check the code path; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
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
from fashion_tune.config import MetricsConfig
from fashion_tune.data.reader import ShardSet
from fashion_tune.metrics import reference
from fashion_tune.metrics.evaluate import score_images
from fashion_tune.metrics.inception import InceptionMetric, inception_cache_dir
from fashion_tune.sampling import fixed_noise, generate
from fashion_tune.training import _label_freq, rebuild_generator


def spearman(a: list[float], b: list[float]) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    return float(np.corrcoef(ra, rb)[0, 1])


def checkpoints(exp: Path, per_trial: int) -> list[Path]:
    out = []
    for trial in sorted(exp.glob("trial_*")):
        kept = sorted(p for p in trial.glob("checkpoint_*") if (p / "checkpoint.pt").exists())
        if not kept:
            continue
        picks = {kept[-1]}
        if per_trial > 1:  # also the oldest kept one: an earlier, usually worse generator
            picks.add(kept[0])
        out += sorted(picks)
    return out


def smoke_experiment(data: str, folder: Path) -> Path:
    """An experiment folder as a search leaves it (``trial_*/checkpoint_*/checkpoint.pt``):
    one tiny generator trained for 2 ticks, both checkpoints kept."""
    from fashion_tune.config import TrialConfig
    from fashion_tune.training import train

    cfg = TrialConfig().with_overrides(
        {
            "data.path": data,
            "data.batch_size": 32,
            "model.z_dim": 16,
            "model.g_width": 8,
            "model.d_width": 8,
            "schedule.total_kimg": 0.128,
            "schedule.tick_kimg": 0.064,
            "metrics.num_samples": 64,
            "metrics.kid_subset_size": 32,
            "metrics.kid_subsets": 5,
            "runtime.threads": SMOKE_THREADS,
            "runtime.device": "cpu",
        }
    )
    trial = folder / "smoke" / "trial_smoke"
    ticks = folder / "ticks"
    train(cfg, folder / "run", log=lambda _: None, checkpoint_root=ticks, keep_checkpoints=2)
    for i, tick in enumerate(sorted(ticks.glob("tick-*"))):
        shutil.copytree(tick, trial / f"checkpoint_{i:06d}")
    return trial.parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("experiment", type=Path, nargs="?", help="(not with --smoke)")
    ap.add_argument("--data", default="data/fashion-mnist-32")
    ap.add_argument("--n-fake", type=int, default=250)
    ap.add_argument("--n-real", type=int, default=500)
    ap.add_argument("--per-trial", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = ap.parse_args()
    if args.smoke:
        smoke_banner(
            "metric_inception.py",
            f"2 checkpoints of one tiny generator, 8 fakes, 8 reals, a {SMOKE_IMAGES}-image set",
        )
        with tempfile.TemporaryDirectory(prefix="metric-inception-smoke-") as tmp:
            data = str(smoke_shards())
            args.data, args.n_fake, args.n_real, args.per_trial = data, 8, 8, 2
            args.experiment = smoke_experiment(data, Path(tmp))
            run(args)
        return
    if args.experiment is None:
        ap.error("the experiment folder is required (or --smoke)")
    run(args)


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(SMOKE_THREADS if args.smoke else 2)
    shards = ShardSet(args.data)
    loc, _, _ = reference.ensure(args.data)
    new = reference.load(loc, shards)
    old = reference.from_blobs(*reference.build(shards, log=print, contrastive=False))
    t0 = time.perf_counter()
    inc = InceptionMetric(shards, args.n_real, inception_cache_dir(shards))
    print(f"Inception features of {args.n_real} reals: {time.perf_counter() - t0:.0f} s")
    cfg = MetricsConfig(num_samples=args.n_fake, kid_subset_size=args.n_fake // 2, kid_subsets=20)
    rows = []
    for path in checkpoints(args.experiment, args.per_trial):
        state, tcfg = load(path)
        G = rebuild_generator(state, tcfg)
        freq = _label_freq(shards, "train", G.num_classes)
        z = fixed_noise(args.n_fake, G.z_dim, 2024)
        y = None
        if freq is not None:
            rng = np.random.default_rng(2024)
            y = torch.from_numpy(rng.choice(len(freq), size=args.n_fake, p=freq))
        fakes = generate(G, z, y)
        cls = None if y is None else y.numpy()
        a = score_images(new, cfg, fakes, cls)
        b = score_images(old, cfg, fakes, cls)
        i = inc(fakes)
        rows.append((f"{path.parent.name}/{path.name}", a, b, i))
        print(
            f"{rows[-1][0]}: fd {a['fd']:.3f} recall {a['recall']:.3f} div {a['diversity']:.2f} "
            f"| old kid {b['kid']:.3f} fd {b['fd']:.3f} | FID {i['fid_inception']:.1f}",
            flush=True,
        )
    fid = [r[3]["fid_inception"] for r in rows]
    kid = [r[3]["kid_inception"] for r in rows]
    print(f"\nmachine: {machine()['cpu']}; load {loadavg()}")
    print(f"{len(rows)} checkpoints of {args.experiment}; {args.n_fake} fakes each, Inception")
    print(f"against {args.n_real} reals\n")
    print("| objective | Spearman vs Inception FID | vs Inception KID |")
    print("|---|---:|---:|")
    for name, vals in (
        ("new fd (the objective)", [r[1]["fd"] for r in rows]),
        ("new kid", [r[1]["kid"] for r in rows]),
        ("old kid (label classifier, the previous objective)", [r[2]["kid"] for r in rows]),
        ("old fd (label classifier)", [r[2]["fd"] for r in rows]),
        ("1 - recall (new)", [1 - r[1]["recall"] for r in rows]),
    ):
        print(f"| {name} | {spearman(vals, fid):.2f} | {spearman(vals, kid):.2f} |")


if __name__ == "__main__":
    main()
