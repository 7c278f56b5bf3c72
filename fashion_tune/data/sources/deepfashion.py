"""DeepFashion: the Category and Attribute Prediction and In-shop Clothes Retrieval benchmarks.

``fashion-tune data prepare deepfashion PATH`` reads either benchmark; which one is
detected from the files under PATH:

* **In-shop Clothes Retrieval** when ``Anno/list_bbox_inshop.txt`` exists. Needs
  ``Eval/list_eval_partition.txt`` (``image_name item_id evaluation_status``; train / query /
  gallery) and ``Anno/list_bbox_inshop.txt`` (``image_name clothes_type pose_type x1 y1 x2
  y2``). The class is the ``GENDER/Category`` part of the image path (``WOMEN/Dresses``), the
  view the last ``_`` field of the file name (``02_1_front.jpg`` -> ``front``). Attributes are
  read when ``list_attr_cloth.txt`` and ``list_attr_items.txt`` are both present (``Anno/`` or
  ``Anno/attributes/``); they are per item and copied to each of its images.
* **Category and Attribute Prediction** otherwise (``Anno/list_category_img.txt``; the 2020
  re-release names the folder ``Anno_coarse/``, which is accepted too). Needs
  ``list_category_cloth.txt`` (name, type 1/2/3; category id = 1-based row),
  ``list_category_img.txt``, ``list_attr_cloth.txt`` (names contain spaces: only the last field
  is split off), ``list_attr_img.txt`` (path + one -1 / 0 / 1 per attribute), ``list_bbox.txt``
  and ``list_eval_partition.txt`` (``Eval/``, else ``Anno/``, else PATH; train / val / test).
  ``list_landmarks.txt`` (rows of varying length) is not read.

Images live under ``PATH/img/`` or ``PATH/Img/img/``: the paths in the files start with
``img/`` and the image root is whichever folder holds ``img/``.

Every annotation file is: line 1 the row count, line 2 the column names, then one row per
line split on runs of whitespace (blank lines are ignored). Bad input is a
:class:`DataError` naming the file and line: a missing file, a count line that disagrees with
the rows, a row with the wrong number of fields or a non-integer number, an unknown status or
category id, and unknown names in the options (the message lists the valid ones).

Decisions:

* The record set is the *primary* file (Category and Attribute: ``list_category_img.txt``;
  In-shop: ``list_eval_partition.txt``). An image listed there but absent from another file it
  needs (partition, bbox, attributes) is **skipped while scanning** with a reason naming that
  file (``Scan.skipped``, so the manifest shows it); only when that leaves no image at all is it
  an error, because then the files do not belong together. Rows of the other files that name
  images the primary file lacks are ignored: they have no label.
* A row repeated identically is ignored; a repeat with different values is an error naming
  both lines.
* A listed image that is missing or corrupt is not a scan error: :meth:`DeepFashion.load`
  raises :class:`SkipImage` and the caller records it.
* ``list_attr_img.txt`` (289k rows x 1000 values) is streamed in blocks of lines; a block in
  the released layout (values right-aligned in 2-character columns, one space apart) is
  decoded with a few vectorised byte comparisons, any other layout line by line with
  ``np.fromstring``. The values go straight into an int8 matrix aligned with the records.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from fashion_tune.data.imaging import open_image, to_square
from fashion_tune.data.shards import Skipped
from fashion_tune.data.sources.base import Record, Scan, Source, filter_classes, register
from fashion_tune.errors import DataError

CATEGORY_TYPES = {"upper": 1, "lower": 2, "full": 3}
VIEWS = ("front", "side", "back", "full", "flat", "additional")
CA_SPLITS = ["train", "val", "test"]
INSHOP_SPLITS = ["train", "query", "gallery"]
CA = "category-attribute"
INSHOP = "in-shop"
ANNO_DIRS = ("Anno", "Anno_coarse")
PARTITION = "list_eval_partition.txt"
INSHOP_BBOX = "list_bbox_inshop.txt"
ATTR_BLOCK = 2048  # lines of list_attr_img.txt decoded together

T = TypeVar("T")
# the released list_attr_img.txt layout, per value: space, sign (" " or "-"), digit; see
# _attr_block_fast. Sized for 2,000 values per row; wider rows take the line-by-line path.
_MAX_FAST_ATTRIBUTES = 2000
_GROUP_ZERO = np.frombuffer(b"  0" * _MAX_FAST_ATTRIBUTES, np.uint8)
_GROUP_STEP = np.tile(np.array([0, 13, 1], np.uint8), _MAX_FAST_ATTRIBUTES)
BBox = tuple[int, int, int, int]


# ---------------------------------------------------------------------------------------
# reading annotation files


def _error(path: Path, lineno: int, message: str) -> DataError:
    return DataError(f"{path}:{lineno}: {message}")


def _rows(
    path: Path, header: list[str] | None = None, count_distinct: bool = False
) -> Iterator[tuple[int, bytes]]:
    """Yield (line number, raw line) for each row; check the count line against the rows.

    The column-name line (line 2) is skipped, or appended to ``header`` when one is given.
    With ``count_distinct`` the count line may also count distinct rows only: the released
    In-shop ``list_attr_items.txt`` says 7,982 items and holds 8,081 rows, an item filed
    under two classes being listed twice, identically.
    """
    try:
        f = path.open("rb", buffering=1 << 20)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    with f:
        first = f.readline()
        try:
            count = int(first.strip().removeprefix(b"\xef\xbb\xbf") or b"-")
        except ValueError:
            shown = first.strip()[:40].decode("utf-8", "replace")
            raise _error(path, 1, f"expected the row count, found {shown!r}") from None
        if count < 0:
            raise _error(path, 1, f"row count {count} is negative")
        names = f.readline()
        if header is not None:
            header.append(names.decode("utf-8", "replace").strip())
        seen = 0
        distinct: set[bytes] = set()
        for lineno, line in enumerate(f, 3):
            if line.isspace():
                continue
            seen += 1
            if count_distinct:
                distinct.add(hashlib.blake2b(b" ".join(line.split()), digest_size=16).digest())
            yield lineno, line
    if seen != count and not (count_distinct and len(distinct) == count):
        also = f" ({len(distinct)} distinct)" if count_distinct and len(distinct) != seen else ""
        raise DataError(f"{path}: line 1 says {count} rows but the file has {seen}{also}")


def _text(path: Path, lineno: int, line: bytes) -> str:
    try:
        return line.decode()
    except UnicodeDecodeError:
        raise _error(path, lineno, "is not UTF-8 text") from None


def _fields(path: Path, lineno: int, line: bytes, columns: str) -> list[str]:
    """Split a row and check it has one field per name in ``columns`` (single-spaced)."""
    try:
        parts = line.decode().split()
    except UnicodeDecodeError:
        raise _error(path, lineno, "is not UTF-8 text") from None
    want = columns.count(" ") + 1
    if len(parts) != want:
        raise _error(path, lineno, f"expected {want} fields ({columns}), found {len(parts)}")
    return parts


def _int(path: Path, lineno: int, token: str, what: str) -> int:
    try:
        return int(token)
    except ValueError:
        raise _error(path, lineno, f"{what} {token!r} is not an integer") from None


def _bbox(path: Path, lineno: int, tokens: Sequence[str]) -> BBox:
    try:
        x1, y1, x2, y2 = map(int, tokens)  # int() takes the zero padding: "072" -> 72
    except ValueError:
        for t in tokens:
            _int(path, lineno, t, "bbox coordinate")
        raise
    return x1, y1, x2, y2


def _name_and_last(path: Path, lineno: int, line: bytes, columns: str) -> tuple[str, str]:
    """Split ``name with spaces   last`` into (name, last): only the last field is split off."""
    parts = _text(path, lineno, line).strip().rsplit(None, 1)
    if len(parts) != 2:
        raise _error(path, lineno, f"expected {columns}, found {len(parts)} field(s)")
    return parts[0], parts[1]


def _keyed(
    path: Path,
    index: dict[str, int],
    convert: Callable[[int, bytes], tuple[str, T]],
) -> list[T | None]:
    """Read a file of per-image rows into a list aligned with ``index`` (None = no row).

    Rows naming images outside ``index`` are ignored; a repeated image must repeat its values.
    """
    out: list[T | None] = [None] * len(index)
    first = [0] * len(index)
    for lineno, line in _rows(path):
        name, value = convert(lineno, line)
        i = index.get(name)
        if i is None:
            continue
        if first[i]:
            if out[i] != value:
                raise _error(
                    path, lineno, f"{name} is listed again with other values (line {first[i]})"
                )
            continue
        first[i] = lineno
        out[i] = value
    return out


def _attribute_names(path: Path) -> list[str]:
    """``list_attr_cloth.txt``: names (which contain spaces), then a type column if the
    column-name line has two names (Category and Attribute) rather than one (In-shop)."""
    header: list[str] = []
    names: list[str] = []
    for lineno, line in _rows(path, header):
        if len(header[0].split()) >= 2:
            name, kind = _name_and_last(path, lineno, line, "attribute_name attribute_type")
            _int(path, lineno, kind, "attribute type")
        else:
            name = _text(path, lineno, line).strip()
        names.append(name)
    if not names:
        raise DataError(f"{path} lists no attributes")
    return names


def _attr_block_fast(lines: list[tuple[int, bytes]], n: int) -> tuple[list[str], np.ndarray] | None:
    """Decode rows laid out as released: ``key`` then ``n`` values, each right-aligned in a
    2-character column (`` 1``, ``-1``, `` 0``) one space apart. None if any row of the block
    differs; the caller then parses the block line by line.

    Each value is a 3-byte group (space, sign, digit). XOR with ``"  0"`` leaves 0 in the
    space, 0 or 13 (``"-"``) in the sign and 0 or 1 in the digit, which is exactly
    ``(x & 1) * [0, 13, 1]``; so a single comparison checks every byte of the block.
    """
    width = 3 * n
    keys: list[str] = []
    tails: list[bytes] = []
    for _, line in lines:
        s = line.rstrip()
        head = s[:-width].split()
        if len(head) != 1:
            return None
        try:
            keys.append(head[0].decode())
        except UnicodeDecodeError:
            return None
        tails.append(s[-width:])
    x = np.frombuffer(b"".join(tails), np.uint8).reshape(len(lines), width) ^ _GROUP_ZERO[:width]
    bits = x & np.uint8(1)
    if not np.array_equal(x, bits * _GROUP_STEP[:width]):
        return None
    groups = bits.reshape(len(lines), n, 3)
    negative, digit = groups[..., 1], groups[..., 2]
    values = (digit - ((negative & digit) << np.uint8(1))).view(np.int8)
    return keys, values


def _attr_block_slow(
    path: Path, lines: list[tuple[int, bytes]], n: int
) -> tuple[list[str], np.ndarray]:
    """Decode rows in any whitespace layout; a bad row is a DataError naming its line."""
    keys: list[str] = []
    values = np.empty((len(lines), n), np.int8)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # older NumPy: partial parse warns
        for j, (lineno, line) in enumerate(lines):
            parts = _text(path, lineno, line).split(None, 1)
            row: np.ndarray | None = None
            if len(parts) == 2:
                try:
                    row = np.fromstring(parts[1], dtype=np.int64, sep=" ")
                except (ValueError, DeprecationWarning):
                    row = None
            if row is None or row.shape != (n,) or int(np.abs(row).max()) > 1:
                raise _explain_attr_row(path, lineno, parts, n)
            keys.append(parts[0])
            values[j] = row
    return keys, values


def _explain_attr_row(path: Path, lineno: int, parts: list[str], n: int) -> DataError:
    tokens = parts[1].split() if len(parts) == 2 else []
    if len(tokens) != n:
        return _error(
            path, lineno, f"expected a name and {n} attribute values, found {len(tokens)}"
        )
    for col, tok in enumerate(tokens, 2):
        try:
            ok = int(tok) in (-1, 0, 1)
        except ValueError:
            ok = False
        if not ok:
            return _error(path, lineno, f"attribute value {tok!r} (field {col}) is not -1, 0 or 1")
    return _error(path, lineno, "cannot parse the attribute values")


def read_attribute_matrix(
    path: Path, index: dict[str, int], n: int, count_distinct: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Stream ``<key> v1 .. vn`` rows into an int8 (len(index), n) matrix aligned with
    ``index``; returns it and a bool mask of the keys that had a row. Rows whose key is not in
    ``index`` are ignored; a repeated key must repeat its values. ``count_distinct``: see
    :func:`_rows`."""
    out = np.zeros((len(index), n), np.int8)
    first = [0] * len(index)
    block: list[tuple[int, bytes]] = []

    def flush() -> None:
        decoded = None
        if n <= _MAX_FAST_ATTRIBUTES:
            decoded = _attr_block_fast(block, n)
        if decoded is None:
            decoded = _attr_block_slow(path, block, n)
        keys, values = decoded
        rows = np.full(len(keys), -1, np.int64)
        repeats: list[tuple[int, int]] = []
        for j, key in enumerate(keys):
            i = index.get(key, -1)
            if i < 0:
                continue
            if first[i]:
                repeats.append((j, i))
            else:
                first[i] = block[j][0]
                rows[j] = i
        keep = rows >= 0
        out[rows[keep]] = values[keep]
        for j, i in repeats:
            if not np.array_equal(out[i], values[j]):
                raise _error(
                    path,
                    block[j][0],
                    f"{keys[j]} is listed again with other values (line {first[i]})",
                )
        block.clear()

    for lineno, line in _rows(path, count_distinct=count_distinct):
        block.append((lineno, line))
        if len(block) >= ATTR_BLOCK:
            flush()
    if block:
        flush()
    return out, np.array(first, dtype=np.int64) > 0


