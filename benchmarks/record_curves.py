"""Learning curves for the search-efficiency replay (issue 10, part 6).

Trains K configurations (default 48) to the full budget on Fashion-MNIST 32 px, evaluating
the objective at every tick, and stores their curves in one small JSON file
(``benchmarks/data/curves_fmnist32.json``) that ``benchmarks/search_efficiency.py`` replays
schedulers against. No Ray: each config runs through ``fashion_tune.training.train`` with a
report callback, ``--jobs`` at a time in worker processes (one torch thread each).

The configs are drawn once with Optuna's random sampler (seed 0) from a space mixing DCGAN
and ResNet (widths 16; a ResNet image costs ~12x the FLOPs of a DCGAN one), learning rates,
GAN loss, D normalisation and the symmetry loss; config 0 is the literature default (DCGAN,
non-saturating loss, spectral norm, lr 2e-4, no symmetry loss), the compute budget's
reference. Every config trains 8 kimg in ticks of 0.5 kimg (16 evaluations), scored with
500 samples.

Per tick the file keeps kimg, fd (the objective), kid, recall, the tick's training and
evaluation seconds (from the tick's ``img_per_s`` and ``eval_frac``), the wall seconds
between reports, cumulative training GFLOPs and progress; per config its parameters, FLOPs
per image and total seconds. Each finished config is written (atomically) as it completes,
so an interrupted run resumes where it stopped.

``--noise`` (after the curves) measures the objective's noise: the sampling noise of fd at
the final checkpoints of a few configs (num_samples 250 / 500 / 1000 / 2000, 5 sampling seeds
each), stored in the same file, and the tick-to-tick noise of the recorded curves (residuals
around a 3-tick running median) next to the spread between configs at the same budget.

Run: ``.venv/bin/python benchmarks/record_curves.py [--configs 48 --jobs 2]`` then
``.venv/bin/python benchmarks/record_curves.py --noise``.

``--smoke`` records 2 tiny configs (widths 8, 3 ticks of 64 images, 64 samples) on a 500-image
set, then measures their noise (32 and 64 samples, 2 seeds), all in a temp folder (``--out``
and ``--work`` are ignored: the committed curves are never touched); seconds, to check the code
path; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench_common import (
    SMOKE_HELP,
    SMOKE_IMAGES,
    SMOKE_THREADS,
    loadavg,
    machine,
    smoke_banner,
    smoke_shards,
)

from fashion_tune.atomic import write_text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "data" / "curves_fmnist32.json"
DEFAULT_WORK = Path("/tmp/fashion-tune-curves")  # run folders (final checkpoints for --noise)
FORMAT = 1

PARAMS: dict[str, Any] = {  # the replay's search space
    "model.arch": {"choice": ["dcgan", "resnet"]},
    "model.d_norm": {"choice": ["spectral", "batch"]},
    "optim.lr_g": {"loguniform": [1.0e-4, 2.0e-3]},
    "optim.lr_d": {"loguniform": [1.0e-4, 2.0e-3]},
    "loss.gan": {"choice": ["ns", "hinge"]},
    "loss.symmetry": {"choice": ["none", "consistency", "adversarial", "pixel"]},
    "loss.lambda_sym": {
        "loguniform": [0.05, 2.0],
        "when": {"loss.symmetry": ["consistency", "adversarial", "pixel"]},
    },
}
LITERATURE: dict[str, Any] = {  # config 0: SNDCGAN's setting (Kurach et al. 2019)
    "model.arch": "dcgan",
    "model.d_norm": "spectral",
    "optim.lr_g": 2.0e-4,
    "optim.lr_d": 2.0e-4,
    "loss.gan": "ns",
    "loss.symmetry": "none",
}
FIXED: dict[str, Any] = {
    "model.g_width": 16,
    "model.d_width": 16,
    "schedule.total_kimg": 8.0,
    "schedule.tick_kimg": 0.5,
    "schedule.snapshot_ticks": 1000,  # no sample grids: they cost time and are not replayed
    "metrics.num_samples": 500,
    "metrics.kid_subset_size": 250,
    "metrics.kid_subsets": 20,
    "runtime.threads": 1,
    "runtime.device": "cpu",
}
NOISE_SAMPLES = (250, 500, 1000, 2000)
NOISE_SEEDS = 5
SMOKE_FIXED: dict[str, Any] = {
    **FIXED,
    "model.g_width": 8,
    "model.d_width": 8,
    "schedule.total_kimg": 0.192,  # 3 ticks: the tick-to-tick noise needs a middle tick
    "schedule.tick_kimg": 0.064,
    "metrics.num_samples": 64,
    "metrics.kid_subset_size": 32,
    "metrics.kid_subsets": 5,
}


# -- the configs ---------------------------------------------------------------------------------
def draw_configs(n: int) -> list[dict[str, Any]]:
    """Config 0 = the literature default; then n - 1 draws of Optuna's random sampler (seed 0)
    through the project's own define-by-run space (so ``when`` conditions hold)."""
    import tempfile

    import optuna
    import yaml

    from fashion_tune.search.space import load_space

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "curves.yaml"
        fixed = {**FIXED, "data.path": "data/fashion-mnist-32"}
        path.write_text(yaml.safe_dump({"fixed": fixed, "params": PARAMS}, sort_keys=False))
        space = load_space(path)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    points = [dict(LITERATURE)]
    for _ in range(n - 1):
        trial = study.ask()
        space(trial)
        points.append(dict(trial.params))
    return points


