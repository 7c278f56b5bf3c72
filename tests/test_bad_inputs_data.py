"""Bad and unusual inputs to ``data prepare`` / ``data inspect``, through the real CLI on
real files: one ``error:`` line, exit 2, no traceback, nothing left that reads as valid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from fashion_tune.data.prepare import prepare
from fashion_tune.data.reader import ShardSet
from fashion_tune.data.shards import MANIFEST, PROGRESS, Manifest
from fashion_tune.data.sources import SourceOptions
from fashion_tune.data.sources.deepfashion import DeepFashion
from fashion_tune.errors import DataError
from tests import deepfashion_fixtures as fx
from tests.cli_helpers import (
    assert_one_error,
    full_filesystem,
    read_only,
    run_main,
    tree,
)
from tests.cli_helpers import empty_cwd_fixture as empty_cwd_fixture


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 real Fashion-MNIST images at 32 px (copied per test before it is damaged)."""
    out = tmp_path_factory.mktemp("pristine") / "shards"
    prepare("fashion-mnist", None, str(out), SourceOptions(size=32, limit=200))
    return out


@pytest.fixture()
def shards(pristine: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "shards"
    shutil.copytree(pristine, dest)
    return dest


def _image_folder(root: Path, n: int = 3, mode: str = "RGB") -> Path:
    """ROOT/<class>/<image>.png: two classes of small square garments-to-be."""
    rng = np.random.default_rng(0)
    for cls in ("shirt", "dress"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(arr, "RGB").convert(mode).save(root / cls / f"{i}.png")
    return root


def _prepare_option_names() -> set[str]:
    import typer.main

    from fashion_tune.cli import app

    group = typer.main.get_command(app)
    prep = group.commands["data"].commands["prepare"]  # type: ignore[attr-defined]
    return {p.name for p in prep.params}


# a successful prepare here need not also train the metric reference (minutes of CPU)
NO_REF = ["--no-reference"] if "reference" in _prepare_option_names() else []


def _source_ids(out: Path) -> list[str]:
    """Every row's source_id, in row order, read straight from the Arrow shards."""
    manifest = Manifest.from_json((out / MANIFEST).read_text(), "manifest")
    ids: list[str] = []
    for info in manifest.shards:
        with pa.memory_map(str(out / info.file)) as mm:
            ids += pa.ipc.open_file(mm).read_all().column("source_id").to_pylist()
    return ids


# -- prepare: numbers ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--limit", "-1"], "--limit"),
        (["--limit", "0"], "--limit"),
        (["--shard-mb", "0"], "--shard-mb"),
        (["--shard-mb", "-3"], "--shard-mb"),
        (["--shard-mb", "nan"], "--shard-mb"),
        (["--shard-mb", "inf"], "--shard-mb"),
        (["--shard-mb", "1e-6"], "smaller than one image"),
        (["--max-skip-frac", "nan"], "--max-skip-frac"),
        (["--max-skip-frac", "1.5"], "--max-skip-frac"),
        (["--max-skip-frac", "-0.1"], "--max-skip-frac"),
        (["--margin", "nan"], "--margin"),
        (["--margin", "-0.5"], "--margin"),
        (["--workers", "0"], "--workers"),
        (["--size", "48"], "unsupported image size"),
        (["--channels", "2"], "channel count"),
        (["--view", "front"], "--view applies to the deepfashion source"),
        (["--category-type", "upper"], "--category-type applies to the deepfashion source"),
    ],
)
def test_prepare_bad_numbers(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], fragment: str
) -> None:
    out = tmp_path / "out"
    r = run_main(capsys, "data", "prepare", "fashion-mnist", "--out", out, *args)
    assert_one_error(r, fragment)
    assert not out.exists(), "a refused prepare left a folder behind"


# -- prepare: where it writes ----------------------------------------------------------------
@pytest.mark.parametrize("out", ["/proc/fashion-tune-out", "/sys/fashion-tune-out"])
def test_prepare_into_an_impossible_place(capsys: pytest.CaptureFixture[str], out: str) -> None:
    r = run_main(capsys, "data", "prepare", "fashion-mnist", "--out", out, "--limit", "10")
    assert_one_error(r, "cannot write to", out)
    assert not Path(out).exists()


