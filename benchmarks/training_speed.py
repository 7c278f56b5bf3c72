"""Training speed (issue 3): fashion-tune's training step against the pytorch/examples DCGAN loop.

Both contenders train a DCGAN on Fashion-MNIST at batch 64 and are timed in images per
second (real images shown to D per second) in steady state, after a warm-up:

ours       ``fashion_tune.training.train`` itself, one tick of ``warmup + steps`` steps
           (``schedule.tick_kimg`` = ``schedule.total_kimg``). The ``progress`` callback,
           which ``train`` calls every 10 steps from inside its training loop, stamps the
           clocks (after a CUDA synchronize); the rate is measured from the call after the
           warm-up to the call after the last step, so the evaluation, the checkpoint and
           the set-up are outside it. ``train``'s own per-tick ``img_per_s`` (the whole
           tick, warm-up included, from the ``report`` callback) is kept as a cross-check.
           Two configs: "like" = the pytorch/examples equivalent (unconditional, batch-norm
           D, dcgan widths 64, z 100, n_disc 1, Adam 2e-4 (0.5, 0.999), EMA as default) and
           "default" = our default config (class-conditional, spectral-norm D).
reference  the pytorch/examples ``dcgan/main.py`` networks and update order, written out
           below: D on the real batch with label 1, D on ``fake.detach()`` with label 0, step
           D; then G's loss on D(fake) with label 1, step G. Sigmoid + BCELoss, weights
           N(0, 0.02), Adam 2e-4 (0.5, 0.999), nz 100, ngf = ndf = 64, and the per-step
           ``.item()`` statistics of the example (its printing is left out). 32 px drops
           one stage (4 -> 8 -> 16 -> 32, widths ngf*4, *2, *1), as the usual 32 px ports
           do; cudnn.benchmark is on for it, as in the example.

Data is the same for both: uint8 batches from one ``ShardBatches`` stream over a Fashion-MNIST
shard set (prepared once under ``$FASHION_TUNE_CACHE/bench-data``), read in the main process
and scaled to [-1, 1] with the same ops. Both use the same ``torch.set_num_threads`` (2 by
default). Contenders run interleaved (one repeat of each, in a rotating order, then the next
repeat), each repeat on fresh models; the median over repeats is reported, with the CPU
time per step (``time.process_time``, all threads) to read through a contended machine.

``--device cuda`` also runs "like" with bf16 autocast, channels_last and torch.compile each
on and off (``runtime.amp`` / ``runtime.channels_last`` / ``runtime.compile``); the reference
then runs on the GPU too (fp32, as in the example). Without a CUDA device it says so and
exits 0 (``benchmarks/gpu_packing.py`` runs these rows after its own). ``--profile`` adds one
extra, untimed run of each contender with a torch.profiler table (top ops by self time) of its
timed steps.

Run: ``.venv/bin/python benchmarks/training_speed.py [--quick] [--device cpu|cuda]``.
``--smoke``: 32 px only, every contender's DCGAN at widths 8, 10 + 10 steps, one repeat, on a
500-image set; seconds, to check the code path; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from _bench_common import SMOKE_HELP, SMOKE_IMAGES, SMOKE_THREADS, smoke_banner, smoke_shards
from torch import nn

from fashion_tune.config import TrialConfig
from fashion_tune.data.prepare import prepare
from fashion_tune.data.reader import ShardBatches, ShardSet
from fashion_tune.data.sources import SourceOptions
from fashion_tune.data.storage import cache_root
from fashion_tune.metrics import reference
from fashion_tune.training import train

BATCH = 64
NZ, NGF, NDF = 100, 64, 64
SIZES = (32, 64)
TARGET = 1.0  # ours / reference on CPU
PROGRESS_EVERY = 10  # train() calls progress every 10 steps
# a tiny evaluation at the end of each train() call (outside the timed steps)
METRICS = {"metrics.num_samples": 256, "metrics.kid_subset_size": 128, "metrics.kid_subsets": 4}
LIKE = {
    "data.conditional": False,
    "model.arch": "dcgan",
    "model.d_norm": "batch",
    "model.g_width": NGF,
    "model.d_width": NDF,
    "model.z_dim": NZ,
    "model.g_depth": 0,
    "model.d_depth": 0,
    "optim.n_disc": 1,
    "optim.lr_g": 2e-4,
    "optim.lr_d": 2e-4,
    "optim.beta1": 0.5,
    "optim.beta2": 0.999,
    "loss.gan": "ns",
}
DEFAULT: dict[str, Any] = {}  # TrialConfig() as it is: conditional, spectral-norm D


@dataclass(frozen=True)
class Counts:
    warmup: int  # steps before the clock starts (a multiple of 10 for ours)
    steps: int  # timed steps per repeat (a multiple of 10)
    repeats: int


FULL = Counts(warmup=10, steps=40, repeats=5)
QUICK = Counts(warmup=10, steps=10, repeats=1)
SMOKE = QUICK  # and 32 px only, widths SMOKE_WIDTH, on a 500-image set
SMOKE_WIDTH = 8  # ngf = ndf of the reference and model.g_width / d_width of ours


@dataclass(frozen=True)
class Contender:
    name: str  # row label
    kind: str  # "ours" or "ref"
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sample:
    img_per_s: float  # steady state, timed steps only
    cpu_s_per_step: float  # process CPU time (all threads) per timed step
    wall_s_per_step: float
    train_img_per_s: float | None = None  # ours: train()'s own img_per_s for the whole tick


@dataclass
class Result:
    size: int
    contender: Contender
    samples: list[Sample] = field(default_factory=list)

    def median(self, attr: str) -> float:
        vals = [getattr(s, attr) for s in self.samples if getattr(s, attr) is not None]
        return statistics.median(vals) if vals else float("nan")


# -- data ----------------------------------------------------------------------------------------
def shard_set(data_dir: Path, size: int) -> Path:
    """Fashion-MNIST at ``size`` px as a shard set (prepared once, then reused)."""
    out = data_dir / f"train-speed-fmnist-{size}"
    t0 = time.perf_counter()
    res = prepare("fashion-mnist", None, str(out), SourceOptions(size=size))
    if not res.already_complete:
        print(f"  prepared {out} in {time.perf_counter() - t0:.0f} s (once)")
    shards = ShardSet(out)
    t0 = time.perf_counter()
    # the metric reference is made once per shard set, before any trial (train() loads it)
    reference.ensure(shards.location, log=lambda _: None)
    if time.perf_counter() - t0 > 2:
        print(f"  metric feature net / real stats ready in {time.perf_counter() - t0:.0f} s (once)")
    return out


def endless(stream: ShardBatches) -> Iterator[torch.Tensor]:
    epoch = 0
    while True:
        stream.set_epoch(epoch)
        for images, _ in stream:
            yield images
        epoch += 1


# -- the pytorch/examples DCGAN ------------------------------------------------------------------
def weights_init(m: nn.Module) -> None:
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


class RefGenerator(nn.Module):
    def __init__(self, img_size: int, nc: int, nz: int = NZ, ngf: int = NGF) -> None:
        super().__init__()
        if img_size == 64:
            layers: list[nn.Module] = [
                # input is Z, going into a convolution
                nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
                nn.BatchNorm2d(ngf * 8),
                nn.ReLU(True),
                # state size. (ngf*8) x 4 x 4
                nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ngf * 4),
                nn.ReLU(True),
            ]
        elif img_size == 32:
            layers = [
                nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False),
                nn.BatchNorm2d(ngf * 4),
                nn.ReLU(True),
            ]
        else:
            raise ValueError(f"reference DCGAN: 32 or 64 px, not {img_size}")
        layers += [
            # state size. (ngf*4) x 8 x 8  (32 px: x 4 x 4)
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            # state size. (ngf*2) x 16 x 16
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            # state size. (ngf) x 32 x 32
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
            # state size. (nc) x 64 x 64
        ]
        self.main = nn.Sequential(*layers)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input)


class RefDiscriminator(nn.Module):
    def __init__(self, img_size: int, nc: int, ndf: int = NDF) -> None:
        super().__init__()
        if img_size not in (32, 64):
            raise ValueError(f"reference DCGAN: 32 or 64 px, not {img_size}")
        layers: list[nn.Module] = [
            # input is (nc) x 64 x 64
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf) x 32 x 32
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            # state size. (ndf*2) x 16 x 16
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        top = ndf * 4
        if img_size == 64:
            layers += [
                # state size. (ndf*4) x 8 x 8
                nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * 8),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            top = ndf * 8
        layers += [
            # state size. (ndf*8) x 4 x 4  (32 px: ndf*4)
            nn.Conv2d(top, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        ]
        self.main = nn.Sequential(*layers)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input).view(-1, 1).squeeze(1)


# -- timing --------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Clock:
    """Wall and process-CPU stamps at step counts; a profiler over the timed steps if asked."""

    def __init__(self, device: torch.device, start_step: int, end_step: int, profile: bool):
        self.device, self.start_step, self.end_step = device, start_step, end_step
        self.stamps: dict[int, tuple[float, float]] = {}
        self.prof = _profiler(device) if profile else None

    def stamp(self, step: int) -> None:
        if step in self.stamps or step not in (self.start_step, self.end_step):
            return
        sync(self.device)
        if step == self.end_step and self.prof is not None:
            self.prof.stop()
        self.stamps[step] = (time.perf_counter(), time.process_time())
        if step == self.start_step and self.prof is not None:
            self.prof.start()

    def sample(self, train_img_per_s: float | None = None) -> Sample:
        (w0, c0), (w1, c1) = self.stamps[self.start_step], self.stamps[self.end_step]
        n = self.end_step - self.start_step
        return Sample(n * BATCH / (w1 - w0), (c1 - c0) / n, (w1 - w0) / n, train_img_per_s)


def _profiler(device: torch.device) -> torch.profiler.profile:
    acts = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    return torch.profiler.profile(activities=acts)


def run_reference(
    data: Path,
    size: int,
    device: torch.device,
    counts: Counts,
    seed: int,
    profile: bool,
    width: int | None = None,
) -> tuple[Sample, Clock]:
    torch.manual_seed(seed)
    shards = ShardSet(data)
    batches = endless(ShardBatches(shards, split="train", batch_size=BATCH, seed=seed))
    nc = shards.channels
    netG = RefGenerator(size, nc, ngf=width or NGF).to(device)
    netG.apply(weights_init)
    netD = RefDiscriminator(size, nc, ndf=width or NDF).to(device)
    netD.apply(weights_init)
    criterion = nn.BCELoss()
    optimizerD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizerG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real_label, fake_label = 1, 0
    stats: list[float] = []

    def step() -> None:
        images = next(batches)
        real_cpu = images.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)
        ############################
        # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
        ###########################
        # train with real
        netD.zero_grad()
        batch_size = real_cpu.size(0)
        label = torch.full((batch_size,), real_label, dtype=real_cpu.dtype, device=device)
        output = netD(real_cpu)
        errD_real = criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        # train with fake
        noise = torch.randn(batch_size, NZ, 1, 1, device=device)
        fake = netG(noise)
        label.fill_(fake_label)
        output = netD(fake.detach())
        errD_fake = criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        optimizerD.step()
        ############################
        # (2) Update G network: maximize log(D(G(z)))
        ###########################
        netG.zero_grad()
        label.fill_(real_label)  # fake labels are real for generator cost
        output = netD(fake)
        errG = criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        optimizerG.step()
        stats[:] = [errD.item(), errG.item(), D_x, D_G_z1, D_G_z2]

    clock = Clock(device, counts.warmup, counts.warmup + counts.steps, profile)
    with cudnn_benchmark(device.type == "cuda"):
        for i in range(counts.warmup + counts.steps):
            clock.stamp(i)
            step()
        clock.stamp(counts.warmup + counts.steps)
    return clock.sample(), clock


@contextlib.contextmanager
def cudnn_benchmark(on: bool) -> Iterator[None]:
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


def ours_config(
    data: Path, device: str, threads: int, counts: Counts, seed: int, overrides: dict[str, Any]
) -> TrialConfig:
    kimg = (counts.warmup + counts.steps) * BATCH / 1000
    return TrialConfig().with_overrides(
        {
            "data.path": str(data),
            "data.batch_size": BATCH,
            "schedule.total_kimg": kimg,
            "schedule.tick_kimg": kimg,
            "runtime.device": device,
            "runtime.threads": threads,
            "runtime.seed": seed,
            "runtime.amp": "off",
            "runtime.channels_last": "off",
            "runtime.compile": False,
            **METRICS,
            **overrides,
        }
    )


def run_ours(
    data: Path,
    device: torch.device,
    threads: int,
    counts: Counts,
    seed: int,
    overrides: dict[str, Any],
    profile: bool,
) -> tuple[Sample, Clock]:
    cfg = ours_config(data, device.type, threads, counts, seed, overrides)
    clock = Clock(device, counts.warmup, counts.warmup + counts.steps, profile)
    reports: list[dict[str, Any]] = []
    in_loop = [True]

    def progress(kimg: float, _total: float, _metrics: dict[str, Any]) -> None:
        if in_loop[0]:  # the last call comes after the evaluation: skip it
            clock.stamp(round(kimg * 1000) // BATCH)

    def report(metrics: dict[str, Any], _ckpt: Path | None) -> None:
        in_loop[0] = False
        reports.append(metrics)

    with tempfile.TemporaryDirectory(prefix="train-speed-") as run_dir:
        res = train(cfg, run_dir, report=report, progress=progress, log=lambda _: None)
    if res.status != "finished" or len(reports) != 1:
        raise RuntimeError(f"train() ended {res.status!r} after {len(reports)} ticks")
    return clock.sample(float(reports[0]["img_per_s"])), clock


# -- the plan ------------------------------------------------------------------------------------
def run_one(
    c: Contender,
    data: Path,
    size: int,
    device: torch.device,
    threads: int,
    counts: Counts,
    seed: int,
    profile: bool = False,
    width: int | None = None,
) -> tuple[Sample, Clock]:
    """One timed run; ``width`` (--smoke) replaces every contender's DCGAN widths."""
    if c.kind == "ref":
        return run_reference(data, size, device, counts, seed, profile, width)
    overrides = dict(c.overrides)
    if width:
        overrides.update({"model.g_width": width, "model.d_width": width})
    return run_ours(data, device, threads, counts, seed, overrides, profile)