def config_for(params: dict[str, Any], data: Path, fixed: dict[str, Any] = FIXED) -> Any:
    from fashion_tune.config import TrialConfig

    return TrialConfig().with_overrides({**fixed, "data.path": str(data), **params})


def describe(p: dict[str, Any]) -> str:
    sym = p["loss.symmetry"]
    if sym != "none":
        sym += f" {p['loss.lambda_sym']:.2g}"
    return (
        f"{p['model.arch']:<6} {p['loss.gan']:<5} {p['model.d_norm']:<8} "
        f"lr_g {p['optim.lr_g']:.1e} lr_d {p['optim.lr_d']:.1e} sym {sym}"
    )


# -- one config (in a worker process) ------------------------------------------------------------
def record_one(
    index: int, params: dict[str, Any], data: str, work: str, fixed: dict[str, Any] = FIXED
) -> dict[str, Any]:
    """Train one config to the full budget; its curve."""
    import shutil

    import torch

    from fashion_tune.training import train

    torch.set_num_threads(1)
    cfg = config_for(params, Path(data), fixed)
    run_dir = Path(work) / f"config-{index:03d}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a half-trained run from an interrupted start
    ticks: list[dict[str, Any]] = []
    last = {"kimg": 0.0, "t": time.perf_counter()}
    t0 = last["t"]

    def report(m: dict[str, Any], _ckpt: Path | None) -> None:
        now = time.perf_counter()
        kimg = float(m["kimg"])
        train_s = (kimg - last["kimg"]) * 1000 / max(float(m["img_per_s"]), 1e-9)
        frac = min(float(m["eval_frac"]), 0.999)
        eval_s = train_s * frac / (1 - frac)
        ticks.append(
            {
                "kimg": kimg,
                "fd": _num(m.get("fd")),
                "kid": _num(m.get("kid")),
                "recall": _num(m.get("recall")),
                "train_s": train_s,
                "eval_s": eval_s,
                "wall_s": now - last["t"],  # between reports: also checkpointing (and setup)
                "gflop": float(m["gflop"]),
                "progress": float(m["progress"]),
                "diverged": int(m.get("diverged", 0)),
            }
        )
        last.update(kimg=kimg, t=now)

    result = train(cfg, run_dir, report=report, log=lambda _: None, keep_checkpoints=1)
    total_s = time.perf_counter() - t0
    doc = json.loads((run_dir / "flops.json").read_text())
    return {
        "index": index,
        "params": params,
        "flops_per_image": float(doc["flops_per_image"]),
        "status": result.status,
        "total_s": total_s,
        "ticks": ticks,
        "checkpoint": str(result.checkpoint) if result.checkpoint else None,
    }


def _num(v: Any) -> float | None:
    """JSON has no NaN: a missing or non-finite score is null."""
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None


def _record_star(args: tuple[int, dict[str, Any], str, str, dict[str, Any]]) -> dict[str, Any]:
    return record_one(*args)


# -- the data file -------------------------------------------------------------------------------
def load_doc(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def save_doc(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(doc, indent=1) + "\n")


def new_doc(points: list[dict[str, Any]], fixed: dict[str, Any] = FIXED) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "what": "learning curves of GAN configs, Fashion-MNIST 32 px (record_curves.py)",
        "fixed": fixed,
        "space": PARAMS,
        "draw": "config 0 = literature default; then Optuna RandomSampler(seed=0)",
        "objective": {"metric": "fd", "mode": "min"},
        "planned_configs": len(points),
        "machine": machine(),
        "recorded": [],
        "configs": [],
    }