# ---------------------------------------------------------------------------------------
# locating the files


def _first_file(candidates: Sequence[Path]) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)


def _need(root: Path, candidates: Sequence[Path], what: str) -> Path:
    found = _first_file(candidates)
    if found is None:
        others = ""
        if len(candidates) > 1:
            others = " (also looked for " + ", ".join(str(p) for p in candidates[1:]) + ")"
        raise DataError(f"DeepFashion {what} file {candidates[0]} not found{others}")
    return found


def _anno(root: Path, name: str) -> list[Path]:
    return [root / d / name for d in ANNO_DIRS]


def _partition_candidates(root: Path) -> list[Path]:
    return [root / "Eval" / PARTITION, *(root / d / PARTITION for d in ANNO_DIRS), root / PARTITION]


def _image_roots(root: Path) -> list[Path]:
    """Folders holding ``img/``: PATH and PATH/Img (an unzipped img.zip)."""
    roots = [r for r in (root, root / "Img") if (r / "img").is_dir()]
    if not roots:
        zips = [z for z in (root / "img.zip", root / "Img" / "img.zip") if z.is_file()]
        hint = f" (unzip {zips[0]} first)" if zips else ""
        raise DataError(
            f"no DeepFashion image folder: expected {root / 'img'} or {root / 'Img' / 'img'}{hint}"
        )
    return roots


