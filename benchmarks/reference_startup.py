"""Time from `fashion-tune search` start to every trial slot training, on fresh node caches:
before (each trial's first tick on a node trained the metric feature net, under a lock, while
the node's other trials waited) vs now (the driver makes the reference once, trials load it).

    .venv/bin/python benchmarks/reference_startup.py [--data data/fashion-mnist-32]
        [--before 05a33fb] [--slots 2]

"Before" runs the CLI of an older commit (a git worktree of --before) with this venv; both
runs serve the same shard set from a ``file://`` URI without any cached metric files, so each
node copies it into an empty node-local cache, as a fresh cluster node would.

``--smoke`` runs only the last row (a set with its reference inside; no git worktree), one slot
and one tiny trial on a 500-image set: one CLI search, ~15-20 s, to check the code path; its
numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench_common import SMOKE_HELP, SMOKE_IMAGES, loadavg, machine, smoke_banner, smoke_shards

ROOT = Path(__file__).resolve().parents[1]
FIXED: dict[str, Any] = {
    "model.arch": "dcgan",
    "model.g_width": 32,
    "model.d_width": 32,
    "schedule.total_kimg": 1,
    "schedule.tick_kimg": 1,
    "metrics.num_samples": 1000,
    "metrics.kid_subset_size": 500,
    "metrics.kid_subsets": 20,
    "runtime.threads": 1,
}
SMOKE_FIXED: dict[str, Any] = {
    **FIXED,
    "model.g_width": 8,
    "model.d_width": 8,
    "schedule.total_kimg": 0.064,
    "schedule.tick_kimg": 0.064,
    "metrics.num_samples": 64,
    "metrics.kid_subset_size": 32,
    "metrics.kid_subsets": 5,
}


def _space(path: Path, metric: str, slots: int, fixed: dict[str, Any] = FIXED) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "name": "startup",
                "objective": {"metric": metric, "mode": "min"},
                "fixed": fixed,
                "params": {"optim.lr_g": {"loguniform": [2e-4, 2e-3]}},
                "scheduler": {"type": "fifo"},
                "num_samples": slots,
                "max_concurrent": slots,
                "resources": {"cpu": 1, "gpu": 0},
            }
        )
    )
    return path


def run(
    tree: Path,
    data: Path,
    work: Path,
    metric: str,
    slots: int,
    with_ref: bool = False,
    fixed: dict[str, Any] = FIXED,
) -> dict[str, float]:
    """Search with ``tree``'s code on a fresh copy of the set and cache; seconds to each
    trial's first report, counted from the command's start."""
    work.mkdir(parents=True)
    copy = work / "set"
    copy.mkdir()
    for f in data.iterdir():
        if f.is_file():
            shutil.copy(f, copy / f.name)
    if with_ref:  # a set made by today's `data prepare` carries its reference
        shutil.copytree(data / "_reference", copy / "_reference")
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "FASHION_TUNE_CACHE": str(work / "cache"),
        "RAY_AUTH_MODE": "disabled",
    }
    space = _space(work / "space.yaml", metric, slots, fixed)
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "fashion_tune", "search", str(space), "--data", f"file://{copy}",
         "--storage", str(work / "results")],
        cwd=tree, env=env, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    total = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"search failed in {tree}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    firsts = []
    for t in sorted((work / "results" / "startup").glob("trial_*")):
        row = json.loads((t / "result.json").read_text().splitlines()[0])
        firsts.append(row["timestamp"] - t0)  # Ray's timestamps are whole seconds
    return {"every_slot_s": max(firsts), "first_slot_s": min(firsts), "total_s": total}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "fashion-mnist-32")
    ap.add_argument("--before", default="05a33fb", help="commit before the shared reference")
    ap.add_argument("--slots", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = ap.parse_args()
    if args.smoke:
        smoke(args)
        return
    from fashion_tune.metrics import reference

    reference.ensure(str(args.data))  # for the "made by data prepare" row
    tmp = Path(tempfile.mkdtemp(prefix="ft-startup-"))
    before_tree = tmp / "before-tree"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(before_tree), args.before],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        before = run(before_tree, args.data.resolve(), tmp / "before", "kid", args.slots)
        after = run(ROOT, args.data.resolve(), tmp / "after", "fd", args.slots)
        prepared = run(ROOT, args.data.resolve(), tmp / "prep", "fd", args.slots, with_ref=True)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before_tree)],
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"machine: {machine()['cpu']}; load {loadavg()}; {args.slots} slots, fresh caches")
    table(
        (
            ("before: each node's first trial trains the net", before),
            ("now, set without a reference: the driver makes it once", after),
            ("now, set made by `data prepare` (reference inside)", prepared),
        )
    )
    print(
        f"every slot training: before / now = {before['every_slot_s'] / after['every_slot_s']:.2f}x"
    )


def table(rows: tuple[tuple[str, dict[str, float]], ...]) -> None:
    print("| | first slot training (s) | every slot training (s) | whole search (s) |")
    print("|---|---:|---:|---:|")
    for name, r in rows:
        print(
            f"| {name} | {r['first_slot_s']:.0f} | {r['every_slot_s']:.0f} | {r['total_s']:.0f} |"
        )


def smoke(args: argparse.Namespace) -> None:
    """The last row only, one slot, a tiny trial: one CLI search, no git worktree."""
    args.slots = 1
    smoke_banner(
        "reference_startup.py",
        f"only the 'made by data prepare' row, {args.slots} slot, one tiny trial, a "
        f"{SMOKE_IMAGES}-image set",
    )
    data = smoke_shards()  # with its reference, as `data prepare` makes it
    tmp = Path(tempfile.mkdtemp(prefix="ft-startup-smoke-"))
    try:
        prepared = run(ROOT, data, tmp / "prep", "fd", args.slots, True, SMOKE_FIXED)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"machine: {machine()['cpu']}; load {loadavg()}; {args.slots} slot, fresh caches")
    table((("now, set made by `data prepare` (reference inside)", prepared),))


if __name__ == "__main__":
    main()