def record(args: argparse.Namespace) -> int:
    data = args.data.resolve()
    points = draw_configs(args.configs)
    doc = load_doc(args.out) or new_doc(points, args.fixed)
    if doc["fixed"] != args.fixed:
        raise SystemExit(f"{args.out} was recorded with other fixed settings; use --out")
    done = {c["index"]: c for c in doc["configs"]}
    for c in done.values():  # a resumed file must have been drawn the same way
        if c["index"] < len(points) and c["params"] != points[c["index"]]:
            raise SystemExit(f"{args.out}: config {c['index']} differs from this draw; use --out")
    doc["planned_configs"] = max(doc.get("planned_configs", 0), len(points))
    todo = [i for i in range(len(points)) if i not in done]
    print(f"Learning curves: {len(points)} configs, {len(done)} recorded, {len(todo)} to train")
    print(f"  out {args.out}; run folders under {args.work}; {args.jobs} at a time")
    print(f"  load avg {loadavg()}")
    for i in todo:
        print(f"    {i:2d} {describe(points[i])}")
    if not todo:
        return 0
    session = {
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_start": loadavg(),
        "jobs": args.jobs,
        "configs": todo,
    }
    doc.setdefault("recorded", []).append(session)
    t0 = time.perf_counter()
    jobs = [(i, points[i], str(data), str(args.work), args.fixed) for i in todo]
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no forked torch threads
    with ctx.Pool(args.jobs, maxtasksperchild=1) as pool:
        for curve in pool.imap_unordered(_record_star, jobs):
            doc["configs"].append(curve)
            doc["configs"].sort(key=lambda c: c["index"])
            session["ended"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
            session["load_end"] = loadavg()
            session["wall_s"] = time.perf_counter() - t0
            save_doc(args.out, doc)
            last = curve["ticks"][-1] if curve["ticks"] else {}
            print(
                f"  [{len(doc['configs'])}/{len(points)}] config {curve['index']:2d} "
                f"{curve['status']} in {curve['total_s']:.0f} s, fd {last.get('fd')}, "
                f"{curve['flops_per_image'] / 1e6:.1f} MFLOP/img "
                f"(elapsed {time.perf_counter() - t0:.0f} s, load {loadavg()})",
                flush=True,
            )
    return 0


# -- the objective's noise -----------------------------------------------------------------------
def sampling_noise(args: argparse.Namespace, doc: dict[str, Any]) -> dict[str, Any]:
    """fd's spread over sampling seeds at the final checkpoints of a few configs, by n."""
    import numpy as np
    import torch

    from fashion_tune.checkpoint import load
    from fashion_tune.config import MetricsConfig
    from fashion_tune.data.reader import ShardSet
    from fashion_tune.metrics import reference as metric_reference
    from fashion_tune.metrics.evaluate import EVAL_SEED, score_images
    from fashion_tune.sampling import fixed_noise, generate
    from fashion_tune.training import _label_freq, rebuild_generator

    torch.set_num_threads(args.jobs)
    shards = ShardSet(str(args.data.resolve()))
    ref = metric_reference.load(str(args.data.resolve()), shards)
    configs = [c for c in doc["configs"] if c["status"] == "finished" and c.get("checkpoint")]
    configs = [c for c in configs if Path(c["checkpoint"]).exists()]
    if not configs:
        raise SystemExit(f"no final checkpoints under {args.work}: record the curves first")
    # spread over quality: the best, the worst and two between (by final fd)
    configs.sort(key=lambda c: c["ticks"][-1]["fd"] if c["ticks"][-1]["fd"] is not None else 1e9)
    picks = sorted({round(q * (len(configs) - 1)) for q in (0.0, 1 / 3, 2 / 3, 1.0)})
    samples, seeds = args.noise_samples, args.noise_seeds
    out: dict[str, Any] = {"samples": list(samples), "seeds": seeds, "configs": []}
    for k in picks[: args.noise_configs]:
        c = configs[k]
        state, cfg = load(c["checkpoint"])
        G = rebuild_generator(state, cfg)
        freq = _label_freq(shards, shards.manifest.splits[0], G.num_classes)
        row: dict[str, Any] = {"index": c["index"], "fd": {}, "kid": {}}
        # the trainer's own evaluation (its n, EVAL_SEED) again: must give the curve's last fd
        fixed = doc["fixed"]
        n_eval = int(fixed["metrics.num_samples"])
        mcfg = MetricsConfig(
            num_samples=n_eval,
            kid_subset_size=int(fixed["metrics.kid_subset_size"]),
            kid_subsets=int(fixed["metrics.kid_subsets"]),
        )
        z = fixed_noise(n_eval, G.z_dim, EVAL_SEED)
        y = None
        if freq is not None:
            y = torch.from_numpy(
                np.random.default_rng(EVAL_SEED).choice(len(freq), size=n_eval, p=freq)
            )
        fakes = generate(G, z, y)
        row["check_fd"] = float(
            score_images(ref, mcfg, fakes, None if y is None else y.numpy())["fd"]
        )
        print(
            f"  config {c['index']:2d} check: fd {row['check_fd']:.4f} with the trainer's noise "
            f"(curve's last tick {c['ticks'][-1]['fd']:.4f})",
            flush=True,
        )
        for n in samples:
            mcfg = MetricsConfig(num_samples=n, kid_subset_size=min(250, n), kid_subsets=20)
            fds, kids = [], []
            for seed in range(seeds):
                z = fixed_noise(n, G.z_dim, 1000 + seed)
                y = None
                if freq is not None:
                    rng = np.random.default_rng(1000 + seed)
                    y = torch.from_numpy(rng.choice(len(freq), size=n, p=freq))
                fakes = generate(G, z, y)
                s = score_images(ref, mcfg, fakes, None if y is None else y.numpy())
                fds.append(float(s["fd"]))
                kids.append(float(s["kid"]))
            row["fd"][str(n)] = fds
            row["kid"][str(n)] = kids
            print(
                f"  config {c['index']:2d} n {n:5d}: fd mean {statistics.mean(fds):.3f} "
                f"std {statistics.stdev(fds):.3f}",
                flush=True,
            )
        out["configs"].append(row)
    return out


def tick_residuals(fd: list[float]) -> tuple[list[float | None], list[float | None]]:
    """Per tick: fd minus the median of it and its two neighbours, and fd minus the mean of
    its two neighbours (None at the ends)."""
    med: list[float | None] = [None] * len(fd)
    mid: list[float | None] = [None] * len(fd)
    for i in range(1, len(fd) - 1):
        med[i] = fd[i] - statistics.median(fd[i - 1 : i + 2])
        mid[i] = fd[i] - (fd[i - 1] + fd[i + 1]) / 2
    return med, mid


def noise_table(doc: dict[str, Any]) -> str:
    """Tick-to-tick noise of fd by budget, next to the spread between configs there."""
    curves = [c for c in doc["configs"] if all(t["fd"] is not None for t in c["ticks"])]
    n_ticks = min(len(c["ticks"]) for c in curves)
    lines = [
        f"Tick-to-tick noise of fd ({len(curves)} curves without NaN), per tick over configs: "
        "'median resid' = RMS of fd minus the median of it and its two neighbours; 'sigma' = "
        "RMS of fd minus the mean of its two neighbours / sqrt(1.5) (the noise of one "
        "evaluation if it is independent between ticks and the trend is locally linear), also "
        "relative to each config's fd (RMS of ratio); next to the spread of fd between configs "
        "at that tick (std, IQR, std among the best third) and the median gap between configs "
        "adjacent in rank.",
        "",
        "| kimg | median resid | sigma | sigma / fd | configs: fd median | std | IQR | "
        "best third: std | adjacent gap | sigma / IQR |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    res = [tick_residuals([t["fd"] for t in c["ticks"]]) for c in curves]
    summary: list[float] = []
    for i in range(n_ticks):
        fds = [c["ticks"][i]["fd"] for c in curves]
        q = statistics.quantiles(fds, n=4)
        iqr = q[2] - q[0]
        ranked = sorted(fds)
        gap = statistics.median(b - a for a, b in itertools.pairwise(ranked))
        top = statistics.pstdev(ranked[: max(2, len(ranked) // 3)])
        med = [r[0][i] for r in res if r[0][i] is not None]
        mid = [(r[1][i], c["ticks"][i]["fd"]) for r, c in zip(res, curves) if r[1][i] is not None]
        if med:
            rms_med = math.sqrt(statistics.mean(x * x for x in med))
            sigma = math.sqrt(statistics.mean(x * x for x, _ in mid) / 1.5)
            rel = math.sqrt(statistics.mean((x / f) ** 2 for x, f in mid) / 1.5)
            summary.append(rel)
            cells = f"{rms_med:.3f} | {sigma:.3f} | {rel:.1%}"
            ratio = f"{sigma / iqr:.2f}" if iqr > 0 else "-"
        else:
            cells, ratio = "- | - | -", "-"
        lines.append(
            f"| {curves[0]['ticks'][i]['kimg']:.2f} | {cells} | {statistics.median(fds):.3f} | "
            f"{statistics.pstdev(fds):.3f} | {iqr:.3f} | {top:.3f} | {gap:.3f} | {ratio} |"
        )
    if summary:
        lines += ["", f"Median over ticks of sigma / fd: {statistics.median(summary):.1%}"]
    return "\n".join(lines)


def sampling_table(noise: dict[str, Any], doc: dict[str, Any]) -> str:
    by_index = {c["index"]: c for c in doc["configs"]}
    lines = [
        f"Sampling noise of fd at final checkpoints ({noise['seeds']} sampling seeds per n; "
        "std over seeds, and std / mean):",
        "",
        f"| config | arch | curve's last fd (n={doc['fixed']['metrics.num_samples']}) | "
        + " | ".join(f"n={n}: mean, std (rel)" for n in noise["samples"])
        + " |",
        "|---:|---|---:|" + "---:|" * len(noise["samples"]),
    ]
    for row in noise["configs"]:
        c = by_index[row["index"]]
        cells = []
        for n in noise["samples"]:
            fds = row["fd"][str(n)]
            m, s = statistics.mean(fds), statistics.stdev(fds)
            cells.append(f"{m:.3f}, {s:.3f} ({s / m:.1%})")
        lines.append(
            f"| {row['index']} | {c['params']['model.arch']} | {c['ticks'][-1]['fd']:.3f} | "
            + " | ".join(cells)
            + " |"
        )
    pooled = []
    for n in noise["samples"]:
        rel = [
            statistics.stdev(r["fd"][str(n)]) / statistics.mean(r["fd"][str(n)])
            for r in noise["configs"]
        ]
        pooled.append(f"n={n}: {statistics.mean(rel):.1%}")
    lines += ["", "Mean relative std over these configs: " + ", ".join(pooled)]
    return "\n".join(lines)


def noise(args: argparse.Namespace) -> int:
    doc = load_doc(args.out)
    if not doc or not doc["configs"]:
        raise SystemExit(f"{args.out} holds no curves: record them first")
    if "sampling_noise" not in doc or args.redo_noise:
        print(f"Sampling noise of fd (load avg {loadavg()})")
        t0 = time.perf_counter()
        doc["sampling_noise"] = sampling_noise(args, doc)
        doc["sampling_noise"]["seconds"] = time.perf_counter() - t0
        doc["sampling_noise"]["date"] = dt.datetime.now(dt.timezone.utc).isoformat(
            timespec="seconds"
        )
        save_doc(args.out, doc)
    print()
    print(noise_table(doc))
    print()
    print(sampling_table(doc["sampling_noise"], doc))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the curves file (JSON)")
    parser.add_argument("--configs", type=int, default=48, help="configs to train (K)")
    parser.add_argument("--jobs", type=int, default=2, help="configs trained at once")
    parser.add_argument("--data", type=Path, default=ROOT / "data" / "fashion-mnist-32")
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="run folders")
    parser.add_argument("--noise", action="store_true", help="measure fd's noise (after curves)")
    parser.add_argument("--noise-configs", type=int, default=4)
    parser.add_argument("--redo-noise", action="store_true", help="measure sampling noise again")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    args.fixed, args.noise_samples, args.noise_seeds = FIXED, NOISE_SAMPLES, NOISE_SEEDS
    if args.smoke:
        return smoke(args)
    return noise(args) if args.noise else record(args)


def smoke(args: argparse.Namespace) -> int:
    """Both modes, tiny, in a temp folder: the committed curves are never read or written."""
    smoke_banner(
        "record_curves.py",
        f"2 configs of 3 ticks of 64 images, widths 8, then their noise; a {SMOKE_IMAGES}-image "
        "set; files in a temp folder",
    )
    with tempfile.TemporaryDirectory(prefix="record-curves-smoke-") as tmp:
        args.out, args.work = Path(tmp) / "curves.json", Path(tmp) / "work"
        args.data = smoke_shards()
        args.configs, args.jobs, args.noise_configs = 2, 2, 2
        args.fixed, args.noise_samples, args.noise_seeds = SMOKE_FIXED, (32, 64), 2
        if record(args):
            return 1
        args.jobs = SMOKE_THREADS  # the noise's torch threads
        return noise(args)


if __name__ == "__main__":
    sys.exit(main())