def contenders(device: torch.device) -> list[Contender]:
    rows = [
        Contender("reference (pytorch/examples)", "ref"),
        Contender("ours, like-for-like", "ours", LIKE),
        Contender("ours, default config", "ours", DEFAULT),
    ]
    if device.type == "cuda":
        rows = rows[:1]
        for amp, cl, comp in itertools.product(("off", "bf16"), ("off", "on"), (False, True)):
            knobs = {"runtime.amp": amp, "runtime.channels_last": cl, "runtime.compile": comp}
            tag = f"amp={amp} cl={cl} compile={'on' if comp else 'off'}"
            rows.append(Contender(f"ours, like-for-like, {tag}", "ours", {**LIKE, **knobs}))
        for amp, cl in (("off", "off"), ("bf16", "on")):
            knobs = {"runtime.amp": amp, "runtime.channels_last": cl}
            tag = f"amp={amp} cl={cl} compile=off"
            rows.append(Contender(f"ours, default config, {tag}", "ours", {**DEFAULT, **knobs}))
    return rows


def machine(threads: int, device: torch.device) -> dict[str, str]:
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {
        "cpu": f"{cpu}, {os.cpu_count()} logical cores",
        "torch": torch.__version__,
        "threads": f"torch.set_num_threads({threads}) for both "
        f"(interop {torch.get_num_interop_threads()})",
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def loadavg() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def table(results: list[Result], device: torch.device) -> tuple[str, dict[str, Any]]:
    lines = [
        "| setting | ours img/s | reference img/s | ours / reference | ours CPU s/step "
        "| ref CPU s/step | train() img_per_s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    summary: dict[str, Any] = {}
    for size in sorted({r.size for r in results}):  # the sizes run (--sizes)
        ref = next(r for r in results if r.size == size and r.contender.kind == "ref")
        ref_rate = ref.median("img_per_s")
        for r in results:
            if r.size != size or r.contender.kind != "ours":
                continue
            rate = r.median("img_per_s")
            ratio = rate / ref_rate
            met = ratio >= TARGET
            summary[f"{size}px {r.contender.name}"] = {"ratio": ratio, "met": met}
            verdict = "" if device.type == "cuda" else (" met" if met else " MISSED")
            lines.append(
                f"| {size} px, {r.contender.name.removeprefix('ours, ')} | {rate:,.0f} "
                f"| {ref_rate:,.0f} | {ratio:.2f}x{verdict} | {r.median('cpu_s_per_step'):.3f} "
                f"| {ref.median('cpu_s_per_step'):.3f} | {r.median('train_img_per_s'):,.0f} |"
            )
    return "\n".join(lines), summary


def print_profile(label: str, clock: Clock, rows: int) -> None:
    if clock.prof is None:
        return
    sort = "self_cuda_time_total" if clock.device.type == "cuda" else "self_cpu_time_total"
    steps = clock.end_step - clock.start_step
    print(f"\n-- profile: {label} ({steps} timed steps) --")
    print(clock.prof.key_averages().table(sort_by=sort, row_limit=rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="one short repeat (< 60 s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads for both")
    parser.add_argument("--warmup", type=int, help="steps before timing (multiple of 10)")
    parser.add_argument("--steps", type=int, help="timed steps per repeat (multiple of 10)")
    parser.add_argument("--repeats", type=int, help="repeats per contender (median reported)")
    parser.add_argument("--sizes", type=int, nargs="+", choices=SIZES, default=list(SIZES))
    parser.add_argument(
        "--profile", action="store_true", help="also profile one extra run of each contender"
    )
    parser.add_argument("--profile-rows", type=int, default=25, help="ops per profile table")
    parser.add_argument("--data-dir", type=Path, help="where the shard sets are kept")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)

    base = SMOKE if args.smoke else QUICK if args.quick else FULL
    width = SMOKE_WIDTH if args.smoke else None
    if args.smoke:
        args.sizes, args.threads = [32], SMOKE_THREADS
    counts = Counts(
        warmup=args.warmup if args.warmup is not None else base.warmup,
        steps=args.steps or base.steps,
        repeats=args.repeats or base.repeats,
    )
    if counts.warmup % PROGRESS_EVERY or counts.steps % PROGRESS_EVERY or counts.warmup < 1:
        parser.error(f"--warmup and --steps must be positive multiples of {PROGRESS_EVERY}")
    if args.device == "cuda" and not torch.cuda.is_available():
        # the CUDA rows are for a GPU machine: without one there is nothing to measure
        print(
            f"training_speed --device cuda: no CUDA device is visible (torch {torch.__version__}"
            f"): the CUDA rows (bf16, channels_last, torch.compile) are skipped"
        )
        return 0
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    data_dir: Path = args.data_dir or cache_root() / "bench-data"
    data_dir.mkdir(parents=True, exist_ok=True)

    info = machine(args.threads, device)
    if args.smoke:
        smoke_banner(
            "training_speed.py",
            f"32 px only, DCGAN widths {SMOKE_WIDTH}, {counts.warmup} + {counts.steps} steps, "
            f"{counts.repeats} repeat, a {SMOKE_IMAGES}-image set",
        )
    print("Training speed benchmark" + (" (--quick)" if args.quick else ""))
    for k, v in info.items():
        print(f"  {k:<8} {v}")
    print(f"  counts   {asdict(counts)} (batch {BATCH})")
    print(f"  load avg {loadavg()} (1/5/15 min) at the start")
    t_start = time.perf_counter()
    loads: list[float] = [os.getloadavg()[0]]

    results: list[Result] = []
    rows = contenders(device)
    for size in args.sizes:
        print(f"\n[{size} px] Fashion-MNIST train split, batch {BATCH}")
        data = smoke_shards(size) if args.smoke else shard_set(data_dir, size)
        res = {c.name: Result(size, c) for c in rows}
        results += res.values()
        for rep in range(counts.repeats):
            k = rep % len(rows)
            for c in rows[k:] + rows[:k]:  # rotate the order: no contender always goes first
                s, _ = run_one(c, data, size, device, args.threads, counts, rep, width=width)
                res[c.name].samples.append(s)
                loads.append(os.getloadavg()[0])
                extra = f", train() {s.train_img_per_s:,.0f}" if s.train_img_per_s else ""
                print(
                    f"  rep {rep + 1}/{counts.repeats} {c.name:<30} {s.img_per_s:7,.1f} img/s "
                    f"(CPU {s.cpu_s_per_step:.3f} s/step, wall {s.wall_s_per_step:.3f} s/step"
                    f"{extra}); load {loads[-1]:.2f}"
                )
        if args.profile:  # extra, untimed runs: the profiler slows what it watches
            for c in rows:
                _, clock = run_one(c, data, size, device, args.threads, counts, 0, True, width)
                print_profile(f"{size} px {c.name}", clock, rows=args.profile_rows)

    text, summary = table(results, device)
    print()
    print(text)
    elapsed = time.perf_counter() - t_start
    print(
        f"\ntotal {elapsed:.0f} s; 1-min load avg over the run: min {min(loads):.2f}, "
        f"max {max(loads):.2f}; at the end {loadavg()}"
    )
    if device.type == "cpu":
        met = all(v["met"] for v in summary.values())
        print(f"CPU target ours/reference >= {TARGET:.1f}x: {'met' if met else 'MISSED'}")
    if args.json:
        payload = {
            "machine": info,
            "quick": args.quick,
            "smoke": args.smoke,
            "counts": asdict(counts),
            "load_1min": loads,
            "results": [
                {
                    "size": r.size,
                    "contender": asdict(r.contender),
                    "samples": [asdict(s) for s in r.samples],
                    "median_img_per_s": r.median("img_per_s"),
                }
                for r in results
            ],
            "summary": summary,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