def test_prepare_into_a_read_only_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    with read_only(parent):
        r = run_main(
            capsys, "data", "prepare", "fashion-mnist", "--out", parent / "set", "--limit", "10"
        )
        assert_one_error(r, "cannot write to")
    assert list(parent.iterdir()) == []


def test_prepare_onto_a_full_disk(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    with full_filesystem(disk):
        r = run_main(
            capsys, "data", "prepare", "fashion-mnist", "--out", disk / "set", "--limit", "500"
        )
        assert_one_error(r, "No space left on device")
        assert list(disk.iterdir()) == []  # no folder, no temp file, nothing that reads as a set


def test_prepare_again_onto_a_read_only_finished_set(
    capsys: pytest.CaptureFixture[str], shards: Path
) -> None:
    args = ["data", "prepare", "fashion-mnist", "--out", shards, "--limit", "200", *NO_REF]
    before = tree(shards)
    with read_only(shards):
        r = run_main(capsys, *args)
        assert r.code == 0 and "already holds this set" in r.said, r.err
        assert_one_error(run_main(capsys, *args, "--overwrite"), "cannot write to")
        assert_one_error(run_main(capsys, *args, "--size", "64"), "different shard set")
    assert tree(shards) == before


def test_prepare_onto_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    r = run_main(capsys, "data", "prepare", "fashion-mnist", "--out", target, "--limit", "10")
    assert_one_error(r, str(target))
    assert target.read_text() == "not a folder"


def test_prepare_where_no_image_is_usable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "src" / "tops"
    src.mkdir(parents=True)
    (src / "empty.png").write_bytes(b"")
    (src / "cut.gif").write_bytes(b"GIF89a")
    out = tmp_path / "out"
    r = run_main(
        capsys, "data", "prepare", "folder", src.parent, "--out", out, "--max-skip-frac", "1"
    )
    assert_one_error(r, "none of the 2 selected images could be used", "empty.png")
    assert not out.exists()  # not a set of nothing that reads as complete


def test_inspect_a_set_without_images(
    capsys: pytest.CaptureFixture[str], shards: Path, empty_cwd: Path
) -> None:
    d = json.loads((shards / MANIFEST).read_text())
    d["shards"] = []
    (shards / MANIFEST).write_text(json.dumps(d))
    assert_one_error(run_main(capsys, "data", "inspect", shards), "holds no images")


def test_overwrite_never_replaces_a_folder_that_is_not_a_shard_set(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("mine")
    args = ["data", "prepare", "fashion-mnist", "--out", mine, "--limit", "10", "--overwrite"]
    assert_one_error(run_main(capsys, *args), "not a shard set", "--overwrite replaces only")
    assert [p.name for p in mine.iterdir()] == ["thesis.tex"]


def test_failed_prepare_leaves_no_empty_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    r = run_main(capsys, "data", "prepare", "folder", tmp_path / "no-such-dir", "--out", out)
    assert_one_error(r, "does not exist")
    assert not out.exists()


# -- prepare: a damaged folder from an earlier run -------------------------------------------
@pytest.mark.parametrize(
    "damage", ["{not json", "[]", '{"fingerprint": "x", "shards": [{"file": 3}]}', "\xff"]
)
def test_damaged_progress_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, damage: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / PROGRESS).write_bytes(damage.encode("latin-1"))
    args = ["data", "prepare", "fashion-mnist", "--out", out, "--limit", "50", *NO_REF]
    assert_one_error(run_main(capsys, *args), PROGRESS, "--overwrite")
    assert not (out / MANIFEST).exists()
    r = run_main(capsys, *args, "--overwrite")
    assert r.code == 0, r.err
    assert ShardSet(out).manifest.rows == 50


def test_damaged_manifest_is_replaced_with_overwrite(
    capsys: pytest.CaptureFixture[str], shards: Path
) -> None:
    (shards / MANIFEST).write_text("{garbage")
    args = ["data", "prepare", "fashion-mnist", "--out", shards, "--limit", "200", *NO_REF]
    assert_one_error(run_main(capsys, *args), MANIFEST)
    r = run_main(capsys, *args, "--overwrite")
    assert r.code == 0, r.err
    assert ShardSet(shards).manifest.rows == 200


# -- prepare: a folder source notices every changed input ------------------------------------
def _prepare_folder(capsys: pytest.CaptureFixture[str], src: Path, out: Path, *extra: str):
    return run_main(capsys, "data", "prepare", "folder", src, "--out", out, *NO_REF, *extra)


@pytest.mark.parametrize("change", ["pixels", "moved", "added", "deleted"])
def test_folder_source_detects_changed_inputs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, change: str
) -> None:
    src = _image_folder(tmp_path / "src")
    out = tmp_path / "out"
    assert _prepare_folder(capsys, src, out).code == 0
    assert "already holds this set" in _prepare_folder(capsys, src, out).said
    victim = src / "shirt" / "0.png"
    if change == "pixels":  # same size, same name, other pixels
        arr = np.asarray(Image.open(victim)).copy()
        arr[0, 0] ^= 0xFF
        Image.fromarray(arr).save(victim)
        os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
    elif change == "moved":
        victim.rename(src / "dress" / "moved.png")
    elif change == "added":
        shutil.copy(victim, src / "shirt" / "new.png")
    else:
        victim.unlink()
    before = tree(out)
    assert_one_error(_prepare_folder(capsys, src, out), "different shard set", "--overwrite")
    assert tree(out) == before  # the old set is left as it was
    assert _prepare_folder(capsys, src, out, "--overwrite").code == 0


