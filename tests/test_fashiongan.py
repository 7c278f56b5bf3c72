"""FashionGAN on real Fashion-MNIST at tiny budgets: sketch + fabric pairs made at prepare
time, read back, shown by ``data inspect``; old sets without pairs give one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fashion_tune.data.pairs import fabric_size, garment_mask
from fashion_tune.data.reader import ShardBatches, ShardSet
from fashion_tune.errors import DataError
from tests.conftest import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def paired_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 real Fashion-MNIST garments at 32 px with sketch + fabric columns."""
    from fashion_tune.data.prepare import prepare
    from fashion_tune.data.sources import SourceOptions

    out = tmp_path_factory.mktemp("fmnist-pairs") / "shards"
    prepare("fashion-mnist", None, str(out), SourceOptions(size=32, limit=600), pairs=True)
    return out


def test_prepare_with_pairs_writes_a_version_2_set(paired_small: Path) -> None:
    manifest = json.loads((paired_small / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    assert manifest["pairs"]["fabric_size"] == fabric_size(32) == 8
    assert any(col.startswith("sketch") for col in manifest["schema"])
    shards = ShardSet(paired_small)
    assert shards.has_pairs and len(shards) == 600
    idx = np.arange(0, 600, 7)
    images = shards.gather(idx)
    sketches, fabrics = shards.gather_pairs(idx)
    assert sketches.shape == (len(idx), 1, 32, 32) and fabrics.shape == (len(idx), 1, 8, 8)
    for img, sk, fb in zip(images, sketches, fabrics):
        mask = garment_mask(img)
        ink = sk[0] < 128
        assert ink.any() and (ink <= mask).all()  # lines lie on the garment only
        assert mask[~ink].any()  # the sketch is lines, not a filled silhouette
        # the fabric patch is a crop of the garment itself
        found = any(
            np.array_equal(img[:, y : y + 8, x : x + 8], fb) for y in range(25) for x in range(25)
        )
        assert found


def test_reader_yields_pairs_with_the_images(paired_small: Path) -> None:
    shards = ShardSet(paired_small)
    stream = ShardBatches(shards, batch_size=16, seed=3, pairs=True)
    images, labels, sketches, fabrics = next(iter(stream))
    assert images.shape == (16, 1, 32, 32) and labels.shape == (16,)
    assert sketches.shape == (16, 1, 32, 32) and fabrics.shape == (16, 1, 8, 8)
    # the same rows as the plain stream, in the same order
    plain_images, plain_labels = next(iter(ShardBatches(shards, batch_size=16, seed=3)))
    assert (images == plain_images).all() and (labels == plain_labels).all()


def test_old_set_without_pairs_is_one_line(fmnist_small: Path) -> None:
    shards = ShardSet(fmnist_small)  # a version-1 set still reads
    assert not shards.has_pairs and shards.manifest.format_version == 1
    with pytest.raises(DataError, match="no sketch / fabric pairs.*--pairs"):
        ShardBatches(shards, batch_size=16, pairs=True)


def test_inspect_shows_sketch_fabric_garment(paired_small: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    proc = run_cli("data", "inspect", str(paired_small), "--grid", str(grid))
    assert proc.returncode == 0, proc.stderr
    assert "pairs" in proc.stdout and "fabric 8x8" in proc.stdout
    from PIL import Image

    pairs_png = tmp_path / "grid-pairs.png"
    img = Image.open(pairs_png)
    # 4 triptychs of 32 px cells per row, scaled 2x: 12 cells and their padding
    assert img.width == (12 * 34 + 2) * 2


def test_prepare_pairs_cli_and_refusal_of_a_different_set(tmp_path: Path) -> None:
    out = tmp_path / "p"
    args = ["data", "prepare", "fashion-mnist", "--out", str(out), "--limit", "100"]
    proc = run_cli(*args, "--pairs", "--no-reference")
    assert proc.returncode == 0, proc.stderr
    assert ShardSet(out).has_pairs
    # the same folder without --pairs is another set: one line, nothing overwritten
    assert_one_line_error(run_cli(*args, "--no-reference"), "different shard set")
