"""The shard data layer on real Fashion-MNIST: prepare, resume, read, verify, errors."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fashion_tune.data.prepare import prepare
from fashion_tune.data.reader import ShardBatches, ShardSet
from fashion_tune.data.shards import MANIFEST, PROGRESS
from fashion_tune.data.sources import SourceOptions
from fashion_tune.data.sources.fashion_mnist import default_folder, read_idx
from fashion_tune.errors import DataError
from tests.conftest import assert_one_line_error, run_cli

FMNIST = default_folder()


def test_fashion_mnist_shards_match_the_idx_files(fmnist32: Path) -> None:
    shards = ShardSet(fmnist32)
    m = shards.manifest
    assert (m.rows, m.image_size, m.channels, len(m.classes)) == (70_000, 32, 1, 10)
    assert m.split_counts() == {"train": 60_000, "test": 10_000}
    assert FMNIST is not None
    raw = read_idx(FMNIST / "t10k-images-idx3-ubyte.gz", 2051)
    lbl = read_idx(FMNIST / "t10k-labels-idx1-ubyte.gz", 2049)
    test_rows = shards.split_indices("test")
    got = shards.gather(test_rows[[0, 1234, 9999]])
    # 28x28 pixels sit exactly in the middle of a black 32x32 canvas
    np.testing.assert_array_equal(got[:, 0, 2:30, 2:30], raw[[0, 1234, 9999]])
    assert got[:, :, :2].max() == 0 and got[:, :, 30:].max() == 0
    np.testing.assert_array_equal(shards.labels[test_rows], lbl)


def test_reader_views_are_zero_copy_and_batches_are_uint8(fmnist32: Path) -> None:
    shards = ShardSet(fmnist32)
    view = shards._chunks[0]
    assert not view.flags.owndata and not view.flags.writeable  # a view of the memory map
    ds = ShardBatches(shards, split="train", batch_size=64, seed=3)
    images, labels = next(iter(ds))
    assert images.dtype == torch.uint8 and images.shape == (64, 1, 32, 32)
    assert labels.dtype == torch.int64 and labels.shape == (64,)
    assert len(ds) == 60_000 // 64


def test_shuffle_is_deterministic_and_epochs_differ(fmnist32: Path) -> None:
    shards = ShardSet(fmnist32)
    a = ShardBatches(shards, batch_size=32, seed=7)
    b = ShardBatches(shards, batch_size=32, seed=7)
    np.testing.assert_array_equal(a.epoch_rows(0), b.epoch_rows(0))
    assert not np.array_equal(a.epoch_rows(0), a.epoch_rows(1))
    assert not np.array_equal(a.epoch_rows(0), ShardBatches(shards, seed=8).epoch_rows(0))
    # resume at batch 5 of epoch 1 yields exactly what a full pass yields from there
    a.set_epoch(1)
    full = [x for _, (x, _) in zip(range(8), a)]
    b.set_epoch(1, start_batch=5)
    resumed = [x for _, (x, _) in zip(range(3), b)]
    for x, y in zip(full[5:], resumed):
        assert torch.equal(x, y)


def test_ranks_and_workers_partition_an_epoch(fmnist32: Path) -> None:
    shards = ShardSet(fmnist32)
    ranks = [
        ShardBatches(shards, split="test", batch_size=50, seed=1, rank=r, world_size=3)
        for r in range(3)
    ]
    rows = [r.epoch_rows(0) for r in ranks]
    allrows = np.concatenate(rows)
    assert len(np.unique(allrows)) == len(allrows)  # disjoint
    assert all(len(r) == 10_000 // 3 for r in rows)
    # two DataLoader workers together yield the same batches, in the same order, as one process
    single = [lbl for _, lbl in ranks[0]]
    loader = torch.utils.data.DataLoader(ranks[0], batch_size=None, num_workers=2)
    multi = [lbl for _, lbl in loader]
    assert len(single) == len(multi) == len(ranks[0])
    for x, y in zip(single, multi):
        assert torch.equal(x, y)


def test_interrupted_prepare_never_reads_as_complete_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "set"
    opts = SourceOptions(size=32, limit=3000)
    calls = []

    def crash_after_two_shards(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 3:  # the initial call, then after shards 0 and 1
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prepare("fashion-mnist", None, str(out), opts, shard_mb=1, progress=crash_after_two_shards)
    assert not (out / MANIFEST).exists() and (out / PROGRESS).exists()
    with pytest.raises(DataError, match="unfinished prepare"):
        ShardSet(out)
    resumed = prepare("fashion-mnist", None, str(out), opts, shard_mb=1)
    assert resumed.resumed_shards == 2 and not (out / PROGRESS).exists()
    fresh = prepare("fashion-mnist", None, str(tmp_path / "fresh"), opts, shard_mb=1)
    assert [s.sha256 for s in resumed.manifest.shards] == [s.sha256 for s in fresh.manifest.shards]
    assert len(resumed.manifest.shards) == 3  # 1 MiB shards of 1 KiB images
    again = prepare("fashion-mnist", None, str(out), opts, shard_mb=1)
    assert again.already_complete


def test_output_holding_a_different_set_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "set"
    prepare("fashion-mnist", None, str(out), SourceOptions(size=32, limit=200))
    with pytest.raises(DataError, match="already holds a different shard set"):
        prepare("fashion-mnist", None, str(out), SourceOptions(size=64, limit=200))
    res = prepare(
        "fashion-mnist", None, str(out), SourceOptions(size=64, limit=200), overwrite=True
    )
    assert ShardSet(out).image_size == 64 and res.manifest.rows == 200
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty and is not a shard set"):
        prepare("fashion-mnist", None, str(tmp_path / "junk"), SourceOptions(limit=10))


def _small_set(tmp_path: Path) -> Path:
    out = tmp_path / "set"
    prepare("fashion-mnist", None, str(out), SourceOptions(size=32, limit=2000), shard_mb=1)
    return out


def test_truncated_shard_is_named(tmp_path: Path) -> None:
    out = _small_set(tmp_path)
    shard = out / "shard-00001.arrow"
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(DataError, match=r"shard-00001\.arrow is truncated"):
        ShardSet(out)


def test_checksum_failure_is_named(tmp_path: Path) -> None:
    out = _small_set(tmp_path)
    shard = out / "shard-00000.arrow"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped pixel
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"shard-00000\.arrow fails its checksum"):
        ShardSet(out, verify="full")


def test_checksum_is_verified_once_per_node_then_remembered(tmp_path: Path) -> None:
    out = _small_set(tmp_path)
    ShardSet(out)  # verifies and stamps
    shard = out / "shard-00000.arrow"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))  # new mtime: the stamp no longer applies
    with pytest.raises(DataError, match="fails its checksum"):
        ShardSet(out)


def test_uri_sets_are_cached_locally_under_a_lock(tmp_path: Path) -> None:
    out = _small_set(tmp_path)
    uri = f"file://{out}"
    a = ShardSet(uri, cache="always")
    assert a.folder != out and (a.folder / ".complete").exists()
    b = ShardSet(uri, cache="always")  # second open reuses the copy
    assert b.folder == a.folder
    np.testing.assert_array_equal(a.gather(np.arange(10)), ShardSet(out).gather(np.arange(10)))
    # prepare can write to a URI as well
    res = prepare("fashion-mnist", None, f"file://{tmp_path / 'viauri'}", SourceOptions(limit=100))
    assert (tmp_path / "viauri" / MANIFEST).exists() and res.manifest.rows == 100


def test_bad_idx_files_are_clear_errors(tmp_path: Path) -> None:
    assert FMNIST is not None
    folder = tmp_path / "fm"
    shutil.copytree(FMNIST, folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz not found"):
        prepare("fashion-mnist", str(folder), str(tmp_path / "o1"), SourceOptions())
    with gzip.open(folder / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(b"\x00\x00\x08\x01" + (9999).to_bytes(4, "big") + bytes(10))
    with pytest.raises(DataError, match="holds 10 bytes of data, header says 9999"):
        prepare("fashion-mnist", str(folder), str(tmp_path / "o2"), SourceOptions())


def test_folder_source_with_a_corrupt_image(tmp_path: Path) -> None:
    root = tmp_path / "garments"
    for cls, colour in [("shirts", (200, 30, 30)), ("skirts", (30, 30, 200))]:
        (root / cls).mkdir(parents=True)
        for i in range(5):
            Image.new("RGB", (60 + 10 * i, 90), colour).save(root / cls / f"{i}.jpg")
    (root / "skirts" / "bad.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="could not be used"):
        prepare("folder", str(root), str(tmp_path / "strict"), SourceOptions(size=32))
    res = prepare(
        "folder", str(root), str(tmp_path / "ok"), SourceOptions(size=32), max_skip_frac=0.2
    )
    m = res.manifest
    assert m.classes == ["shirts", "skirts"] and m.rows == 10 and m.channels == 3
    assert [s.source_id for s in m.skipped] == ["skirts/bad.jpg"]
    assert "corrupt image" in m.skipped[0].reason
    shards = ShardSet(tmp_path / "ok")
    reds = shards.gather(np.flatnonzero(shards.labels == 0))
    assert (
        reds[:, 0].mean() > 150 and reds[:, 2].mean() < 80
    )  # RGB kept, padded with its own colour


def test_cli_prepare_and_inspect(tmp_path: Path) -> None:
    out = tmp_path / "cli-set"
    proc = run_cli("data", "prepare", "fashion-mnist", "--out", str(out), "--limit", "500")
    assert proc.returncode == 0, proc.stderr
    assert "wrote 500 images" in proc.stdout
    proc = run_cli("data", "inspect", str(out), "--grid", str(tmp_path / "g.png"))
    assert proc.returncode == 0, proc.stderr
    assert "fashion-mnist" in proc.stdout and "train" in proc.stdout
    grid = Image.open(tmp_path / "g.png")
    assert grid.width > 8 * 64 and np.asarray(grid).std() > 20  # real pictures, not blank
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["schema"][0].startswith("image: fixed_size_binary[1024]")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (
            ["data", "prepare", "fashion-mnist", "/no/such/dir", "--out", "{tmp}/o"],
            ["/no/such/dir"],
        ),
        (
            ["data", "prepare", "fashion-mnist", "--size", "48", "--out", "{tmp}/o"],
            ["48", "32, 64, 128"],
        ),
        (["data", "prepare", "imagenet", "--out", "{tmp}/o"], ["unknown source", "deepfashion"]),
        (["data", "prepare", "fashion-mnist", "--category", "Hat", "--out", "{tmp}/o"], ["Hat"]),
        (["data", "inspect", "{tmp}"], ["not a shard set"]),
    ],
)
def test_cli_bad_input_is_one_line(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    proc = run_cli(*[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert_one_line_error(proc, *fragments)


def test_gather_matches_row_by_row_reads_across_shards(tmp_path: Path) -> None:
    out = _small_set(tmp_path)  # 2 shards of 1 MiB
    shards = ShardSet(out)
    assert len(shards._chunks) == 2
    one_by_one = np.stack([shards.gather(np.array([i]))[0] for i in range(len(shards))])
    rng = np.random.default_rng(0)
    idx = rng.choice(len(shards), 300, replace=False)  # unsorted, both shards
    np.testing.assert_array_equal(shards.gather(idx), one_by_one[idx])
    srt = np.sort(idx)
    np.testing.assert_array_equal(shards.gather_sorted(srt), one_by_one[srt])
    with pytest.raises(IndexError):
        shards.gather(np.array([len(shards)]))
