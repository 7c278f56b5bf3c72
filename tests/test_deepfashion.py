"""The deepfashion source on tiny on-disk copies of both benchmarks (see deepfashion_fixtures)."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from fashion_tune.data.imaging import SkipImage
from fashion_tune.data.sources import SOURCES, Scan, SourceOptions
from fashion_tune.data.sources.deepfashion import DeepFashion, read_attribute_matrix
from fashion_tune.errors import DataError
from tests import deepfashion_fixtures as fx


def source(path: Path, **options: object) -> DeepFashion:
    src = SOURCES["deepfashion"](str(path), SourceOptions(**options))  # type: ignore[arg-type]
    assert isinstance(src, DeepFashion)
    return src


def scan(path: Path, **options: object) -> Scan:
    return source(path, **options).scan()


def expected_attrs(scan_: Scan, values: dict[str, list[int]]) -> np.ndarray:
    return np.array([values[r.source_id] for r in scan_.records], dtype=np.int8)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.make_category_benchmark(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def inshop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fx.make_inshop_benchmark(tmp_path_factory.mktemp("inshop"))


CA_ROWS = fx.ca_rows()
CA_ATTRS = {r.name: fx.ca_attr_values(i) for i, r in enumerate(CA_ROWS)}
IS_ROWS = fx.inshop_rows()
IS_ATTRS = {r.name: fx.inshop_attr_values(r.item) for r in IS_ROWS}


# ---------------------------------------------------------------------------------------
# Category and Attribute Prediction


@pytest.mark.parametrize("img_subdir", ["Img/img", "img"])
def test_category_scan(tmp_path: Path, img_subdir: str) -> None:
    root = fx.make_category_benchmark(tmp_path, img_subdir=img_subdir)
    s = scan(root)
    # Anorak and Cape have no images: dropped, labels renumbered densely in file order
    assert s.classes == ["Blouse", "Tee", "Jeans", "Skirt", "Dress", "Romper"]
    assert s.splits == ["train", "val", "test"]
    assert s.channels == 3
    assert s.skipped == []
    assert s.attributes[:3] == ["a-line", "animal print", "button front"]
    assert s.attributes[-1] == "faux leather"
    assert len(s.records) == 24
    assert s.attribute_rows is not None
    assert s.attribute_rows.dtype == np.int8 and s.attribute_rows.shape == (24, 10)
    # one row spelled out: the 11th image, a Jeans in val
    r = s.records[10]
    assert r.source_id == "img/Classic_Jeans/img_00000011.jpg"
    assert s.classes[r.label] == "Jeans" and r.label == 2
    assert s.splits[r.split] == "val"
    assert r.ref[1] == (33, 40, 169, 270)
    assert s.attribute_rows[10].tolist() == [0, 1, -1, 0, 1, -1, 0, 1, -1, 0]
    # and every row against the fixture
    for rec, row in zip(s.records, CA_ROWS, strict=True):
        assert rec.source_id == row.name
        assert s.classes[rec.label] == row.label
        assert s.splits[rec.split] == row.split
        assert rec.ref[1] == row.bbox
    np.testing.assert_array_equal(s.attribute_rows, expected_attrs(s, CA_ATTRS))
    assert s.spec["benchmark"] == "category-attribute"
    assert s.spec["root"] == str(root.resolve())
    assert s.spec["image_root"] == ("Img" if img_subdir == "Img/img" else ".")
    assert set(s.spec["annotations"]) == {
        "Anno/list_category_cloth.txt",
        "Anno/list_category_img.txt",
        "Anno/list_attr_cloth.txt",
        "Anno/list_attr_img.txt",
        "Anno/list_bbox.txt",
        "Eval/list_eval_partition.txt",
    }
    img = source(root).load(s.records[0])
    assert img.shape == (3, 32, 32) and img.dtype == np.uint8


def test_category_loose_attribute_layout(tmp_path: Path) -> None:
    s = scan(fx.make_category_benchmark(tmp_path, attr_layout="loose"))
    assert s.attribute_rows is not None
    np.testing.assert_array_equal(s.attribute_rows, expected_attrs(s, CA_ATTRS))


@pytest.mark.parametrize("where", ["Anno", ""])
def test_partition_in_anno_or_root(tmp_path: Path, where: str) -> None:
    s = scan(fx.make_category_benchmark(tmp_path, partition_dir=where))
    assert [s.splits[r.split] for r in s.records] == [row.split for row in CA_ROWS]


def test_2020_release_anno_coarse(tmp_path: Path) -> None:
    root = fx.make_category_benchmark(tmp_path, n_per_category=1)
    (root / "Anno").rename(root / "Anno_coarse")
    s = scan(root)
    assert s.classes == fx.CA_USED
    assert "Anno_coarse/list_attr_img.txt" in s.spec["annotations"]


def test_both_image_roots_present_takes_the_one_with_images(tmp_path: Path) -> None:
    root = fx.make_category_benchmark(tmp_path, img_subdir="Img/img")
    (root / "img").mkdir()
    src = source(root)
    s = src.scan()
    assert s.spec["image_root"] == "Img"
    assert src.load(s.records[0]).shape == (3, 32, 32)


def test_bbox_crop(ca: Path) -> None:
    colour = np.array(CA_ROWS[0].colour)
    tight = source(ca, margin=0.0, size=32)
    s = tight.scan()
    img = tight.load(s.records[0]).astype(int)  # (3, 32, 32)
    # the box holds only the garment body: every corner is its colour, no white background
    for y, x in [(0, 0), (0, 31), (31, 0), (31, 31), (16, 2)]:
        assert np.abs(img[:, y, x] - colour).max() < 40, (y, x, img[:, y, x])
    assert img.min(axis=0).max() < 230  # nowhere white (the pocket is on row 1, not row 0)
    # a wide margin brings the white background (and pads to a square with it)
    loose = source(ca, margin=0.5, size=32).load(s.records[0]).astype(int)
    assert (loose[:, 0, 0] > 230).all() and (loose[:, 31, 31] > 230).all()
    # grey / size options
    grey = source(ca, margin=0.0, size=64, channels=1).load(s.records[0])
    assert grey.shape == (1, 64, 64)


def test_category_filters_keep_attributes_aligned(ca: Path) -> None:
    s = scan(ca, category_types=("lower",))
    assert s.classes == ["Jeans", "Skirt"]
    assert len(s.records) == 8 and {r.label for r in s.records} == {0, 1}
    np.testing.assert_array_equal(s.attribute_rows, expected_attrs(s, CA_ATTRS))

    s = scan(ca, categories=("Romper", "Blouse"))
    assert s.classes == ["Blouse", "Romper"]
    assert [s.classes[r.label] for r in s.records] == ["Blouse"] * 4 + ["Romper"] * 4
    np.testing.assert_array_equal(s.attribute_rows, expected_attrs(s, CA_ATTRS))

    s = scan(ca, category_types=("upper", "full"), categories=("Dress", "Tee"))
    assert s.classes == ["Tee", "Dress"]
    assert len(s.records) == 8

    s = scan(ca, limit=5)
    assert [r.source_id for r in s.records] == [row.name for row in CA_ROWS[:5]]
    assert s.classes == ["Blouse", "Tee"]
    assert s.attribute_rows is not None and s.attribute_rows.shape == (5, 10)
    np.testing.assert_array_equal(s.attribute_rows, expected_attrs(s, CA_ATTRS))

    s = scan(ca, categories=("Skirt",), limit=2)
    assert [r.source_id for r in s.records] == [row.name for row in CA_ROWS[12:14]]
    assert s.classes == ["Skirt"] and [r.label for r in s.records] == [0, 0]
    np.testing.assert_array_equal(s.attribute_rows, expected_attrs(s, CA_ATTRS))


def test_category_filter_errors(ca: Path) -> None:
    with pytest.raises(DataError, match="views apply to the In-shop benchmark only"):
        scan(ca, views=("front",))
    with pytest.raises(
        DataError, match="unknown category type 'middle'; valid: upper, lower, full"
    ):
        scan(ca, category_types=("middle",))
    with pytest.raises(DataError, match="unknown category 'Poncho'; valid: Anorak, Blouse"):
        scan(ca, categories=("Poncho",))
    with pytest.raises(DataError, match=r"left after filtering \(categories=Cape\)"):
        scan(ca, categories=("Cape",))  # listed, but no image has it


# ---------------------------------------------------------------------------------------
# In-shop Clothes Retrieval


@pytest.mark.parametrize("img_subdir", ["img", "Img/img"])
def test_inshop_scan(tmp_path: Path, img_subdir: str) -> None:
    root = fx.make_inshop_benchmark(tmp_path, img_subdir=img_subdir)
    src = source(root)
    s = src.scan()
    assert s.classes == ["MEN/Denim", "MEN/Tees_Tanks", "WOMEN/Blouses_Shirts", "WOMEN/Dresses"]
    assert s.splits == ["train", "query", "gallery"]
    assert s.attributes == fx.INSHOP_ATTRIBUTES  # "long sleeve": whole-line names
    assert len(s.records) == len(IS_ROWS) == 33
    r = s.records[4]
    assert r.source_id == "img/MEN/Denim/id_00000001/01_7_additional.jpg"
    assert s.classes[r.label] == "MEN/Denim" and s.splits[r.split] == "train"
    r = s.records[5]
    assert r.source_id == "img/MEN/Denim/id_00000002/01_1_front.jpg"
    assert s.splits[r.split] == "query" and r.ref[1] == (75, 45, 190, 229)
    assert s.splits[s.records[6].split] == "gallery"
    for rec, row in zip(s.records, IS_ROWS, strict=True):
        assert (rec.source_id, s.classes[rec.label], s.splits[rec.split], rec.ref[1]) == (
            row.name,
            row.label,
            row.split,
            row.bbox,
        )
    assert s.attribute_rows is not None
    assert s.attribute_rows[5].tolist() == fx.inshop_attr_values("id_00000002")
    np.testing.assert_array_equal(s.attribute_rows, expected_attrs(s, IS_ATTRS))
    assert s.spec["benchmark"] == "in-shop"
    assert s.spec["image_root"] == ("Img" if img_subdir == "Img/img" else ".")
    assert src.load(s.records[0]).shape == (3, 32, 32)


def test_inshop_attributes_optional_or_in_subfolder(tmp_path: Path) -> None:
    s = scan(fx.make_inshop_benchmark(tmp_path / "none", attributes=False))
    assert s.attributes == [] and s.attribute_rows is None and len(s.records) == 33
    s = scan(fx.make_inshop_benchmark(tmp_path / "sub", attr_subdir="Anno/attributes"))
    np.testing.assert_array_equal(s.attribute_rows, expected_attrs(s, IS_ATTRS))


def test_inshop_filters(inshop: Path) -> None:
    s = scan(inshop, views=("front",))
    assert len(s.records) == 8
    assert all(r.source_id.endswith("_front.jpg") for r in s.records)
    np.testing.assert_array_equal(s.attribute_rows, expected_attrs(s, IS_ATTRS))

    s = scan(inshop, views=("flat", "additional"))
    assert (
        sorted(r.source_id.rsplit("_", 1)[1] for r in s.records)
        == ["additional.jpg"] + ["flat.jpg"] * 4
    )

    s = scan(inshop, category_types=("full",))  # clothes_type 3 in list_bbox_inshop.txt
    assert s.classes == ["WOMEN/Dresses"] and len(s.records) == 8

    s = scan(inshop, categories=("WOMEN/Dresses", "MEN/Denim"), views=("back",))
    assert s.classes == ["MEN/Denim", "WOMEN/Dresses"]
    assert [r.label for r in s.records] == [0, 0, 1, 1]
    np.testing.assert_array_equal(s.attribute_rows, expected_attrs(s, IS_ATTRS))

    s = scan(inshop, category_types=("upper",), limit=3)
    assert [r.source_id for r in s.records] == [row.name for row in IS_ROWS[9:12]]
    assert s.classes == ["MEN/Tees_Tanks"]
    np.testing.assert_array_equal(s.attribute_rows, expected_attrs(s, IS_ATTRS))

    with pytest.raises(DataError, match="unknown view 'top'; valid: front, side, back, full, flat"):
        scan(inshop, views=("top",))
    with pytest.raises(DataError, match="unknown category 'Dresses'; valid: MEN/Denim"):
        scan(inshop, categories=("Dresses",))


# ---------------------------------------------------------------------------------------
# bad input


def test_bad_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs a PATH"):
        DeepFashion(None, SourceOptions()).scan()
    with pytest.raises(DataError, match="does not exist"):
        scan(tmp_path / "nope")
    with pytest.raises(
        DataError, match=r"not a DeepFashion benchmark folder: expected .*list_category_img.txt"
    ) as exc:
        scan(tmp_path)
    assert "Anno/list_bbox_inshop.txt" in str(exc.value)


@pytest.mark.parametrize(
    "name, where",
    [
        ("list_category_cloth.txt", "Anno"),
        ("list_attr_cloth.txt", "Anno"),
        ("list_attr_img.txt", "Anno"),
        ("list_bbox.txt", "Anno"),
        ("list_eval_partition.txt", "Eval"),
    ],
)
def test_category_missing_annotation_file(tmp_path: Path, name: str, where: str) -> None:
    root = fx.make_category_benchmark(tmp_path, omit=[name])
    with pytest.raises(DataError, match=re.escape(f"{root / where / name} not found")):
        scan(root)


def test_inshop_missing_annotation_file(tmp_path: Path) -> None:
    root = fx.make_inshop_benchmark(tmp_path / "a", omit=["list_eval_partition.txt"])
    with pytest.raises(DataError, match=re.escape(f"{root / 'Eval' / 'list_eval_partition.txt'}")):
        scan(root)
    root = fx.make_inshop_benchmark(tmp_path / "b", omit=["list_attr_items.txt"])
    with pytest.raises(DataError, match=re.escape(f"{root / 'Anno' / 'list_attr_items.txt'} not")):
        scan(root)


def test_missing_image_folder(tmp_path: Path) -> None:
    root = fx.make_category_benchmark(tmp_path, n_per_category=1)
    (root / "Img").rename(root / "Images")
    (root / "img.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"no DeepFashion image folder: expected .*unzip"):
        scan(root)


CA_FILES = {
    "list_category_cloth.txt": "Anno",
    "list_category_img.txt": "Anno",
    "list_attr_cloth.txt": "Anno",
    "list_attr_img.txt": "Anno",
    "list_bbox.txt": "Anno",
    "list_eval_partition.txt": "Eval",
}


@pytest.mark.parametrize("name", list(CA_FILES))
def test_category_wrong_count_line(tmp_path: Path, name: str) -> None:
    root = fx.make_category_benchmark(tmp_path, n_per_category=2, wrong_count=name)
    path = root / CA_FILES[name] / name
    with pytest.raises(DataError, match=re.escape(f"{path}: line 1 says")):
        scan(root)


@pytest.mark.parametrize(
    "name, where",
    [
        ("list_eval_partition.txt", "Eval"),
        ("list_bbox_inshop.txt", "Anno"),
        ("list_attr_items.txt", "Anno"),
        ("list_attr_cloth.txt", "Anno"),
    ],
)
def test_inshop_wrong_count_line(tmp_path: Path, name: str, where: str) -> None:
    root = fx.make_inshop_benchmark(tmp_path, items_per_class=1, wrong_count=name)
    path = root / where / name
    with pytest.raises(DataError, match=re.escape(f"{path}: line 1 says")):
        scan(root)


NAME3 = fx.ca_rows(2)[2].name  # row 2 of a 2-per-category fixture: line 5 of each file


@pytest.mark.parametrize(
    "name, line, text, message",
    [
        ("list_bbox.txt", 5, f"{NAME3}  072 079 232", "expected 5 fields (image_name x_1"),
        ("list_bbox.txt", 5, f"{NAME3}  072 07x 232 273", "bbox coordinate '07x' is not an"),
        ("list_attr_img.txt", 5, f"{NAME3}  1 -1  2" + " 0" * 7, "attribute value '2' (field 4)"),
        (
            "list_attr_img.txt",
            5,
            f"{NAME3}  1 -1" + " 0" * 7,
            "expected a name and 10 attribute values, found 9",
        ),
        ("list_attr_img.txt", 5, f"{NAME3}  1 -1 1.5" + " 0" * 7, "attribute value '1.5'"),
        ("list_category_img.txt", 5, f"{NAME3}  9", "category 9 is not in list_category_cloth.txt"),
        ("list_category_img.txt", 5, f"{NAME3}", "expected 2 fields"),
        ("list_eval_partition.txt", 5, f"{NAME3}  training", "unknown evaluation status 'tr"),
        ("list_category_cloth.txt", 4, "Tee  4", "category type 4 is not 1, 2 or 3"),
        ("list_category_cloth.txt", 4, "Tee  upper", "category type 'upper' is not an integer"),
        ("list_attr_cloth.txt", 4, "button front", "attribute type 'front' is not an integer"),
        ("list_bbox.txt", 1, "image_name  x_1  y_1  x_2  y_2", "expected the row count"),
    ],
)
def test_category_malformed_rows(
    tmp_path: Path, name: str, line: int, text: str, message: str
) -> None:
    root = fx.make_category_benchmark(tmp_path, n_per_category=2)
    path = root / CA_FILES[name] / name
    fx.rewrite_line(path, line, text)
    with pytest.raises(DataError, match=re.escape(f"{path}:{line}: {message}")):
        scan(root)


def test_inshop_malformed_rows(tmp_path: Path) -> None:
    root = fx.make_inshop_benchmark(tmp_path, items_per_class=1)
    bbox = root / "Anno" / "list_bbox_inshop.txt"
    good = bbox.read_text()
    name = IS_ROWS[0].name
    fx.rewrite_line(bbox, 3, f"{name}  2  072 079 232 273")
    with pytest.raises(DataError, match=re.escape(f"{bbox}:3: expected 7 fields")):
        scan(root)
    fx.rewrite_line(bbox, 3, f"{name}  4  1  072 079 232 273")
    with pytest.raises(DataError, match=re.escape(f"{bbox}:3: clothes type 4 is not 1, 2 or 3")):
        scan(root)
    bbox.write_text(good)
    part = root / "Eval" / "list_eval_partition.txt"
    fx.rewrite_line(part, 4, f"{IS_ROWS[1].name}  id_00000001  val")
    with pytest.raises(DataError, match=re.escape(f"{part}:4: unknown evaluation status 'val'")):
        scan(root)
    fx.rewrite_line(part, 4, "Dresses/02_1_front.jpg  id_00000001  train")
    with pytest.raises(DataError, match=re.escape(f"{part}:4: image path 'Dresses/02_1_front")):
        scan(root)
    fx.rewrite_line(part, 4, f"{IS_ROWS[1].name}  id_00000001  train")
    items = root / "Anno" / "list_attr_items.txt"
    fx.rewrite_line(items, 3, "id_00000001 1 -1 0 1 -1 x")
    with pytest.raises(DataError, match=re.escape(f"{items}:3: attribute value 'x' (field 7)")):
        scan(root)


def test_repeated_rows(tmp_path: Path) -> None:
    root = fx.make_category_benchmark(tmp_path, n_per_category=2)
    part = root / "Eval" / "list_eval_partition.txt"
    before = scan(root)
    # an identical repeat is harmless (but changes the inputs' identity)
    lines = part.read_text().splitlines()
    part.write_text("\n".join([str(len(lines) - 1), *lines[1:], lines[3]]) + "\n")
    after = scan(root)
    assert [r.split for r in after.records] == [r.split for r in before.records]
    assert after.spec != before.spec
    # a conflicting one is an error naming both lines
    bbox = root / "Anno" / "list_bbox.txt"
    lines = bbox.read_text().splitlines()
    repeat = lines[4].replace("270", "271")
    bbox.write_text("\n".join([str(len(lines) - 1), *lines[1:], repeat]) + "\n")
    with pytest.raises(
        DataError, match=re.escape(f"{bbox}:15: {NAME3} is listed again with other")
    ):
        scan(root)


def test_attribute_matrix_blocks(tmp_path: Path) -> None:
    """Rows across several blocks, in both layouts; an error far down names its line."""
    n, rows = 7, 5000
    rng = np.random.default_rng(0)
    values = rng.integers(-1, 2, size=(rows, n)).astype(np.int8)
    index = {f"img/x/img_{i:08d}.jpg": i for i in range(rows) if i % 10}  # some rows unlisted
    lines = [
        f"{k:<60}" + " ".join(f"{v:2d}" for v in values[i])
        for i, k in enumerate(f"img/x/img_{i:08d}.jpg" for i in range(rows))
    ]
    lines[3001] = lines[3001].split()[0] + "\t" + " ".join(lines[3001].split()[1:])  # loose
    path = tmp_path / "list_attr_img.txt"
    path.write_text(f"{rows}\nimage_name  attribute_labels\n" + "\n".join(lines) + "\n")
    index = {k: j for j, k in enumerate(index)}
    m, found = read_attribute_matrix(path, index, n)
    keep = [i for i in range(rows) if i % 10]
    np.testing.assert_array_equal(m, values[keep])
    assert found.all()
    lines[4321] = lines[4321][:-2] + " 3"
    path.write_text(f"{rows}\nimage_name  attribute_labels\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:4324: attribute value '3' (field 8)")):
        read_attribute_matrix(path, index, n)


def test_unpartitioned_images_are_skipped(tmp_path: Path) -> None:
    root = fx.make_category_benchmark(tmp_path, unpartitioned=(0, 7))
    s = scan(root)
    assert len(s.records) == 22
    assert [(k.source_id, k.reason) for k in s.skipped] == [
        (CA_ROWS[0].name, "no entry in Eval/list_eval_partition.txt"),
        (CA_ROWS[7].name, "no entry in Eval/list_eval_partition.txt"),
    ]
    assert s.records[0].source_id == CA_ROWS[1].name
    np.testing.assert_array_equal(s.attribute_rows, expected_attrs(s, CA_ATTRS))

    root = fx.make_inshop_benchmark(tmp_path / "is", unpartitioned=(2,))  # no bbox row
    s = scan(root)
    assert len(s.records) == 32
    assert s.skipped[0].reason == "no entry in Anno/list_bbox_inshop.txt"
    np.testing.assert_array_equal(s.attribute_rows, expected_attrs(s, IS_ATTRS))


def test_nothing_usable_is_an_error(tmp_path: Path) -> None:
    root = fx.make_category_benchmark(tmp_path, n_per_category=1, unpartitioned=range(6))
    with pytest.raises(DataError, match=r"none of the 6 images .*no entry in Eval/list_eval_part"):
        scan(root)


def test_missing_and_corrupt_images_skip_on_load(tmp_path: Path) -> None:
    root = fx.make_category_benchmark(tmp_path, missing_images=(3,), corrupt_images=(5,))
    src = source(root)
    s = src.scan()
    assert len(s.records) == 24 and s.skipped == []  # not a scan error
    with pytest.raises(SkipImage, match="missing"):
        src.load(s.records[3])
    with pytest.raises(SkipImage, match="corrupt"):
        src.load(s.records[5])
    assert src.load(s.records[4]).shape == (3, 32, 32)

    root = fx.make_inshop_benchmark(tmp_path / "is", missing_images=(0,), corrupt_images=(1,))
    src = source(root)
    s = src.scan()
    with pytest.raises(SkipImage, match="missing"):
        src.load(s.records[0])
    with pytest.raises(SkipImage, match="corrupt"):
        src.load(s.records[1])


def test_records_and_source_pickle(ca: Path) -> None:
    """A process pool sends the source and records to workers."""
    src = source(ca, size=32)
    s = src.scan()
    src2, rec = pickle.loads(pickle.dumps((src, s.records[7])))
    np.testing.assert_array_equal(src2.load(rec), src.load(s.records[7]))
