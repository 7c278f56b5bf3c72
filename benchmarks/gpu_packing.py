"""GPU density (issue 10, part 7): aggregate images/s on one GPU with 1, 2, 4 and 8 trials at once.

Each trial is its own process (as Ray runs each trial in its own actor) training
``search_spaces/dcgan_symmetry.yaml``'s default point (its first point, the literature
default: DCGAN widths 64 at 64 px, spectral norm, ns loss, lr 2e-4) through
``fashion_tune.training.train`` on Fashion-MNIST at 64 px (the space's DeepFashion set is not
needed to time a step; the model and batch are the same). With N trials per GPU each gets
what a search with ``resources: {gpu: 1/N}`` gives it today: ``runtime.gpu_mem_frac`` =
0.95 / N (the trainable's cap for a fractional GPU, ``fashion_tune/search/trainable.py``),
and the runtime defaults on CUDA (bf16 autocast, channels_last; ``--compile`` adds
torch.compile).

Timing: every process warms up (``--warmup`` steps, plus compilation when asked), waits at
a barrier, then trains ``--steps`` more steps, stamping (time, images) every 10 steps from
train()'s ``progress`` callback (after a CUDA synchronize). The aggregate rate is the images
all processes showed between the barrier and the moment the first one finished, divided by
that window; so the slowest and fastest trials are measured over the same seconds. The
table gives it against one trial alone (the packing gain) and each process's peak memory.

Then, unless ``--no-speed``, it runs the training-speed benchmark's CUDA rows
(``benchmarks/training_speed.py --device cuda``: bf16, channels_last and torch.compile on
and off, against the pytorch/examples DCGAN).

Without CUDA it says so and exits 0. ``--smoke`` runs the harness in seconds, to check it:
2 trials of 10 + 10 steps, widths 8, on a 500-image 32 px set, on the GPU when there is one,
else on the CPU (``--cpu-smoke``: always on the CPU); no training-speed rows; its numbers mean
nothing. Counts given on the command line still apply.

Run: ``.venv/bin/python benchmarks/gpu_packing.py [--trials 1 2 4 8] [--compile] [--json F]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench_common import SMOKE_HELP, SMOKE_IMAGES, smoke_banner, smoke_shards

ROOT = Path(__file__).resolve().parent.parent
SPACE = ROOT / "search_spaces" / "dcgan_symmetry.yaml"
PROGRESS_EVERY = 10  # train() calls progress every 10 steps
DEFAULTS = {"trials": [1, 2, 4, 8], "warmup": 50, "steps": 300}
SMOKE = {"trials": [2], "warmup": 10, "steps": 10}
SMOKE_CONFIG = {
    "model.g_width": 8,
    "model.d_width": 8,
    "metrics.num_samples": 64,
    "metrics.kid_subset_size": 32,
}
MEM_SHARE = 0.95  # the trainable's cap for a fractional GPU: 0.95 x the share


def no_cuda_message() -> str | None:
    import torch

    if torch.cuda.is_available():
        return None
    build = torch.version.cuda or "none (a CPU-only build)"
    return (
        f"gpu_packing: no CUDA device is visible (torch {torch.__version__}, CUDA build "
        f"{build}): nothing measured. Run it on a machine with a GPU: "
        ".venv/bin/python benchmarks/gpu_packing.py"
    )


def trial_config(data: str, n: int, args: argparse.Namespace, device: str) -> Any:
    """The space's default point, one tick long, capped to a 1/n share of the GPU."""
    from fashion_tune.search.space import load_space

    space = load_space(SPACE)
    batch = space.first_config().data.batch_size
    kimg = (args.warmup + args.steps) * batch / 1000
    overrides: dict[str, Any] = {
        "data.path": data,
        "schedule.total_kimg": kimg,
        "schedule.tick_kimg": kimg,
        "schedule.snapshot_ticks": 1000,
        "metrics.num_samples": 256,  # one small evaluation at the end, outside the timing
        "metrics.kid_subset_size": 128,
        "metrics.kid_subsets": 4,
        "runtime.device": device,
        "runtime.compile": bool(args.compile),
    }
    if device == "cuda" and n > 1:
        overrides["runtime.gpu_mem_frac"] = round(MEM_SHARE / n, 4)
    if device == "cpu":
        overrides["runtime.threads"] = 1
    if args.smoke or args.cpu_smoke:
        overrides.update(SMOKE_CONFIG)
    return space.first_config(overrides)