def test_resume_of_a_killed_prepare_refuses_changed_inputs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = _image_folder(tmp_path / "src", n=6)
    out = tmp_path / "out"
    # 3 KiB images, 0.004 MiB shards: one image a shard, 12 shards
    assert _prepare_folder(capsys, src, out, "--shard-mb", "0.004").code == 0
    manifest = Manifest.from_json((out / MANIFEST).read_text(), "manifest")
    assert len(manifest.shards) == 12

    def kill_after_two_shards() -> None:  # exactly what a prepare killed there leaves
        state = {
            "fingerprint": manifest.fingerprint,
            "shards": [vars(s) for s in manifest.shards[:2]],
            "skipped": [],
        }
        (out / MANIFEST).unlink()
        for s in manifest.shards[2:]:
            (out / s.file).unlink(missing_ok=True)
        (out / PROGRESS).write_text(json.dumps(state))

    kill_after_two_shards()
    r = _prepare_folder(capsys, src, out, "--shard-mb", "0.004")
    assert r.code == 0 and "resumed after 2" in r.said, r.err
    # an input deleted and another added before the resume: refused, not mixed
    kill_after_two_shards()
    (src / "dress" / "5.png").unlink()
    shutil.copy(src / "dress" / "4.png", src / "dress" / "9.png")
    r = _prepare_folder(capsys, src, out, "--shard-mb", "0.004")
    assert_one_error(r, "unfinished prepare of different inputs", "--overwrite")
    assert not (out / MANIFEST).exists()  # still not a set that reads as complete
    assert _prepare_folder(capsys, src, out, "--shard-mb", "0.004", "--overwrite").code == 0
    ids = _source_ids(out)
    assert "dress/5.png" not in ids and "dress/9.png" in ids


