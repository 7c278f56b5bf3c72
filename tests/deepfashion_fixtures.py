"""Tiny DeepFashion benchmarks on disk, in the exact released annotation formats.

Every annotation file is written the way the real ones are: line 1 the row count, line 2
the column names, then rows whose columns are padded with runs of spaces; bbox numbers are
zero-padded (``072``), attribute names contain spaces, attribute values are -1 / 0 / 1
right-aligned in 2-character columns, and landmark rows have 6 / 4 / 8 triplets by clothes
type. The images are small real JPEGs: a white background, a grey distractor block outside
the bounding box, and a garment body in its class colour that fills the bounding box exactly
(so a crop with no margin holds no white), with a collar and, on odd rows, one pocket on the
left only (asymmetric).

Rows are numbered from 0 in the order of the primary file (``list_category_img.txt`` /
``list_eval_partition.txt``); the fault knobs take those numbers. Tests reproduce the
expected values with :func:`ca_rows`, :func:`ca_attr_values`, :func:`inshop_rows` and
:func:`inshop_attr_values`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

# (name, type): type 1 upper, 2 lower, 3 full. Anorak and Cape have no images, like the
# four categories of the real list that no image uses.
CA_CATEGORIES = [
    ("Anorak", 1),
    ("Blouse", 1),
    ("Tee", 1),
    ("Cape", 3),
    ("Jeans", 2),
    ("Skirt", 2),
    ("Dress", 3),
    ("Romper", 3),
]
CA_USED = ["Blouse", "Tee", "Jeans", "Skirt", "Dress", "Romper"]
CA_ATTRIBUTES = [
    ("a-line", 3),
    ("animal print", 1),
    ("button front", 4),
    ("floral", 1),
    ("long sleeve", 3),
    ("zip up", 4),
    ("denim", 2),
    ("v neck", 4),
    ("boho", 5),
    ("faux leather", 2),
]
CA_SPLIT_CYCLE = ("train", "train", "val", "test")
ADJECTIVES = ("Sheer_Pleated-Front", "Floral_Print", "Classic")

# In-shop: (gender, category, clothes type)
INSHOP_CLASSES = [
    ("MEN", "Denim", 2),
    ("MEN", "Tees_Tanks", 1),
    ("WOMEN", "Dresses", 3),
    ("WOMEN", "Blouses_Shirts", 1),
]
INSHOP_ATTRIBUTES = ["cotton", "long sleeve", "v neck", "floral print", "slim fit", "zipper"]
POSE = {"front": 1, "side": 2, "back": 3, "full": 4, "additional": 5, "flat": 6}
FILE_NUMBER = {"front": 1, "side": 2, "back": 3, "full": 4, "flat": 6, "additional": 7}

COLOURS = [
    (200, 30, 30),
    (30, 60, 200),
    (30, 150, 60),
    (230, 160, 20),
    (140, 40, 160),
    (20, 160, 170),
    (120, 80, 40),
    (90, 90, 90),
]
DISTRACTOR = (128, 128, 128)


@dataclass(frozen=True)
class Row:
    """One image of a fixture benchmark."""

    name: str  # as listed in the annotation files: img/...
    label: str  # class name
    clothes_type: int
    split: str
    bbox: tuple[int, int, int, int]
    size: tuple[int, int]  # (width, height) of the JPEG
    colour: tuple[int, int, int]
    view: str = ""  # In-shop
    item: str = ""  # In-shop


# ---------------------------------------------------------------------------------------
# helpers


def _write(path: Path, header: str, rows: Sequence[str], count_offset: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = f"{len(rows) + count_offset}\n{header}\n" + "".join(r + "\n" for r in rows)
    path.write_text(text)


def _pad(name: str, width: int = 72) -> str:
    return name.ljust(width)


def _box(b: tuple[int, int, int, int]) -> str:
    return " ".join(f"{v:03d}" for v in b)


def _aligned(values: Sequence[int]) -> str:
    return " ".join(f"{v:2d}" for v in values)


def _loose(values: Sequence[int]) -> str:
    return "\t".join(str(v) for v in values)


def rewrite_line(path: Path, lineno: int, text: str) -> None:
    """Replace line ``lineno`` (1-based) of ``path`` with ``text``."""
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text("\n".join(lines) + "\n")


def draw_garment(row: Row, asymmetric: bool) -> Image.Image:
    img = Image.new("RGB", row.size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    w, h = row.size
    x1, y1, x2, y2 = row.bbox
    # a distractor outside the box, in the corner farthest from it
    if x1 >= 20:
        d.rectangle([2, h - 22, min(x1, 20) - 1, h - 3], fill=DISTRACTOR)
    elif x2 <= w - 20:
        d.rectangle([w - 20, 2, w - 3, 20], fill=DISTRACTOR)
    d.rectangle([x1, y1, x2 - 1, y2 - 1], fill=row.colour)  # the body fills the box
    bw, bh = x2 - x1, y2 - y1
    dark = tuple(c // 2 for c in row.colour)
    cx = (x1 + x2) // 2
    if row.clothes_type in (1, 3):  # collar
        d.polygon([(cx - bw // 6, y1), (cx + bw // 6, y1), (cx, y1 + bh // 6)], fill=dark)
    if row.clothes_type in (2, 3):  # waistband / belt
        y = y1 + (bh // 10 if row.clothes_type == 2 else bh // 2)
        d.rectangle([x1 + bw // 8, y, x2 - bw // 8, y + max(2, bh // 30)], fill=dark)
    if asymmetric:  # one pocket, on the left only
        d.rectangle(
            [x1 + bw // 8, y1 + bh // 3, x1 + bw // 3, y1 + bh // 3 + bh // 8], fill=(250, 250, 250)
        )
    return img


def _write_images(
    image_dir: Path,
    rows: Sequence[Row],
    missing: Sequence[int],
    corrupt: Sequence[int],
) -> None:
    for i, row in enumerate(rows):
        if i in missing:
            continue
        path = image_dir / row.name
        path.parent.mkdir(parents=True, exist_ok=True)
        draw_garment(row, asymmetric=i % 2 == 1).save(path, "JPEG", quality=92)
        if i in corrupt:  # a truncated download
            path.write_bytes(path.read_bytes()[:300])


def _image_dir(root: Path, img_subdir: str) -> Path:
    """The image root: the folder that holds ``img/``."""
    if img_subdir not in ("img", "Img/img"):
        raise ValueError("img_subdir is 'img' or 'Img/img'")
    return root / "Img" if img_subdir == "Img/img" else root


# ---------------------------------------------------------------------------------------
# Category and Attribute Prediction


def ca_rows(n_per_category: int = 4) -> list[Row]:
    """The images of :func:`make_category_benchmark`, in file order."""
    types = dict(CA_CATEGORIES)
    rows: list[Row] = []
    for c, cat in enumerate(CA_USED):
        for j in range(n_per_category):
            i = len(rows)
            portrait = i % 2 == 0
            size = (200, 300) if portrait else (300, 220)
            w, h = size
            bbox = (
                (30 + i % 7, 40 + i % 5, 170 - i % 3, 270)
                if portrait
                else (60 + i % 5, 25, 240 - i % 4, 200 - i % 6)
            )
            rows.append(
                Row(
                    name=f"img/{ADJECTIVES[j % len(ADJECTIVES)]}_{cat}/img_{i + 1:08d}.jpg",
                    label=cat,
                    clothes_type=types[cat],
                    split=CA_SPLIT_CYCLE[j % len(CA_SPLIT_CYCLE)],
                    bbox=bbox,
                    size=(w, h),
                    colour=COLOURS[c % len(COLOURS)],
                )
            )
    return rows


def ca_attr_values(i: int) -> list[int]:
    """Attribute values of row ``i`` (-1 / 0 / 1 per CA_ATTRIBUTES entry)."""
    return [(i + k) % 3 - 1 for k in range(len(CA_ATTRIBUTES))]


def _landmarks(row: Row) -> str:
    n = {1: 6, 2: 4, 3: 8}[row.clothes_type]
    x1, y1, x2, y2 = row.bbox
    triplets = []
    for k in range(n):
        x = x1 if k % 2 == 0 else x2 - 1
        y = y1 + (y2 - y1) * (k // 2) // (n // 2)
        triplets.append(f"{k % 3}  {x:03d}  {y:03d}")
    return f"{row.clothes_type}  " + "  ".join(triplets)


def make_category_benchmark(
    root: Path,
    *,
    img_subdir: str = "Img/img",
    n_per_category: int = 4,
    attr_layout: str = "aligned",
    partition_dir: str = "Eval",
    wrong_count: str | None = None,
    omit: Sequence[str] = (),
    missing_images: Sequence[int] = (),
    corrupt_images: Sequence[int] = (),
    unpartitioned: Sequence[int] = (),
) -> Path:
    """Write a Category and Attribute Prediction benchmark under ``root``; returns ``root``.

    img_subdir: ``"Img/img"`` or ``"img"`` (where the ``img/`` folder lies).
    attr_layout: ``"aligned"`` (as released) or ``"loose"`` (tab + single spaces).
    partition_dir: ``"Eval"``, ``"Anno"`` or ``""`` (PATH itself).
    wrong_count: a file name whose count line is one too many.
    omit: annotation file names not to write.
    missing_images / corrupt_images: row numbers whose JPEG is absent / truncated.
    unpartitioned: row numbers left out of list_eval_partition.txt.
    """
    rows = ca_rows(n_per_category)
    anno = root / "Anno"
    files: dict[str, tuple[Path, str, list[str]]] = {
        "list_category_cloth.txt": (
            anno / "list_category_cloth.txt",
            "category_name  category_type",
            [f"{n:<29}{t}" for n, t in CA_CATEGORIES],
        ),
        "list_category_img.txt": (
            anno / "list_category_img.txt",
            "image_name  category_label",
            [_pad(r.name) + str([n for n, _ in CA_CATEGORIES].index(r.label) + 1) for r in rows],
        ),
        "list_attr_cloth.txt": (
            anno / "list_attr_cloth.txt",
            "attribute_name  attribute_type",
            [f"{n:<29}{t}" for n, t in CA_ATTRIBUTES],
        ),
        "list_attr_img.txt": (
            anno / "list_attr_img.txt",
            "image_name  attribute_labels",
            [
                (_pad(r.name, 71) + _aligned(ca_attr_values(i)))
                if attr_layout == "aligned"
                else (r.name + "\t" + _loose(ca_attr_values(i)))
                for i, r in enumerate(rows)
            ],
        ),
        "list_bbox.txt": (
            anno / "list_bbox.txt",
            "image_name  x_1  y_1  x_2  y_2",
            [_pad(r.name) + _box(r.bbox) for r in rows],
        ),
        "list_landmarks.txt": (
            anno / "list_landmarks.txt",
            "image_name  clothes_type  "
            + "  ".join(
                f"landmark_visibility_{k}  landmark_location_x_{k}  landmark_location_y_{k}"
                for k in range(1, 9)
            ),
            [_pad(r.name) + _landmarks(r) for r in rows],
        ),
        "list_eval_partition.txt": (
            (root / partition_dir / "list_eval_partition.txt"),
            "image_name  evaluation_status",
            [_pad(r.name) + r.split for i, r in enumerate(rows) if i not in unpartitioned],
        ),
    }
    for key, (path, header, lines) in files.items():
        if key not in omit:
            _write(path, header, lines, 1 if key == wrong_count else 0)
    _write_images(_image_dir(root, img_subdir), rows, missing_images, corrupt_images)
    return root


# ---------------------------------------------------------------------------------------
# In-shop Clothes Retrieval


def inshop_rows(items_per_class: int = 2) -> list[Row]:
    """The images of :func:`make_inshop_benchmark`, in file order."""
    rows: list[Row] = []
    item = 0
    for c, (gender, category, ctype) in enumerate(INSHOP_CLASSES):
        for _ in range(items_per_class):
            item += 1
            item_id = f"id_{item:08d}"
            views = ["front", "side", "back", "full" if item % 2 else "flat"]
            if item == 1:
                views.append("additional")
            for v in views:
                i = len(rows)
                split = "train" if item % 2 else ("query" if v == "front" else "gallery")
                bbox = (70 + i % 9, 40 + i % 7, 190 - i % 5, 230 - i % 4)
                rows.append(
                    Row(
                        name=f"img/{gender}/{category}/{item_id}/01_{FILE_NUMBER[v]}_{v}.jpg",
                        label=f"{gender}/{category}",
                        clothes_type=ctype,
                        split=split,
                        bbox=bbox,
                        size=(256, 256),
                        colour=COLOURS[c % len(COLOURS)],
                        view=v,
                        item=item_id,
                    )
                )
    return rows


def inshop_items(items_per_class: int = 2) -> list[str]:
    return list(dict.fromkeys(r.item for r in inshop_rows(items_per_class)))


def inshop_attr_values(item_id: str) -> list[int]:
    k = int(item_id.split("_")[1])
    return [(2 * k + a) % 3 - 1 for a in range(len(INSHOP_ATTRIBUTES))]


def make_inshop_benchmark(
    root: Path,
    *,
    img_subdir: str = "img",
    items_per_class: int = 2,
    attributes: bool = True,
    attr_subdir: str = "Anno",
    wrong_count: str | None = None,
    omit: Sequence[str] = (),
    missing_images: Sequence[int] = (),
    corrupt_images: Sequence[int] = (),
    unpartitioned: Sequence[int] = (),
) -> Path:
    """Write an In-shop Clothes Retrieval benchmark under ``root``; returns ``root``.

    attributes: write list_attr_cloth.txt + list_attr_items.txt (into ``attr_subdir``,
    ``"Anno"`` or ``"Anno/attributes"``). Other knobs as for make_category_benchmark;
    ``unpartitioned`` rows are left out of list_bbox_inshop.txt instead (the partition file
    defines the In-shop image set).
    """
    rows = inshop_rows(items_per_class)
    items = inshop_items(items_per_class)
    anno = root / "Anno"
    files: dict[str, tuple[Path, str, list[str]]] = {
        "list_eval_partition.txt": (
            root / "Eval" / "list_eval_partition.txt",
            "image_name  item_id  evaluation_status",
            [_pad(r.name, 56) + r.item.ljust(16) + r.split for r in rows],
        ),
        "list_bbox_inshop.txt": (
            anno / "list_bbox_inshop.txt",
            "image_name  clothes_type  pose_type  x_1  y_1  x_2  y_2",
            [
                _pad(r.name, 56) + f"{r.clothes_type}  {POSE[r.view]}  " + _box(r.bbox)
                for i, r in enumerate(rows)
                if i not in unpartitioned
            ],
        ),
        "list_landmarks_inshop.txt": (
            anno / "list_landmarks_inshop.txt",
            "image_name  clothes_type  variation_type  "
            + "  ".join(
                f"landmark_visibility_{k}  landmark_location_x_{k}  landmark_location_y_{k}"
                for k in range(1, 9)
            ),
            [_pad(r.name, 56) + _landmarks(r).replace("  ", "  1  ", 1) for r in rows],
        ),
    }
    if attributes:
        files["list_attr_cloth.txt"] = (
            root / attr_subdir / "list_attr_cloth.txt",
            "attribute_name",
            list(INSHOP_ATTRIBUTES),
        )
        files["list_attr_items.txt"] = (
            root / attr_subdir / "list_attr_items.txt",
            "item_id  attribute_labels",
            [f"{item} " + " ".join(map(str, inshop_attr_values(item))) for item in items],
        )
    for key, (path, header, lines) in files.items():
        if key not in omit:
            _write(path, header, lines, 1 if key == wrong_count else 0)
    if "list_item_inshop.txt" not in omit:  # count line, then one id a line (no header)
        (anno / "list_item_inshop.txt").write_text(f"{len(items)}\n" + "\n".join(items) + "\n")
    _write_images(_image_dir(root, img_subdir), rows, missing_images, corrupt_images)
    return root