def _pick_image_root(roots: list[Path], first_image: str) -> Path:
    """With both PATH/img and PATH/Img/img, take the one holding the first listed image."""
    return next((r for r in roots if (r / first_image).is_file()), roots[0])


# ---------------------------------------------------------------------------------------
# the source


@dataclass
class _Listing:
    """Everything read from one benchmark before the options filter it."""

    benchmark: str
    names: list[str]  # image paths as listed (``img/...``), the records' source ids
    labels: list[int]
    classes: list[str]
    splits: list[int]
    split_names: list[str]
    bboxes: list[BBox]
    types: list[int]  # clothes type 1 / 2 / 3 per image
    views: list[str] | None  # In-shop only
    attributes: list[str]
    attribute_rows: np.ndarray | None
    skipped: list[Skipped]
    files: list[Path]


def _drop_unusable(
    names: list[str], needs: Sequence[tuple[str, Sequence[object]]]
) -> tuple[list[int], list[Skipped]]:
    """Positions of the images every needed file has a row for, plus a Skipped per other."""
    keep: list[int] = []
    skipped: list[Skipped] = []
    for i, name in enumerate(names):
        missing = next((what for what, values in needs if values[i] is None), None)
        if missing is None:
            keep.append(i)
        else:
            skipped.append(Skipped(name, f"no entry in {missing}"))
    return keep, skipped


