"""The metric reference of a shard set: the feature net and the real-image statistics.

Made once per shard set, before any trial runs (``fashion-tune data prepare``,
``fashion-tune data reference`` or, when missing, ``fashion-tune search`` on the driver
and ``fashion-tune trial`` on a writable local set), and stored with the set in
``_reference/`` (uploaded beside the manifest for a URI set). Trials only load it, so
no trial trains a metric network and every node scores with the same bytes.

``reference.json`` is written last and names the files with their SHA-256; the
reference's **hash** covers the weights, the statistics and the settings that made
them. Every scored tick carries ``metric_ref``, a hash of the reference hash and the
trial's own metric settings: two scores compare only if their ``metric_ref`` is equal.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from fashion_tune.data.reader import ShardSet
from fashion_tune.data.storage import Store
from fashion_tune.errors import DataError
from fashion_tune.metrics import featnet
from fashion_tune.metrics.featnet import FeatureNet, embed
from fashion_tune.metrics.stats import (
    mean_cov,
    mirror_asymmetry,
    pixel_diversity_by_class,
    real_kernel,
)

REFERENCE_DIR = "_reference"
INDEX = "reference.json"
STATS_SAMPLES = 5000  # reals behind the mean / covariance (fd)
FEATS_SAMPLES = 2000  # reals kept for kid and the k-NN metrics (precision, recall, ...)
PRDC_K = 3  # k of the k-NN balls (Kynkaanniemi et al. 2019)
SAMPLE_SEED = 12345


def settings() -> dict[str, Any]:
    """Everything besides the data that decides the reference's bytes."""
    return {
        "featnet_version": featnet.FEATNET_VERSION,
        "feature_dim": featnet.FEATURE_DIM,
        "train_images": featnet.TRAIN_IMAGES,
        "train_epochs": featnet.TRAIN_EPOCHS,
        "stats_samples": STATS_SAMPLES,
        "feats_samples": FEATS_SAMPLES,
        "prdc_k": PRDC_K,
    }


@dataclass
class Reference:
    """What the metrics compare a generator against, for one shard set."""

    net: FeatureNet
    accuracy: float  # held-out accuracy of the feature net on its label / rotation task
    task: str  # "labels" or "rotation" (sets without two classes)
    mu: np.ndarray
    cov: np.ndarray
    feats: np.ndarray  # (FEATS_SAMPLES, D) real features, scaled, for kid / k-NN metrics
    labels: np.ndarray  # their classes
    div_by_class: np.ndarray  # reals' within-class pixel diversity (see stats.pixel_diversity)
    scale: float  # features are divided by this (the reals' RMS) before any distance
    asym_by_class: np.ndarray  # mean mirror asymmetry of real images per class
    num_classes: int
    hash: str  # sha256 of weights + statistics + settings (first 16 hex digits)
    fingerprint: str  # the shard set's fingerprint

    @functools.cached_property
    def kernel(self) -> np.ndarray:
        """The reals' KID kernel matrix, computed once per loaded reference."""
        return real_kernel(self.feats)


def reference_store(location: str) -> Store:
    """Where a reference lives: ``<shards>/_reference`` or a folder given as is."""
    loc = location.rstrip("/")
    return Store.open(loc if loc.endswith(REFERENCE_DIR) else f"{loc}/{REFERENCE_DIR}")


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def _sample_rows(shards: ShardSet) -> np.ndarray:
    rows = shards.split_indices(shards.manifest.splits[0])
    rng = np.random.default_rng(SAMPLE_SEED)
    return rng.choice(rows, size=min(STATS_SAMPLES, len(rows)), replace=False)


def build(
    shards: ShardSet,
    log: Callable[[str], None] = print,
    progress: Callable[[int, int], None] | None = None,
    contrastive: bool = True,
) -> tuple[dict[str, Any], bytes, bytes]:
    """Train the feature net and compute the real statistics: (index, weights, stats).

    ``contrastive=False`` builds the label-classifier ruler of fashion-tune <= 0.1 (for
    the benchmarks' side-by-side only; it is never stored)."""
    t0 = time.perf_counter()
    net, acc, task = featnet.train_feature_net(shards, progress=progress, contrastive=contrastive)
    pick = _sample_rows(shards)  # random order: the first FEATS_SAMPLES are a random subset
    rows = np.sort(pick)
    images = shards.gather(rows)
    feats, _ = embed(net, torch.from_numpy(images))
    # unit RMS on reals: fd / kid land in familiar ranges whatever the net
    scale = float(np.sqrt((feats.astype(np.float64) ** 2).mean()))
    feats = feats / scale
    mu, cov = mean_cov(feats)
    # the kid / k-NN subset: positions of the first FEATS_SAMPLES picks among the sorted rows
    at = np.searchsorted(rows, np.sort(pick[:FEATS_SAMPLES]))
    keep_images, keep_feats = images[at], feats[at]
    all_labels = shards.labels[rows]
    labels = all_labels[at]
    asym = mirror_asymmetry(torch.from_numpy(images)).numpy()
    by_class = np.array(
        [
            asym[all_labels == c].mean() if (all_labels == c).any() else 0.0
            for c in range(max(shards.num_classes, 1))
        ]
    )
    weights = io.BytesIO()
    torch.save(
        {"state": net.state_dict(), "outputs": net.head.out_features, "channels": shards.channels},
        weights,
    )
    stats = _npz_bytes(
        {
            "mu": mu,
            "cov": cov,
            "feats": keep_feats.astype(np.float32),
            "labels": labels.astype(np.int64),
            "div_by_class": pixel_diversity_by_class(
                torch.from_numpy(keep_images), labels, max(shards.num_classes, 1)
            ),
            "asym_by_class": by_class,
            "scale": np.float64(scale),
        }
    )
    w, s = weights.getvalue(), stats
    cfg = settings()
    h = hashlib.sha256()
    for part in (w, s, json.dumps(cfg, sort_keys=True).encode()):
        h.update(hashlib.sha256(part).digest())
    index = {
        "hash": h.hexdigest()[:16],
        "settings": cfg,
        "fingerprint": shards.manifest.fingerprint,
        "accuracy": acc,
        "task": task,
        "num_classes": shards.num_classes,
        "files": {
            "featnet.pt": hashlib.sha256(w).hexdigest(),
            "stats.npz": hashlib.sha256(s).hexdigest(),
        },
        "build_seconds": round(time.perf_counter() - t0, 1),
    }
    log(
        f"trained the metric feature net ({task}, held-out accuracy {acc:.3f}) and real "
        f"statistics in {index['build_seconds']:.0f} s; reference {index['hash']}"
    )
    return index, w, s


