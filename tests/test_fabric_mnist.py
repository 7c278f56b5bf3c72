"""fabric-mnist (issue 18, item 1): real Fashion-MNIST silhouettes filled with procedural
colour fabrics, the fabric kind kept per garment; prepared through the real path, read back
through the shard reader, with sketch + fabric pairs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fashion_tune.data.prepare import prepare
from fashion_tune.data.reader import ShardSet
from fashion_tune.data.sources import SourceOptions
from fashion_tune.data.sources.fabric_mnist import FABRICS, fabric

N = 400


@pytest.fixture(scope="module")
def fabric64(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fabric") / "shards"
    prepare("fabric-mnist", None, str(out), SourceOptions(size=64, limit=N), pairs=True)
    return out


def _kinds(shards: ShardSet, idx: np.ndarray) -> list[str]:
    rows = shards.attributes(idx)
    assert rows is not None and (rows.sum(axis=1) == 1).all()  # one fabric per garment
    return [FABRICS[int(k)] for k in rows.argmax(axis=1)]


def test_colour_garments_with_one_fabric_each(fabric64: Path) -> None:
    manifest = json.loads((fabric64 / "manifest.json").read_text())
    assert manifest["attributes"] == [f"fabric:{k}" for k in FABRICS]
    shards = ShardSet(fabric64)
    idx = np.arange(len(shards))
    images = shards.gather(idx)
    assert images.shape == (N, 3, 64, 64)
    kinds = _kinds(shards, idx)
    counts = {k: kinds.count(k) for k in FABRICS}
    assert min(counts.values()) >= N // 10, counts  # every kind is there, roughly balanced
    # colour: the channels differ (a grey garment would have r == g == b)
    assert np.abs(images[:, 0].astype(int) - images[:, 1]).mean() > 10
    # the black background stays black: the corners of every garment
    assert images[:, :, :3, :3].max() == 0


def _contrast_along_rows_and_columns(img: np.ndarray) -> float:
    """How much the colour changes between neighbouring pixels inside the garment."""
    rgb = img.astype(np.float32) / 255
    inside = rgb.sum(axis=0) > 0.3
    dx = np.abs(np.diff(rgb, axis=2)).sum(axis=0)[inside[:, 1:] & inside[:, :-1]]
    dy = np.abs(np.diff(rgb, axis=1)).sum(axis=0)[inside[1:] & inside[:-1]]
    return float(np.concatenate([dx, dy]).mean())


def test_patterned_fabrics_have_edges_that_solid_ones_lack(fabric64: Path) -> None:
    shards = ShardSet(fabric64)
    idx = np.arange(len(shards))
    images, kinds = shards.gather(idx), _kinds(shards, idx)
    edge = {
        k: np.median([_contrast_along_rows_and_columns(im) for im, kk in zip(images, kinds)
                      if kk == k])
        for k in FABRICS
    }  # fmt: skip
    for k in ("stripes", "checks", "dots"):
        assert edge[k] > 1.5 * edge["solid"], edge


def test_fabric_is_a_function_of_the_garment_and_the_size() -> None:
    a, b = fabric("train/00007", 64), fabric("train/00007", 64)
    assert np.array_equal(a, b) and a.shape == (3, 64, 64)
    assert not np.array_equal(fabric("train/00008", 64), a)
    assert a.min() >= 0.0 and a.max() <= 1.0


def test_pairs_crop_the_fabric_from_the_colour_garment(fabric64: Path) -> None:
    shards = ShardSet(fabric64)
    idx = np.arange(0, N, 7)
    images = shards.gather(idx)
    sketches, patches = shards.gather_pairs(idx)
    assert patches.shape[1] == 3 and patches.shape[2] == patches.shape[3] == 16  # 64 px: 16 px
    assert sketches.shape == (len(idx), 1, 64, 64)
    for img, fb in zip(images[:10], patches[:10]):
        assert any(
            np.array_equal(img[:, y : y + 16, x : x + 16], fb) for y in range(49) for x in range(49)
        )


def test_same_set_twice(tmp_path: Path) -> None:
    for name in ("a", "b"):
        prepare("fabric-mnist", None, str(tmp_path / name), SourceOptions(size=32, limit=50))
    a, b = ShardSet(tmp_path / "a"), ShardSet(tmp_path / "b")
    idx = np.arange(50)
    assert np.array_equal(a.gather(idx), b.gather(idx))
    assert a.gather(idx).shape == (50, 3, 32, 32)


# -- the swap test (issue 18, item 2) ---------------------------------------------------------
@pytest.fixture(scope="module")
def fabric32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 colour garments at 32 px with pairs and their metric reference."""
    from fashion_tune.metrics import reference

    out = tmp_path_factory.mktemp("fabric32") / "shards"
    prepare("fabric-mnist", None, str(out), SourceOptions(size=32, limit=N), pairs=True)
    reference.ensure(str(out), log=lambda _: None)
    return out


def test_swap_test_scores_the_fabric_blind_control_at_chance(
    fabric32: Path, tmp_path: Path
) -> None:
    """A tiny fashiongan trained with its fabric and the same one with the encoder fed
    zeros: fabric retrieval is reported each tick; the control's is exactly chance."""
    import torch
    from conftest import tiny_overrides

    from fashion_tune.config import TrialConfig
    from fashion_tune.metrics.paired import DIV_FABRICS
    from fashion_tune.training import train

    torch.set_num_threads(1)
    base = {"model.arch": "fashiongan", "model.z_dim": 8, "schedule.total_kimg": 0.064}
    results = {}
    for name, blind in (("model", False), ("control", True)):
        cfg = TrialConfig().with_overrides(
            tiny_overrides(fabric32, **base, **{"model.fabric_in": not blind})
        )
        results[name] = train(cfg, tmp_path / name, log=lambda _: None).metrics
    for m in results.values():
        assert 0.0 <= m["fabric_top1"] <= 1.0
    assert results["control"]["fabric_top1"] == pytest.approx(1 / DIV_FABRICS, abs=1e-9)
    assert results["control"]["fabric_div"] == pytest.approx(0.0, abs=1e-6)  # same outputs
    assert results["model"]["fabric_div"] > 0.0


def test_fabric_retrieval_by_hand() -> None:
    """Outputs that copy their fabric are found (1.0); outputs that all look alike share
    their hit (1 / m); outputs that copy the *next* fabric are never right (0.0)."""
    from fashion_tune.metrics.paired import fabric_retrieval

    m, k, size = 4, 2, 32
    fabrics = np.stack([(fabric(f"train/{i:05d}", 8) * 255).astype(np.uint8) for i in range(m)])
    garments = np.zeros((m, 3, size, size), np.uint8)
    for j in range(m):  # a garment filling the image, made of fabric j
        garments[j] = np.tile(fabrics[j], (1, size // 8, size // 8))
    copies = np.stack([garments] * k)  # (k, m, ...): output (i, j) made of fabric j
    assert fabric_retrieval(copies, fabrics) == 1.0
    assert fabric_retrieval(np.stack([np.stack([garments[0]] * m)] * k), fabrics) == 0.25
    shifted = np.stack([np.roll(garments, 1, axis=0)] * k)
    assert fabric_retrieval(shifted, fabrics) == 0.0


def test_grey_fabric_mnist_is_refused_in_one_line(tmp_path: Path) -> None:
    from conftest import assert_one_line_error, run_cli

    out = tmp_path / "grey"
    proc = run_cli("data", "prepare", "fabric-mnist", "--channels", "1", "--out", str(out))
    assert_one_line_error(proc, "fabric-mnist is a colour set")
    assert not out.exists()