def _nothing_left(root: Path, skipped: list[Skipped]) -> DataError:
    return DataError(
        f"none of the {len(skipped)} images listed under {root} is usable "
        f"({skipped[0].reason}, ...): the annotation files do not belong together"
    )


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


@register
class DeepFashion(Source):
    name = "deepfashion"

    # -- scan ------------------------------------------------------------------------------

    def scan(self) -> Scan:
        root = self._root()
        self._check_option_names()  # before parsing: real annotation files take seconds
        if (root / "Anno" / INSHOP_BBOX).is_file():
            listing = self._read_inshop(root)
        elif _first_file(_anno(root, "list_category_img.txt")) is not None:
            listing = self._read_category(root)
        else:
            raise DataError(
                f"{root} is not a DeepFashion benchmark folder: expected "
                f"{root / 'Anno' / 'list_category_img.txt'} (Category and Attribute Prediction) "
                f"or {root / 'Anno' / INSHOP_BBOX} (In-shop Clothes Retrieval)"
            )
        return self._filter(root, listing)

    def _check_option_names(self) -> None:
        unknown = [t for t in self.options.category_types if t not in CATEGORY_TYPES]
        if unknown:
            raise DataError(
                f"unknown category type {unknown[0]!r}; valid: {', '.join(CATEGORY_TYPES)}"
            )
        unknown = [v for v in self.options.views if v not in VIEWS]
        if unknown:
            raise DataError(f"unknown view {unknown[0]!r}; valid: {', '.join(VIEWS)}")

    def _root(self) -> Path:
        if not self.path:
            raise DataError(
                "the deepfashion source needs a PATH: fashion-tune data prepare deepfashion DIR"
            )
        root = Path(self.path).expanduser()
        if not root.is_dir():
            raise DataError(f"DeepFashion folder {root} does not exist")
        return root

    def _read_category(self, root: Path) -> _Listing:
        cloth_path = _need(root, _anno(root, "list_category_cloth.txt"), "category list")
        img_path = _need(root, _anno(root, "list_category_img.txt"), "image category")
        attr_names_path = _need(root, _anno(root, "list_attr_cloth.txt"), "attribute list")
        attr_path = _need(root, _anno(root, "list_attr_img.txt"), "image attribute")
        bbox_path = _need(root, _anno(root, "list_bbox.txt"), "bounding box")
        part_path = _need(root, _partition_candidates(root), "evaluation partition")
        _image_roots(root)  # fail early when the images are not unpacked
        if self.options.views:
            raise DataError(
                f"views apply to the In-shop benchmark only; {root} holds the Category and "
                "Attribute Prediction benchmark (use category types or categories instead)"
            )

        classes: list[str] = []
        class_types: list[int] = []
        for lineno, line in _rows(cloth_path):
            name, kind = _name_and_last(cloth_path, lineno, line, "category_name category_type")
            t = _int(cloth_path, lineno, kind, "category type")
            if t not in (1, 2, 3):
                raise _error(cloth_path, lineno, f"category type {t} is not 1, 2 or 3")
            classes.append(name)
            class_types.append(t)
        if not classes:
            raise DataError(f"{cloth_path} lists no categories")

        names: list[str] = []
        labels: list[int] = []
        index: dict[str, int] = {}
        for lineno, line in _rows(img_path):
            name, cat = _fields(img_path, lineno, line, "image_name category_label")
            c = _int(img_path, lineno, cat, "category")
            if not 1 <= c <= len(classes):
                raise _error(
                    img_path,
                    lineno,
                    f"category {c} is not in {cloth_path.name} (1-{len(classes)})",
                )
            if name in index:
                if labels[index[name]] != c - 1:
                    raise _error(img_path, lineno, f"{name} is listed again with another category")
                continue
            index[name] = len(names)
            names.append(name)
            labels.append(c - 1)
        if not names:
            raise DataError(f"{img_path} lists no images")

        status = {s: i for i, s in enumerate(CA_SPLITS)}

        def partition_row(lineno: int, line: bytes) -> tuple[str, int]:
            name, state = _fields(part_path, lineno, line, "image_name evaluation_status")
            if state not in status:
                raise _error(
                    part_path,
                    lineno,
                    f"unknown evaluation status {state!r}; valid: {', '.join(CA_SPLITS)}",
                )
            return name, status[state]

        def bbox_row(lineno: int, line: bytes) -> tuple[str, BBox]:
            parts = _fields(bbox_path, lineno, line, "image_name x_1 y_1 x_2 y_2")
            return parts[0], _bbox(bbox_path, lineno, parts[1:])

        splits = _keyed(part_path, index, partition_row)
        bboxes = _keyed(bbox_path, index, bbox_row)
        attributes = _attribute_names(attr_names_path)
        matrix, has_attr = read_attribute_matrix(attr_path, index, len(attributes))
        attr_list: list[object] = [True if h else None for h in has_attr]
        keep, skipped = _drop_unusable(
            names,
            [
                (_rel(root, part_path), splits),
                (_rel(root, bbox_path), bboxes),
                (_rel(root, attr_path), attr_list),
            ],
        )
        if not keep:
            raise _nothing_left(root, skipped)
        return _Listing(
            benchmark=CA,
            names=[names[i] for i in keep],
            labels=[labels[i] for i in keep],
            classes=classes,
            splits=[_some(splits[i]) for i in keep],
            split_names=CA_SPLITS,
            bboxes=[_some(bboxes[i]) for i in keep],
            types=[class_types[labels[i]] for i in keep],
            views=None,
            attributes=attributes,
            attribute_rows=matrix if len(keep) == len(names) else matrix[keep],
            skipped=skipped,
            files=[cloth_path, img_path, attr_names_path, attr_path, bbox_path, part_path],
        )

    def _read_inshop(self, root: Path) -> _Listing:
        bbox_path = root / "Anno" / INSHOP_BBOX
        part_path = _need(root, _partition_candidates(root), "evaluation partition")
        attr_dirs = [root / "Anno", root / "Anno" / "attributes"]
        attr_names_path = _first_file([d / "list_attr_cloth.txt" for d in attr_dirs])
        attr_path = _first_file([d / "list_attr_items.txt" for d in attr_dirs])
        if (attr_names_path is None) != (attr_path is None):
            present, absent = (
                (attr_names_path, "list_attr_items.txt")
                if attr_path is None
                else (attr_path, "list_attr_cloth.txt")
            )
            assert present is not None
            raise DataError(
                f"DeepFashion attribute file {present.parent / absent} not found "
                f"({present.name} is there; In-shop attributes need both, or neither)"
            )
        _image_roots(root)  # fail early when the images are not unpacked
        status = {s: i for i, s in enumerate(INSHOP_SPLITS)}

        names: list[str] = []
        items: list[str] = []
        splits: list[int] = []
        index: dict[str, int] = {}
        for lineno, line in _rows(part_path):
            name, item, state = _fields(
                part_path, lineno, line, "image_name item_id evaluation_status"
            )
            if state not in status:
                raise _error(
                    part_path,
                    lineno,
                    f"unknown evaluation status {state!r}; valid: {', '.join(INSHOP_SPLITS)}",
                )
            if len(name.split("/")) < 4:
                raise _error(
                    part_path,
                    lineno,
                    f"image path {name!r} is not img/GENDER/Category/ITEM/NN_N_view.jpg",
                )
            if name in index:
                j = index[name]
                if (items[j], splits[j]) != (item, status[state]):
                    raise _error(part_path, lineno, f"{name} is listed again with other values")
                continue
            index[name] = len(names)
            names.append(name)
            items.append(item)
            splits.append(status[state])
        if not names:
            raise DataError(f"{part_path} lists no images")

        def bbox_row(lineno: int, line: bytes) -> tuple[str, tuple[int, BBox]]:
            parts = _fields(
                bbox_path, lineno, line, "image_name clothes_type pose_type x_1 y_1 x_2 y_2"
            )
            t = _int(bbox_path, lineno, parts[1], "clothes type")
            if t not in (1, 2, 3):
                raise _error(bbox_path, lineno, f"clothes type {t} is not 1, 2 or 3")
            _int(bbox_path, lineno, parts[2], "pose type")
            return parts[0], (t, _bbox(bbox_path, lineno, parts[3:]))

        boxes = _keyed(bbox_path, index, bbox_row)
        needs: list[tuple[str, Sequence[object]]] = [(_rel(root, bbox_path), boxes)]
        files = [part_path, bbox_path]
        attributes: list[str] = []
        item_matrix: np.ndarray | None = None
        item_rows: list[int] = []
        if attr_names_path is not None and attr_path is not None:
            attributes = _attribute_names(attr_names_path)
            item_index: dict[str, int] = {}
            item_rows = [item_index.setdefault(item, len(item_index)) for item in items]
            item_matrix, has_attr = read_attribute_matrix(
                attr_path, item_index, len(attributes), count_distinct=True
            )
            needs.append(
                (_rel(root, attr_path), [True if has_attr[r] else None for r in item_rows])
            )
            files += [attr_names_path, attr_path]
        keep, skipped = _drop_unusable(names, needs)
        if not keep:
            raise _nothing_left(root, skipped)

        kept_names = [names[i] for i in keep]
        parts = [n.split("/") for n in kept_names]
        class_of = [f"{p[-4]}/{p[-3]}" for p in parts]
        classes = sorted(set(class_of))
        class_id = {c: i for i, c in enumerate(classes)}
        return _Listing(
            benchmark=INSHOP,
            names=kept_names,
            labels=[class_id[c] for c in class_of],
            classes=classes,
            splits=[splits[i] for i in keep],
            split_names=INSHOP_SPLITS,
            bboxes=[_some(boxes[i])[1] for i in keep],
            types=[_some(boxes[i])[0] for i in keep],
            views=[p[-1].rsplit(".", 1)[0].rsplit("_", 1)[-1] for p in parts],
            attributes=attributes,
            attribute_rows=None
            if item_matrix is None
            else item_matrix[[item_rows[i] for i in keep]],
            skipped=skipped,
            files=files,
        )

    # -- options ---------------------------------------------------------------------------

    def _filter(self, root: Path, ls: _Listing) -> Scan:
        opts = self.options
        pos = np.arange(len(ls.names))
        if opts.category_types:
            wanted = {CATEGORY_TYPES[t] for t in opts.category_types}
            pos = pos[np.array([ls.types[i] in wanted for i in pos], dtype=bool)]
        if opts.views:
            assert ls.views is not None  # the Category and Attribute reader refuses views
            views = ls.views
            pos = pos[np.array([views[i] in opts.views for i in pos], dtype=bool)]
        image_root = _pick_image_root(_image_roots(root), ls.names[0])
        prefix = _rel(root, image_root) if image_root != root else ""
        records = [
            Record(
                ls.names[i],
                ls.labels[i],
                ls.splits[i],
                (f"{prefix}/{ls.names[i]}" if prefix else ls.names[i], ls.bboxes[i]),
            )
            for i in pos
        ]
        records, classes, kept = filter_classes(records, ls.classes, opts.categories, "category")
        pos = pos[kept]
        if opts.limit:  # None or 0: no limit, as in prepare()
            records, pos = records[: max(0, opts.limit)], pos[: max(0, opts.limit)]
        if not records:
            raise DataError(
                f"no DeepFashion images under {root} are left after filtering ({self._filters()})"
            )
        if opts.limit:  # drop the classes the limit left empty
            records, classes, kept = filter_classes(records, classes, (), "category")
            pos = pos[kept]
        rows = ls.attribute_rows
        if rows is not None and (len(pos) != len(rows) or (pos != np.arange(len(rows))).any()):
            rows = rows[pos]
        return Scan(
            records=records,
            classes=classes,
            splits=list(ls.split_names),
            channels=self.options.channels or 3,
            attributes=list(ls.attributes),
            attribute_rows=rows,
            skipped=ls.skipped,
            spec={
                "benchmark": ls.benchmark,
                "root": str(root.resolve()),
                "image_root": prefix or ".",
                # size and modification time: an annotation edited in place (a label
                # fixed, same byte count) is a different set, not "nothing to do"
                "annotations": {
                    _rel(root, p): [p.stat().st_size, p.stat().st_mtime_ns] for p in ls.files
                },
            },
        )

    def _filters(self) -> str:
        o = self.options
        parts = [
            f"{k}={','.join(v)}"
            for k, v in (
                ("category_types", o.category_types),
                ("categories", o.categories),
                ("views", o.views),
            )
            if v
        ]
        if o.limit:
            parts.append(f"limit={o.limit}")
        return "; ".join(parts) or "no filters"

    # -- load ------------------------------------------------------------------------------

    def load(self, record: Record) -> np.ndarray:
        assert self.path is not None
        rel, bbox = record.ref
        img = open_image(str(Path(self.path).expanduser() / rel))
        return to_square(
            img, self.options.size, self.options.channels or 3, bbox, self.options.margin
        )


def _some(value: T | None) -> T:
    assert value is not None
    return value