def write(store: Store, index: dict[str, Any], weights: bytes, stats: bytes) -> None:
    """Each file atomically, the index last: a half-written reference never reads as one."""
    store.delete(INDEX)
    store.write_atomic("featnet.pt", weights)
    store.write_atomic("stats.npz", stats)
    store.write_atomic(INDEX, json.dumps(index, indent=1).encode())


def read_index(store: Store) -> dict[str, Any] | None:
    if not store.exists(INDEX):
        return None
    try:
        doc = json.loads(store.read_bytes(INDEX))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and "hash" in doc else None


def is_current(index: dict[str, Any] | None, fingerprint: str) -> bool:
    """The index was made for this set with today's settings."""
    return (
        index is not None
        and index.get("fingerprint") == fingerprint
        and index.get("settings") == settings()
    )


MAKE_HINT = "run `fashion-tune data reference {data}` to make it"


def load(location: str, shards: ShardSet, device: torch.device | str = "cpu") -> Reference:
    """Load a stored reference and check it against the set and its own checksums."""
    store = reference_store(location)
    index = read_index(store)
    hint = MAKE_HINT.format(data=shards.location)
    if index is None:
        raise DataError(f"no metric reference in {store.location}; {hint}")
    if index.get("fingerprint") != shards.manifest.fingerprint:
        raise DataError(
            f"the metric reference in {store.location} is for another shard set; {hint}"
        )
    if index.get("settings") != settings():
        raise DataError(
            f"the metric reference in {store.location} was made by another fashion-tune "
            f"version (settings differ); {hint}"
        )
    blobs = {}
    for name, digest in index["files"].items():
        try:
            data = store.read_bytes(name)
        except OSError as exc:
            raise DataError(f"cannot read {store.describe(name)}: {exc}; {hint}") from None
        if hashlib.sha256(data).hexdigest() != digest:
            raise DataError(f"{store.describe(name)} fails its checksum; {hint}")
        blobs[name] = data
    return from_blobs(index, blobs["featnet.pt"], blobs["stats.npz"], device)


def from_blobs(
    index: dict[str, Any], weights: bytes, stats: bytes, device: torch.device | str = "cpu"
) -> Reference:
    """A reference from its three parts (as :func:`build` returns them or as stored)."""
    blob = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
    net = FeatureNet(int(blob["channels"]), int(blob["outputs"]))
    net.load_state_dict(blob["state"])
    net.eval()
    st = dict(np.load(io.BytesIO(stats)))
    return Reference(
        net=net.to(device),
        accuracy=float(index["accuracy"]),
        task=str(index["task"]),
        mu=st["mu"],
        cov=st["cov"],
        feats=st["feats"],
        labels=st["labels"],
        div_by_class=st["div_by_class"],
        scale=float(st["scale"]),
        asym_by_class=st["asym_by_class"],
        num_classes=int(index["num_classes"]),
        hash=str(index["hash"]),
        fingerprint=str(index["fingerprint"]),
    )


def ensure(
    data: str,
    location: str | None = None,
    *,
    fallback: str | None = None,
    log: Callable[[str], None] = print,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
) -> tuple[str, dict[str, Any], bool]:
    """Make the reference of shard set ``data`` unless a current one is stored.

    It lives in ``location`` (default: beside the set); where that cannot be written
    (a read-only set or bucket), in ``fallback`` (e.g. the experiment folder) if given.
    Returns (location, index, built).
    """
    shards = ShardSet(data)
    places = [location or data] + ([fallback] if fallback else [])
    if not force:
        for loc in places:
            index = read_index(reference_store(loc))
            if is_current(index, shards.manifest.fingerprint):
                assert index is not None
                return loc, index, False
    index, weights, stats = build(shards, log=log, progress=progress)
    problems = []
    for loc in places:
        try:
            write(reference_store(loc), index, weights, stats)
            return loc, index, True
        except (OSError, DataError) as exc:
            problems.append(
                f"{reference_store(loc).location}: {getattr(exc, 'strerror', None) or exc}"
            )
    raise DataError(
        f"cannot store the metric reference ({'; '.join(problems)}); make it in a writable "
        "place with `fashion-tune data reference SHARDS --out DIR` and pass "
        "--set metrics.reference=DIR"
    )