def test_folder_file_name_that_is_not_utf8(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = _image_folder(tmp_path / "src", n=1)
    odd = os.fsdecode(b"\xff\xfe.png")  # a Latin-1 name on a UTF-8 system
    shutil.copy(src / "shirt" / "0.png", src / "shirt" / odd)
    out = tmp_path / "out"
    r = _prepare_folder(capsys, src, out)
    assert r.code == 0, r.err
    assert ShardSet(out).manifest.rows == 3
    assert "shirt/\ufffd\ufffd.png" in _source_ids(out)


# -- prepare: unusual pixels -----------------------------------------------------------------
def test_16_bit_png_is_scaled_not_clipped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "src" / "gray"
    src.mkdir(parents=True)
    ramp = np.linspace(0, 65535, 32 * 32).round().astype(np.uint16).reshape(32, 32)
    Image.fromarray(ramp).save(src / "ramp.png")  # mode I;16
    assert Image.open(src / "ramp.png").mode.startswith("I")
    out = tmp_path / "out"
    r = run_main(
        capsys,
        "data",
        "prepare",
        "folder",
        tmp_path / "src",
        "--out",
        out,
        "--channels",
        "1",
        *NO_REF,
    )
    assert r.code == 0, r.err
    got = ShardSet(out).gather(np.array([0]))[0, 0]
    expected = np.round(ramp / 257.0).astype(np.uint8)
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert got.min() == 0 and got.max() >= 254 and 120 < got.mean() < 135


def _png16(arr: np.ndarray, color_type: int) -> bytes:
    """A 16-bit PNG written by hand (PIL cannot write 48/64-bit): 2 RGB, 4 gray+alpha, 6 RGBA."""
    h = arr.shape[0]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", arr.shape[1], h, 16, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def test_48_and_64_bit_pngs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = tmp_path / "src" / "deep"
    src.mkdir(parents=True)
    rgb = np.zeros((32, 32, 3), np.uint16)
    rgb[..., 0] = 65535  # full red, half green
    rgb[..., 1] = 32768
    (src / "rgb48.png").write_bytes(_png16(rgb, 2))
    gray_alpha = np.zeros((32, 32, 2), np.uint16)
    gray_alpha[8:24, 8:24] = (30000, 65535)  # opaque grey square, transparent around it
    (src / "la32.png").write_bytes(_png16(gray_alpha, 4))
    out = tmp_path / "out"
    r = run_main(capsys, "data", "prepare", "folder", tmp_path / "src", "--out", out, *NO_REF)
    assert r.code == 0, r.err
    shards, ids = ShardSet(out), _source_ids(out)
    deep = shards.gather(np.array([ids.index("deep/rgb48.png")]))[0]
    assert tuple(deep[:, 5, 5]) == (255, 128, 0)
    la = shards.gather(np.array([ids.index("deep/la32.png")]))[0]
    assert tuple(la[:, 0, 0]) == (255, 255, 255)  # transparent ring: white
    assert tuple(la[:, 16, 16]) == (117, 117, 117)  # 30000 / 257


def test_rgba_is_composited_on_its_border_colour(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src = tmp_path / "src" / "tops"
    src.mkdir(parents=True)
    # a cut-out product shot: opaque red garment, transparent (black) background
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[8:24, 8:24] = (200, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(src / "cut.png")
    # an opaque grey frame around a half-transparent centre
    framed = np.zeros((32, 32, 4), np.uint8)
    framed[...] = (100, 100, 100, 255)
    framed[8:24, 8:24] = (0, 0, 200, 128)
    Image.fromarray(framed, "RGBA").save(src / "framed.png")
    out = tmp_path / "out"
    r = run_main(capsys, "data", "prepare", "folder", tmp_path / "src", "--out", out, *NO_REF)
    assert r.code == 0, r.err
    shards = ShardSet(out)
    ids = _source_ids(out)
    cut = shards.gather(np.array([ids.index("tops/cut.png")]))[0]
    fr = shards.gather(np.array([ids.index("tops/framed.png")]))[0]
    assert tuple(cut[:, 0, 0]) == (255, 255, 255)  # background: white, not black
    assert tuple(cut[:, 16, 16]) == (200, 0, 0)
    assert tuple(fr[:, 0, 0]) == (100, 100, 100)
    assert np.abs(fr[:, 16, 16].astype(int) - (50, 50, 150)).max() <= 1  # blended on grey


# -- inspect ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--per-class", "0"], "--per-class"),
        (["--per-class", "-2"], "--per-class"),
        (["--per-class", "100000"], "--per-class"),
        (["--grid", "grid.xyz"], ".xyz"),
        (["--grid", "grid"], "no suffix"),
        (["--grid", "/sys/fashion-tune-grid.png"], "/sys/fashion-tune-grid.png"),
    ],
)
def test_inspect_bad_options(
    capsys: pytest.CaptureFixture[str],
    shards: Path,
    empty_cwd: Path,
    args: list[str],
    fragment: str,
) -> None:
    before = tree(shards)
    assert_one_error(run_main(capsys, "data", "inspect", shards, *args), fragment)
    assert tree(shards) == before and list(empty_cwd.iterdir()) == []


@pytest.mark.parametrize(
    ("location", "fragment"),
    [("gs://", "names no bucket"), ("s3:///", "bucket"), ("file://", "cannot open")],
)
def test_malformed_uris(
    capsys: pytest.CaptureFixture[str], empty_cwd: Path, location: str, fragment: str
) -> None:
    assert_one_error(run_main(capsys, "data", "inspect", location), fragment)
    r = run_main(capsys, "data", "prepare", "fashion-mnist", "--out", location, "--limit", "5")
    assert_one_error(r, fragment)
    assert list(empty_cwd.iterdir()) == []


def test_inspect_grid_that_is_a_folder(
    capsys: pytest.CaptureFixture[str], shards: Path, empty_cwd: Path
) -> None:
    (empty_cwd / "grids").mkdir()
    assert_one_error(
        run_main(capsys, "data", "inspect", shards, "--grid", empty_cwd / "grids"), "folder"
    )


def test_inspect_grid_into_a_read_only_folder(
    capsys: pytest.CaptureFixture[str], shards: Path, tmp_path: Path
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        r = run_main(capsys, "data", "inspect", shards, "--grid", ro / "grid.png")
        assert_one_error(r, "grid.png")
    assert list(ro.iterdir()) == []


def test_inspect_read_only_set_writes_the_grid_elsewhere(
    capsys: pytest.CaptureFixture[str], shards: Path, empty_cwd: Path
) -> None:
    before = tree(shards)
    with read_only(shards):
        r = run_main(capsys, "data", "inspect", shards)
    assert r.code == 0, r.err
    assert "read-only" in r.said and (empty_cwd / "samples.png").exists()
    assert tree(shards) == before


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("image_size", "abc", "image_size"),
        ("image_size", 3.5, "image_size"),
        ("image_size", 64, "manifest"),  # a supported size, but not the shards' own
        ("image_size", 0, "image_size"),
        ("channels", 3, "manifest"),
        ("channels", "x", "channels"),
        ("shards", "nope", "malformed"),
    ],
)
def test_inspect_damaged_manifest(
    capsys: pytest.CaptureFixture[str],
    shards: Path,
    empty_cwd: Path,
    key: str,
    value: object,
    fragment: str,
) -> None:
    d = json.loads((shards / MANIFEST).read_text())
    d[key] = value
    (shards / MANIFEST).write_text(json.dumps(d))
    before = tree(shards)
    assert_one_error(run_main(capsys, "data", "inspect", shards), fragment)
    assert tree(shards) == before


