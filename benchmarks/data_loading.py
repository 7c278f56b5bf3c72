"""Data-loading throughput (issue 2): our shard reader against the usual alternatives.

Every contender delivers uint8 batches of 64 images at the training size:

(a) ``ShardBatches`` over a memory-mapped shard set, iterated in the main process and
    through ``DataLoader(batch_size=None, num_workers=2)``; the better of the two counts;
(b) torchvision ``ImageFolder`` + PIL JPEG decode + resize + ``PILToTensor`` over the same
    images stored as JPEG files with a 300 px long side (DeepFashion-like), through
    ``DataLoader(batch_size=64, shuffle=True, num_workers=2)``;
(c) torchvision ``datasets.FashionMNIST`` (IDX files, no download) with ``Pad(2)`` +
    ``PILToTensor`` through ``DataLoader(batch_size=64, shuffle=True)`` with 0 and 2
    workers; the better counts (32 px setting only);
(d) a memcpy ceiling: ``np.copyto`` of one batch's bytes (contiguous) from an array as
    large as the shard set's images into a preallocated buffer.

Two settings: Fashion-MNIST 32 px grayscale (a, b, c, d) and RGB 64 px prepared from
JPEGs by the ``folder`` source (a, b, d). Rates are images per second, so (b) may run
over a subset of the images (JPEG decoding is slow); the subset size does not change a
per-image rate. Each contender is warmed up, then a fixed number of batches is timed,
three times; the median is reported. Worker loaders use persistent workers, so epoch
boundaries inside a timed run cost what they cost in training, not a process restart.

Generated inputs (JPEG trees, shard sets, IDX copies) are kept under
``$FASHION_TUNE_CACHE/bench-data`` (default ``~/.cache/fashion-tune/bench-data``) or
``--data-dir`` and reused by later runs.

Run: ``.venv/bin/python benchmarks/data_loading.py [--quick]`` (``make bench``).
``--smoke`` runs every contender for a handful of batches (a 500-image Fashion-MNIST set,
128 JPEGs per tree) in seconds, to check the code path; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL
import torch
import torchvision
from _bench_common import SMOKE_HELP, SMOKE_IMAGES, smoke_banner
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from fashion_tune.data.prepare import prepare
from fashion_tune.data.reader import ShardBatches, ShardSet
from fashion_tune.data.sources import SourceOptions
from fashion_tune.data.sources.fashion_mnist import (
    CLASSES,
    FILES,
    IMAGE_MAGIC,
    LABEL_MAGIC,
    default_folder,
    read_idx,
)
from fashion_tune.data.storage import cache_root

BATCH = 64
REPEATS = 3
TARGETS = {"a/b": 20.0, "a/c": 5.0, "a/d": 0.5}


# -- configuration -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Counts:
    """Batches to warm up with and to time per repetition, per contender."""

    warmup: int
    timed: int


S32 = "FM 32px L"
S64 = "JPEG 64px RGB"


@dataclass(frozen=True)
class Plan:
    gray_jpegs: int  # JPEG subset for (b) in the 32 px setting
    rgb_jpegs: int  # JPEG tree of the 64 px setting: its folder shard set and (b)
    counts: dict[str, dict[str, Counts]]  # setting -> contender -> counts


FULL = Plan(
    gray_jpegs=5000,
    rgb_jpegs=10000,
    counts={
        S32: {
            "a-main": Counts(500, 40000),
            "a-workers": Counts(100, 3000),
            "b": Counts(8, 80),
            "c-main": Counts(20, 400),
            "c-workers": Counts(40, 800),
            "d": Counts(2000, 200000),
        },
        S64: {
            "a-main": Counts(200, 10000),
            "a-workers": Counts(50, 1000),
            "b": Counts(8, 60),
            "d": Counts(500, 40000),
        },
    },
)
QUICK = Plan(
    gray_jpegs=320,
    rgb_jpegs=640,
    counts={
        S32: {
            "a-main": Counts(50, 2000),
            "a-workers": Counts(10, 100),
            "b": Counts(2, 5),
            "c-main": Counts(5, 30),
            "c-workers": Counts(10, 50),
            "d": Counts(200, 10000),
        },
        S64: {
            "a-main": Counts(20, 500),
            "a-workers": Counts(10, 50),
            "b": Counts(2, 5),
            "d": Counts(50, 2000),
        },
    },
)


SMOKE = Plan(
    gray_jpegs=128,  # at least one full batch of 64 per tree
    rgb_jpegs=128,
    counts={
        S32: {
            "a-main": Counts(1, 2),
            "a-workers": Counts(1, 2),
            "b": Counts(1, 1),
            "c-main": Counts(1, 2),
            "c-workers": Counts(1, 2),
            "d": Counts(1, 2),
        },
        S64: {
            "a-main": Counts(1, 2),
            "a-workers": Counts(1, 2),
            "b": Counts(1, 1),
            "d": Counts(1, 2),
        },
    },
)


# -- results -------------------------------------------------------------------------------------
@dataclass
class Measurement:
    setting: str
    key: str  # a, b, c, d
    label: str
    workers: str
    rates: list[float] = field(default_factory=list)  # img/s, one per repetition

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def time_batches(batches: Iterator[Any], counts: Counts) -> list[float]:
    """Warm up, then time ``counts.timed`` batches ``REPEATS`` times; img/s per repetition."""
    for _ in range(counts.warmup):
        next(batches)
    rates = []
    for _ in range(REPEATS):
        n_images = 0
        t0 = time.perf_counter()
        for _ in range(counts.timed):
            images = next(batches)[0]
            n_images += images.shape[0]
        rates.append(n_images / (time.perf_counter() - t0))
    return rates


def check_batch(images: torch.Tensor, shape: tuple[int, int, int]) -> None:
    expected = (BATCH, *shape)
    if images.dtype != torch.uint8 or tuple(images.shape) != expected:
        raise SystemExit(
            f"contender delivered {images.dtype} {tuple(images.shape)}, expected uint8 {expected}"
        )


def endless(loader: Iterable[Any]) -> Iterator[Any]:
    """Epoch after epoch; a ``ShardBatches`` (main process) moves on to the next epoch."""
    epoch = 0
    while True:
        yield from loader
        epoch += 1
        if isinstance(loader, ShardBatches):
            loader.set_epoch(epoch)


def announce(m: Measurement) -> None:
    us = 1e6 * BATCH / m.median
    print(
        f"  {m.setting:<13} ({m.key}) {m.label:<42} {m.workers:>4}: "
        f"{m.median:>12,.0f} img/s  {us:>9,.1f} us/batch",
        flush=True,
    )


def measure_loader(
    out: list[Measurement],
    setting: str,
    key: str,
    label: str,
    make: Callable[[], Iterable[Any]],
    counts: Counts,
    shape: tuple[int, int, int],
) -> None:
    """Time a loader built by ``make``; its worker processes end before this returns."""
    loader = make()
    workers = getattr(loader, "num_workers", 0)
    stream = endless(loader)
    check_batch(next(stream)[0], shape)
    m = Measurement(setting, key, label, str(workers) if workers else "main")
    m.rates = time_batches(stream, counts)
    stream.close()
    del stream, loader
    gc.collect()
    deadline = time.monotonic() + 30
    while mp.active_children() and time.monotonic() < deadline:
        time.sleep(0.05)  # persistent workers exit once their DataLoader is collected
    out.append(m)
    announce(m)


def memcpy_batches(total_bytes: int, shape: tuple[int, int, int], counts: Counts) -> list[float]:
    """(d): contiguous copies of one batch's bytes from a large array into one buffer."""
    per_image = int(np.prod(shape))
    rows = max(BATCH * 4, total_bytes // per_image)
    source = np.random.default_rng(0).integers(0, 256, (rows, per_image), dtype=np.uint8)
    buffer = np.empty((BATCH, per_image), np.uint8)
    starts = np.random.default_rng(1).integers(0, rows - BATCH, 4096)
    views = [source[s : s + BATCH] for s in starts.tolist()]  # slicing kept out of the timing

    def batches() -> Iterator[tuple[np.ndarray]]:
        while True:
            for view in views:
                np.copyto(buffer, view)
                yield (buffer,)

    return time_batches(batches(), counts)


# -- inputs --------------------------------------------------------------------------------------
def fmnist_folder() -> Path:
    folder = default_folder()
    if folder is None:
        raise SystemExit(
            "Fashion-MNIST IDX files not found (install dataset-fashion-mnist or set "
            "FASHION_MNIST_DIR)"
        )
    return folder


def torchvision_root(data_dir: Path) -> Path:
    """A root for ``datasets.FashionMNIST``: the four IDX files, decompressed, in its layout."""
    root = data_dir / "torchvision"
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    src = fmnist_folder()
    for stems in FILES.values():
        for stem in stems:
            dest = raw / stem
            if dest.exists():
                continue
            if (src / stem).is_file():
                dest.symlink_to((src / stem).resolve())
            else:
                with gzip.open(src / (stem + ".gz"), "rb") as f_in, open(dest, "wb") as f_out:
                    shutil.copyfileobj(f_in, f_out)
    return root


def _padded32(pixels: np.ndarray) -> np.ndarray:
    out = np.zeros((32, 32), np.uint8)
    out[2:30, 2:30] = pixels
    return out


def _gray_jpeg(pixels: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """Fashion-MNIST framed as at 32 px, upscaled to 300x300, with a little sensor noise."""
    up = Image.fromarray(_padded32(pixels)).resize((300, 300), Image.Resampling.BICUBIC)
    arr = np.asarray(up, np.float32) + rng.normal(0.0, 3.0, (300, 300))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")


def _rgb_jpeg(pixels: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """A tinted garment upscaled to 200x200 on a light 200x300 (w x h) product-shot canvas."""
    up = Image.fromarray(_padded32(pixels)).resize((200, 200), Image.Resampling.BICUBIC)
    alpha = (np.asarray(up, np.float32) / 255.0)[..., None]
    background = np.array([242.0, 240.0, 236.0], np.float32)
    tint = rng.integers(20, 230, 3).astype(np.float32)
    canvas = np.empty((300, 200, 3), np.float32)
    canvas[:] = background
    canvas[50:250] = background * (1.0 - alpha) + tint * alpha
    canvas += rng.normal(0.0, 3.0, canvas.shape)
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8), "RGB")


def _write_jpegs(job: tuple[str, Path, int, int]) -> None:
    kind, folder, lo, hi = job
    src = fmnist_folder()
    images = read_idx(src / (FILES["train"][0] + ".gz"), IMAGE_MAGIC)
    labels = read_idx(src / (FILES["train"][1] + ".gz"), LABEL_MAGIC)
    make = _gray_jpeg if kind == "gray" else _rgb_jpeg
    for i in range(lo, hi):
        rng = np.random.default_rng([7, i])  # per image: the same files however split
        path = folder / CLASSES[labels[i]].replace("/", "-") / f"{i:05d}.jpg"
        make(images[i], rng).save(path, "JPEG", quality=90)


def jpeg_tree(data_dir: Path, kind: str, count: int) -> Path:
    """ROOT/<class>/<nnnnn>.jpg (quality 90) from the first ``count`` training images; once."""
    root = data_dir / f"jpeg-{kind}-{count}"
    if (root / ".complete").exists():
        return root
    print(f"  generating {count} {kind} JPEGs (300 px long side) in {root} ...", flush=True)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(root, ignore_errors=True)
    for name in CLASSES:
        (tmp / name.replace("/", "-")).mkdir(parents=True)
    step = 500
    jobs = [(kind, tmp, lo, min(count, lo + step)) for lo in range(0, count, step)]
    with mp.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        pool.map(_write_jpegs, jobs, chunksize=1)
    for class_dir in tmp.iterdir():
        if not any(class_dir.iterdir()):
            class_dir.rmdir()  # ImageFolder refuses empty class folders
    (tmp / ".complete").touch()
    tmp.rename(root)
    return root


def jpeg_stats(root: Path) -> tuple[int, float, tuple[int, int]]:
    files = sorted(root.rglob("*.jpg"))
    mean_kb = sum(f.stat().st_size for f in files) / len(files) / 1024
    with Image.open(files[0]) as im:
        size = im.size
    return len(files), mean_kb, size


def shard_set(data_dir: Path, name: str, source: str, path: Path | None, **opts: Any) -> ShardSet:
    out = data_dir / f"shards-{name}"
    result = prepare(source, str(path) if path else None, str(out), SourceOptions(**opts))
    if not result.already_complete:
        print(f"  prepared {out} ({sum(s.rows for s in result.manifest.shards)} rows)")
    return ShardSet(out)


# -- contenders ----------------------------------------------------------------------------------
def load_gray(path: str) -> Image.Image:
    with open(path, "rb") as f:
        return Image.open(f).convert("L")


def load_rgb(path: str) -> Image.Image:
    with open(path, "rb") as f:
        return Image.open(f).convert("RGB")


def shard_contenders(
    out: list[Measurement], setting: str, shards: ShardSet, counts: dict[str, Counts]
) -> None:
    def batches() -> ShardBatches:
        return ShardBatches(shards, split="train", batch_size=BATCH, seed=0)

    def through_workers() -> DataLoader[Any]:
        return DataLoader(batches(), batch_size=None, num_workers=2, persistent_workers=True)

    shape = shards.shape
    measure_loader(out, setting, "a", "ShardBatches", batches, counts["a-main"], shape)
    label = "DataLoader(ShardBatches)"
    measure_loader(out, setting, "a", label, through_workers, counts["a-workers"], shape)


def folder_contender(
    out: list[Measurement],
    setting: str,
    root: Path,
    transform: Callable[[Image.Image], torch.Tensor],
    shape: tuple[int, int, int],
    counts: dict[str, Counts],
) -> None:
    def make() -> DataLoader[Any]:
        load = load_gray if shape[0] == 1 else load_rgb
        dataset = datasets.ImageFolder(str(root), transform=transform, loader=load)
        return DataLoader(
            dataset, batch_size=BATCH, shuffle=True, num_workers=2, persistent_workers=True
        )

    label = "ImageFolder+PIL JPEG decode+resize"
    measure_loader(out, setting, "b", label, make, counts["b"], shape)


def fmnist_contenders(
    out: list[Measurement], setting: str, data_dir: Path, counts: dict[str, Counts]
) -> None:
    dataset = datasets.FashionMNIST(
        str(torchvision_root(data_dir)),
        train=True,
        download=False,
        transform=transforms.Compose([transforms.Pad(2), transforms.PILToTensor()]),
    )

    def make(workers: int) -> Callable[[], DataLoader[Any]]:
        return lambda: DataLoader(
            dataset,
            batch_size=BATCH,
            shuffle=True,
            num_workers=workers,
            persistent_workers=workers > 0,
        )

    label = "datasets.FashionMNIST+Pad(2)+PILToTensor"
    shape = (1, 32, 32)
    measure_loader(out, setting, "c", label, make(0), counts["c-main"], shape)
    measure_loader(out, setting, "c", label, make(2), counts["c-workers"], shape)


def memcpy_contender(
    out: list[Measurement], setting: str, shards: ShardSet, counts: dict[str, Counts]
) -> None:
    total = len(shards.split_indices("train")) * int(np.prod(shards.shape))
    m = Measurement(setting, "d", "memcpy ceiling (np.copyto, 1 batch)", "main")
    m.rates = memcpy_batches(total, shards.shape, counts["d"])
    out.append(m)
    announce(m)


# -- report --------------------------------------------------------------------------------------
def machine() -> dict[str, str]:
    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    return {
        "cpu": model,
        "cores": f"{cores} ({usable} usable)",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "os": platform.platform(),
    }


def best(ms: list[Measurement], setting: str, key: str) -> Measurement | None:
    found = [m for m in ms if m.setting == setting and m.key == key]
    return max(found, key=lambda m: m.median) if found else None


def report(ms: list[Measurement], settings: list[str]) -> tuple[str, dict[str, Any]]:
    lines = [
        f"Median of {REPEATS} timed runs each; img/s = uint8 images of the training size "
        f"delivered in batches of {BATCH}. Best of a row group in **bold**.",
        "",
        "| setting | | pipeline | workers | img/s (median) | runs min-max | us/batch |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for setting in settings:
        for key in "abcd":
            top = best(ms, setting, key)
            for m in (m for m in ms if m.setting == setting and m.key == key):
                rate = f"{m.median:,.0f}"
                if m is top and sum(1 for x in ms if x.setting == setting and x.key == key) > 1:
                    rate = f"**{rate}**"
                spread = f"{min(m.rates):,.0f}-{max(m.rates):,.0f}"
                us = f"{1e6 * BATCH / m.median:,.1f}"
                lines.append(
                    f"| {setting} | ({key}) | {m.label} | {m.workers} | {rate} | {spread} | {us} |"
                )
    lines += [
        "",
        "| setting | a/b (target >= 20x) | a/c (target >= 5x) | a/d (target >= 0.5x) |",
        "|---|---:|---:|---:|",
    ]
    ratios: dict[str, Any] = {}
    for setting in settings:
        a = best(ms, setting, "a")
        assert a is not None
        cells = []
        ratios[setting] = {}
        for key in "bcd":
            other = best(ms, setting, key)
            name = f"a/{key}"
            if other is None:
                cells.append("n/a")
                continue
            ratio = a.median / other.median
            met = ratio >= TARGETS[name]
            ratios[setting][name] = {"ratio": ratio, "target": TARGETS[name], "met": met}
            cells.append(f"{ratio:,.2f}x {'met' if met else 'MISSED'}")
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    return "\n".join(lines), ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small counts (< 30 s)")
    parser.add_argument("--data-dir", type=Path, help="where generated inputs are kept")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    plan = SMOKE if args.smoke else QUICK if args.quick else FULL
    data_dir: Path = args.data_dir or cache_root() / "bench-data"
    data_dir.mkdir(parents=True, exist_ok=True)

    info = machine()
    if args.smoke:
        smoke_banner(
            "data_loading.py",
            f"1-2 batches per contender, a {SMOKE_IMAGES}-image 32 px set, "
            f"{plan.rgb_jpegs} JPEGs per tree",
        )
    print("Data loading benchmark" + (" (--quick)" if args.quick else ""))
    for k, v in info.items():
        print(f"  {k:<12} {v}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"  load avg     {load} (1/5/15 min; other work on the machine skews the numbers)")
    t_start = time.perf_counter()
    ms: list[Measurement] = []

    # setting 1: Fashion-MNIST, 32 px grayscale
    counts = plan.counts[S32]
    if args.smoke:
        print(f"\n[{S32}] Fashion-MNIST, first {SMOKE_IMAGES} rows, 1x32x32 uint8")
        name = f"fmnist-32-{SMOKE_IMAGES}"
        shards = shard_set(data_dir, name, "fashion-mnist", None, size=32, limit=SMOKE_IMAGES)
    else:
        print(f"\n[{S32}] Fashion-MNIST train split (60,000 rows), 1x32x32 uint8")
        shards = shard_set(data_dir, "fmnist-32", "fashion-mnist", None, size=32)
    gray = jpeg_tree(data_dir, "gray", plan.gray_jpegs)
    n, kb, size = jpeg_stats(gray)
    print(f"  (b) JPEG subset: {n} files, {size[0]}x{size[1]} grayscale, mean {kb:.1f} KiB")
    gray_tf = transforms.Compose([transforms.Resize((32, 32)), transforms.PILToTensor()])
    shard_contenders(ms, S32, shards, counts)
    folder_contender(ms, S32, gray, gray_tf, (1, 32, 32), counts)
    fmnist_contenders(ms, S32, data_dir, counts)
    memcpy_contender(ms, S32, shards, counts)
    del shards

    # setting 2: RGB 64 px from JPEGs via the folder source
    counts = plan.counts[S64]
    print(f"\n[{S64}] folder source over 300 px JPEGs, 3x64x64 uint8")
    rgb = jpeg_tree(data_dir, "rgb", plan.rgb_jpegs)
    n, kb, size = jpeg_stats(rgb)
    print(f"  JPEG tree: {n} files, {size[0]}x{size[1]} RGB, mean {kb:.1f} KiB")
    shards = shard_set(data_dir, f"rgb-64-{plan.rgb_jpegs}", "folder", rgb, size=64, channels=3)
    # pad the 200x300 portrait to a 300x300 square (as prepare does), then resize
    rgb_tf = transforms.Compose(
        [transforms.CenterCrop(300), transforms.Resize((64, 64)), transforms.PILToTensor()]
    )
    shard_contenders(ms, S64, shards, counts)
    folder_contender(ms, S64, rgb, rgb_tf, (3, 64, 64), counts)
    memcpy_contender(ms, S64, shards, counts)
    del shards

    table, ratios = report(ms, [S32, S64])
    print()
    print(table)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\ntotal {time.perf_counter() - t_start:.1f} s; load avg at the end {load}")
    if args.json:
        payload = {
            "machine": info,
            "quick": args.quick,
            "smoke": args.smoke,
            "plan": asdict(plan),
            "measurements": [{**asdict(m), "median": m.median} for m in ms],
            "ratios": ratios,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
