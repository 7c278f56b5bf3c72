"""Metric sanity: controlled distortions of real Fashion-MNIST scored by the new ruler
(multi-task feature net: instance discrimination + labels) and by the old one (a label
classifier), side by side; plus what one evaluation costs in each.

    .venv/bin/python benchmarks/metric_sanity.py [--data data/fashion-mnist-32] [--n 1000]

Prints a Markdown table (paste into RESULTS.md), the orderings the test suite requires
with PASS / FAIL, and the cost ratio of scoring with the new ruler vs the old one.

``--smoke``: 100 images per case from a 500-image set, to check the code path in seconds;
its numbers (and PASS / FAIL lines) mean nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

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

from fashion_tune.config import MetricsConfig
from fashion_tune.data.reader import ShardSet
from fashion_tune.metrics import reference
from fashion_tune.metrics.distortions import distortion_cases
from fashion_tune.metrics.evaluate import score_images
from fashion_tune.metrics.sanity import sanity_images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/fashion-mnist-32")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.smoke:
        args.n = 100
        smoke_banner("metric_sanity.py", f"{args.n} images per case, a {SMOKE_IMAGES}-image set")
        args.data = str(smoke_shards())
        torch.set_num_threads(SMOKE_THREADS)
    shards = ShardSet(args.data)
    loc, _, _ = reference.ensure(args.data)
    new = reference.load(loc, shards)
    t0 = time.perf_counter()
    old = reference.from_blobs(*reference.build(shards, log=print, contrastive=False))
    print(f"old ruler (label classifier) built in {time.perf_counter() - t0:.0f} s")
    held, held_y, train, train_y = sanity_images(shards, args.n)
    cfg = MetricsConfig(num_samples=args.n, kid_subset_size=min(1000, args.n // 2), kid_subsets=20)
    rows, cost = [], {"new": 0.0, "old": 0.0}
    for name, case in distortion_cases(held, held_y, train, train_y).items():
        images = torch.from_numpy(case.images)
        t = time.perf_counter()
        a = score_images(new, cfg, images, case.labels)
        cost["new"] += time.perf_counter() - t
        t = time.perf_counter()
        b = score_images(old, cfg, images, case.labels)
        cost["old"] += time.perf_counter() - t
        rows.append((name, a, b))
    print(f"\nmachine: {machine()['cpu']}; load {loadavg()}; {args.n} images per case\n")
    print(
        "| case | **fd** (new, objective) | kid (new) | precision | recall | density | "
        "coverage | diversity | sym_excess | sym_gap | fd (old) | kid (old) |"
    )
    print("|---|" + "---:|" * 11)
    for name, a, b in rows:
        cells = [a["fd"], a["kid"], a["precision"], a["recall"], a["density"], a["coverage"]]
        cells += [a["diversity"], a["sym_excess"], a["sym_gap"], b["fd"], b["kid"]]
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in cells) + " |")
    s = {name: a for name, a, _ in rows}
    o = {name: b for name, _, b in rows}
    checks = {
        "new fd: held-out reals beat every defect (copies are reals; fd ignores labels)": all(
            s["held-out reals"]["fd"] < v["fd"]
            for k, v in s.items()
            if k not in ("held-out reals", "training-set copies", "labels shuffled")
        ),
        "new fd: 1 per class worse than blur 3x3 and noise 0.1": s["1 per class"]["fd"]
        > max(s["blur 3x3"]["fd"], s["noise 0.1"]["fd"]),
        "new fd: 4 per class > 3x held-out": s["4 per class"]["fd"] > 3 * s["held-out reals"]["fd"],
        "recall < half of reals' for 1/4/16 per class": all(
            s[c]["recall"] < 0.5 * s["held-out reals"]["recall"]
            for c in ("1 per class", "4 per class", "16 per class")
        ),
        "precision below reals' for blur 3x3/5x5, noise 0.3": all(
            s[c]["precision"] < s["held-out reals"]["precision"]
            for c in ("blur 3x3", "blur 5x5", "noise 0.3")
        ),
        "old kid ranks 1 per class worse than blur 3x3 (FAIL = the old ruler's known flaw)": o[
            "1 per class"
        ]["kid"]
        > o["blur 3x3"]["kid"],
    }
    print()
    for text, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {text}")
    ratio = cost["new"] / max(cost["old"], 1e-9)
    print(
        f"\nscoring cost, all cases: new {cost['new']:.2f} s, old {cost['old']:.2f} s "
        f"(ratio {ratio:.2f}x: the k-NN metrics and pixel diversity are extra)"
    )


if __name__ == "__main__":
    main()