def worker(rank: int, cfg_json: str, warmup: int, barrier: Any, queue: Any) -> None:
    """One trial: train, stamping (time, images) after the barrier."""
    import torch

    from fashion_tune.config import TrialConfig
    from fashion_tune.training import train

    cfg = TrialConfig.from_dict(json.loads(cfg_json))
    cuda = cfg.runtime.device == "cuda"
    batch = cfg.data.batch_size
    stamps: list[tuple[float, int]] = []
    state = {"in_loop": True, "waited": False}

    def progress(kimg: float, _total: float, _m: dict[str, Any]) -> None:
        if not state["in_loop"]:
            return
        step = round(kimg * 1000) // batch
        if step < warmup:
            return
        if cuda:
            torch.cuda.synchronize()
        if not state["waited"]:
            barrier.wait()  # every trial warmed up: the window starts together
            state["waited"] = True
        stamps.append((time.time(), round(kimg * 1000)))

    def report(_m: dict[str, Any], _ckpt: Any) -> None:
        state["in_loop"] = False

    try:
        with tempfile.TemporaryDirectory(prefix="gpu-packing-") as run_dir:
            res = train(cfg, run_dir, report=report, progress=progress, log=lambda _: None)
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else math.nan
        queue.put({"rank": rank, "stamps": stamps, "status": res.status, "peak_mib": peak})
    except Exception as exc:  # an out-of-memory trial is a result, not a crash
        if not state["waited"]:
            barrier.abort()
        queue.put({"rank": rank, "error": f"{type(exc).__name__}: {str(exc)[:200]}"})


def aggregate(runs: list[dict[str, Any]]) -> tuple[float, float]:
    """(images/s over the common window, window seconds)."""
    t0 = max(r["stamps"][0][0] for r in runs)
    t1 = min(r["stamps"][-1][0] for r in runs)
    if t1 <= t0:
        return math.nan, 0.0
    total = 0.0
    for r in runs:
        total += _images_at(r["stamps"], t1) - _images_at(r["stamps"], t0)
    return total / (t1 - t0), t1 - t0


def _images_at(stamps: list[tuple[float, int]], t: float) -> float:
    """Images shown by time t, linear between stamps."""
    for (ta, na), (tb, nb) in itertools.pairwise(stamps):
        if ta <= t <= tb:
            return na + (nb - na) * (t - ta) / max(tb - ta, 1e-12)
    return float(stamps[-1][1] if t >= stamps[-1][0] else stamps[0][1])


def measure(n: int, data: str, args: argparse.Namespace, device: str) -> dict[str, Any]:
    cfg = trial_config(data, n, args, device)
    ctx = mp.get_context("spawn")  # CUDA needs fresh processes
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(i, cfg.to_json(), args.warmup, barrier, queue))
        for i in range(n)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    out = [queue.get(timeout=args.timeout) for _ in procs]
    for p in procs:
        p.join()
    errors = [r["error"] for r in out if "error" in r]
    row: dict[str, Any] = {
        "trials": n,
        "gpu_mem_frac": cfg.runtime.gpu_mem_frac,
        "wall_s": time.perf_counter() - t0,
        "errors": errors,
    }
    if errors:
        return row
    rate, window = aggregate(out)
    row.update(
        img_per_s=rate,
        window_s=window,
        per_trial=rate / n,
        peak_mib=max(r["peak_mib"] for r in out),
    )
    return row