def test_rgb_grid_label_column_is_white(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = _image_folder(tmp_path / "src")
    out = tmp_path / "out"
    assert _prepare_folder(capsys, src, out).code == 0
    r = run_main(capsys, "data", "inspect", out, "--grid", tmp_path / "grid.png")
    assert r.code == 0, r.err
    grid = np.asarray(Image.open(tmp_path / "grid.png").convert("RGB"))
    assert tuple(grid[0, 0]) == (255, 255, 255) and tuple(grid[-1, 1]) == (255, 255, 255)
    red = (grid[..., 0] > 200) & (grid[..., 1] < 50) & (grid[..., 2] < 50)
    assert red[:, :20].sum() == 0  # no red label column


# -- DeepFashion In-shop: a count line that counts distinct items ----------------------------
def _attr_items(root: Path) -> Path:
    return next(root.rglob("list_attr_items.txt"))


def test_inshop_attr_items_with_repeated_rows_and_a_distinct_count(tmp_path: Path) -> None:
    root = fx.make_inshop_benchmark(tmp_path / "inshop")
    path = _attr_items(root)
    lines = path.read_text().splitlines()
    count, header, rows = int(lines[0]), lines[1], lines[2:]
    assert count == len(rows)
    before = DeepFashion(str(root), SourceOptions()).scan()
    # like the release: items filed under two classes are listed twice, identically,
    # while line 1 still counts items (7,982 items, 8,081 rows)
    path.write_text("\n".join([str(count), header, *rows, rows[0], rows[2]]) + "\n")
    after = DeepFashion(str(root), SourceOptions()).scan()
    assert after.attribute_rows is not None and before.attribute_rows is not None
    np.testing.assert_array_equal(after.attribute_rows, before.attribute_rows)
    # counting every row is still right
    path.write_text("\n".join([str(count + 2), header, *rows, rows[0], rows[2]]) + "\n")
    DeepFashion(str(root), SourceOptions()).scan()
    # a count that matches neither is an error naming the file
    path.write_text("\n".join([str(count + 1), header, *rows, rows[0], rows[2]]) + "\n")
    with pytest.raises(DataError, match="line 1 says"):
        DeepFashion(str(root), SourceOptions()).scan()
    # a repeat with other values is an error
    parts = rows[0].split()
    other = " ".join([parts[0], *("1" if v != "1" else "0" for v in parts[1:])])
    path.write_text("\n".join([str(count + 1), header, *rows, other]) + "\n")
    with pytest.raises(DataError, match="listed again with other values"):
        DeepFashion(str(root), SourceOptions()).scan()


def test_inshop_prepare_with_repeated_attribute_rows(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = fx.make_inshop_benchmark(tmp_path / "inshop")
    path = _attr_items(root)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[2], lines[3]]) + "\n")
    out = tmp_path / "out"
    r = run_main(capsys, "data", "prepare", "deepfashion", root, "--out", out, *NO_REF)
    assert r.code == 0, r.err
    assert ShardSet(out).manifest.attributes


# -- Ctrl-C ------------------------------------------------------------------------------------
def test_ctrl_c_in_prepare_exits_130_and_the_same_command_resumes(tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal sends it: the workers too."""
    src = tmp_path / "src"
    rng = np.random.default_rng(0)
    big = src / "a" / "0.jpg"
    big.parent.mkdir(parents=True)
    (src / "b").mkdir()
    Image.fromarray(rng.integers(0, 256, (900, 700, 3), dtype=np.uint8)).save(big)
    for i in range(1, 300):  # slow to decode: the prepare is interrupted part way
        shutil.copy(big, src / ("a" if i % 2 else "b") / f"{i}.jpg")
    out = tmp_path / "out"
    script = Path(sys.executable).with_name("fashion-tune")
    cmd = [str(script), "data", "prepare", "folder", str(src), "--out", str(out)]
    cmd += ["--size", "64", "--shard-mb", "0.05", "--workers", "2", *NO_REF]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / PROGRESS).exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.returncode == 0:
        pytest.skip("the prepare finished before the interrupt arrived")
    assert proc.returncode == 130, stdout + stderr
    assert "Traceback" not in stdout + stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.startswith("interrupted")]
    assert len(lines) == 1 and "resume" in lines[0], stderr
    assert not (out / MANIFEST).exists()  # never reads as a complete set
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resumed after" in " ".join(again.stdout.split())
    assert ShardSet(out).manifest.rows == 300


def test_deepfashion_annotation_edited_in_place_is_a_different_set(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = fx.make_inshop_benchmark(tmp_path / "inshop")
    out = tmp_path / "out"
    args = ["data", "prepare", "deepfashion", root, "--out", out, *NO_REF]
    assert run_main(capsys, *args).code == 0
    assert "already holds this set" in run_main(capsys, *args).said
    # one status changed in place, same byte count: train -> query ("train" / "query" differ)
    part = root / "Eval" / "list_eval_partition.txt"
    text = part.read_text()
    edited = text.replace("train", "query", 1)
    assert len(edited) == len(text) and edited != text
    part.write_text(edited)
    os.utime(part, ns=(part.stat().st_atime_ns, part.stat().st_mtime_ns + 10**9))
    assert_one_error(run_main(capsys, *args), "different shard set")