def fashion_mnist_64(data_dir: Path | None) -> str:
    from fashion_tune.data.prepare import prepare
    from fashion_tune.data.sources import SourceOptions
    from fashion_tune.data.storage import cache_root
    from fashion_tune.metrics import reference

    out = (data_dir or cache_root() / "bench-data") / "train-speed-fmnist-64"
    out.parent.mkdir(parents=True, exist_ok=True)
    prepare("fashion-mnist", None, str(out), SourceOptions(size=64))
    reference.ensure(str(out), log=lambda _: None)
    return str(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--trials", type=int, nargs="+", help="trials per GPU (1 2 4 8)")
    parser.add_argument("--warmup", type=int, help="steps before timing (50)")
    parser.add_argument("--steps", type=int, help="timed steps per trial (300)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--data-dir", type=Path, help="where the 64 px shard set is kept")
    parser.add_argument("--data", help="a prepared shard set to use instead (any size)")
    parser.add_argument("--timeout", type=float, default=900, help="s to wait for a trial")
    parser.add_argument("--no-speed", action="store_true", help="skip training_speed's CUDA rows")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    parser.add_argument("--cpu-smoke", action="store_true", help="--smoke, on the CPU")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    args = parser.parse_args(argv)
    smoke = args.smoke or args.cpu_smoke
    for name, value in (SMOKE if smoke else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.warmup % PROGRESS_EVERY or args.steps % PROGRESS_EVERY or args.warmup < 1:
        parser.error(f"--warmup and --steps must be positive multiples of {PROGRESS_EVERY}")

    message = no_cuda_message()
    if message and not smoke:
        print(message)
        return 0
    device = "cpu" if args.cpu_smoke or message else "cuda"
    import torch

    if smoke:
        smoke_banner(
            "gpu_packing.py",
            f"trials {args.trials}, {args.warmup} + {args.steps} steps, widths 8, on the "
            f"{device}, a {SMOKE_IMAGES}-image 32 px set unless --data",
        )
    print("GPU packing: aggregate images/s with N trials of dcgan_symmetry.yaml's default point")
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "none (CPU smoke run)"
    print(f"  gpu      {gpu}; torch {torch.__version__}")
    print(f"  counts   warmup {args.warmup} + {args.steps} timed steps; compile {args.compile}")
    if args.data:
        data = args.data
    elif smoke:
        data = str(smoke_shards())
    else:
        data = fashion_mnist_64(args.data_dir)
    rows = []
    for n in args.trials:
        row = measure(n, data, args, device)
        rows.append(row)
        if row["errors"]:
            print(f"  {n} trials: failed: {row['errors'][0]}", flush=True)
        else:
            print(
                f"  {n} trials: {row['img_per_s']:,.0f} img/s together over {row['window_s']:.1f}"
                f" s, peak {row['peak_mib']:,.0f} MiB per trial",
                flush=True,
            )
    alone = next((r.get("img_per_s") for r in rows if r["trials"] == 1), None)
    print()
    print("| trials per GPU | gpu_mem_frac | aggregate img/s | per trial | vs 1 trial | peak MiB |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if r["errors"]:
            print(f"| {r['trials']} | {r['gpu_mem_frac']:g} | failed: {r['errors'][0][:60]} |||")
            continue
        gain = f"{r['img_per_s'] / alone:.2f}x" if alone else "-"
        print(
            f"| {r['trials']} | {r['gpu_mem_frac']:g} | {r['img_per_s']:,.0f} | "
            f"{r['per_trial']:,.0f} | {gain} | {r['peak_mib']:,.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"gpu": gpu, "rows": rows}, indent=1))
    if not args.no_speed and device == "cuda" and not smoke:
        print("\nTraining-speed benchmark, CUDA rows:", flush=True)
        cmd = [sys.executable, str(ROOT / "benchmarks" / "training_speed.py"), "--device", "cuda"]
        return subprocess.call(cmd, env=os.environ.copy())
    return 0


if __name__ == "__main__":
    sys.exit(main())
