"""The shard format: Arrow IPC files of pre-resized uint8 images plus a manifest.

A shard set is a folder holding ``shard-NNNNN.arrow`` files and ``manifest.json``.
The manifest is the only entry point and is written last, so a folder without
one is an unfinished (resumable) prepare, never a set that reads as complete.

Each shard is an uncompressed Arrow IPC *file* (random-access format) so a
reader can memory-map it and view the image column as a NumPy array without
copying. Rows:

==============  ===============================  ====================================
column          Arrow type                       meaning
==============  ===============================  ====================================
``image``       fixed_size_binary(C*S*S)         uint8 pixels, channel-first (C, S, S)
``label``       int16                            class index into manifest ``classes``
``split``       int8                             index into manifest ``splits``
``attributes``  fixed_size_list<int8>[A] / null  per-attribute 1 / 0 / -1 (DeepFashion)
``source_id``   string                           where the row came from (path or index)
``sketch``      fixed_size_binary(S*S)           paired sets only: uint8 sketch (1, S, S)
``fabric``      fixed_size_binary(C*P*P)         paired sets only: uint8 fabric patch
==============  ===============================  ====================================

A paired set (``data prepare --pairs``, see ``pairs.py``) has format version 2 and a
``pairs`` entry in its manifest; sets without pairs keep version 1, and both read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from fashion_tune.errors import DataError

FORMAT_VERSION = 1
PAIRED_FORMAT_VERSION = 2  # adds the sketch and fabric columns
READ_VERSIONS = (FORMAT_VERSION, PAIRED_FORMAT_VERSION)
MANIFEST = "manifest.json"
PROGRESS = "_progress.json"
SUPPORTED_SIZES = (32, 64, 128)
DEFAULT_SHARD_MB = 256


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.arrow"


def schema(
    image_bytes: int, num_attributes: int, pair_bytes: tuple[int, int] | None = None
) -> pa.Schema:
    """Columns of a shard; ``pair_bytes`` = (sketch, fabric) bytes per row of a paired set."""
    attr_type = pa.list_(pa.int8(), num_attributes) if num_attributes else pa.null()
    fields = [
        pa.field("image", pa.binary(image_bytes), nullable=False),
        pa.field("label", pa.int16(), nullable=False),
        pa.field("split", pa.int8(), nullable=False),
        pa.field("attributes", attr_type),
        pa.field("source_id", pa.string(), nullable=False),
    ]
    if pair_bytes is not None:
        fields.append(pa.field("sketch", pa.binary(pair_bytes[0]), nullable=False))
        fields.append(pa.field("fabric", pa.binary(pair_bytes[1]), nullable=False))
    return pa.schema(fields)


def check_size(size: int) -> int:
    if size not in SUPPORTED_SIZES:
        choices = ", ".join(map(str, SUPPORTED_SIZES))
        raise DataError(f"unsupported image size {size}: choose one of {choices}")
    return size


@dataclass(frozen=True)
class ShardInfo:
    file: str
    rows: int
    bytes: int
    sha256: str
    split_counts: dict[str, int]


@dataclass(frozen=True)
class Skipped:
    source_id: str
    reason: str


@dataclass
class Manifest:
    """Everything a reader needs to know about a shard set, in ``manifest.json``."""

    source: str
    image_size: int
    channels: int
    classes: list[str]
    splits: list[str]
    attributes: list[str]
    shards: list[ShardInfo]
    skipped: list[Skipped]
    fingerprint: str
    options: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    layout: str = "CHW"
    # paired sets: {"version": recipe version, "fabric_size": P}; None = no pair columns
    pairs: dict[str, int] | None = None

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.shards)

    @property
    def image_bytes(self) -> int:
        return self.channels * self.image_size * self.image_size

    def split_counts(self) -> dict[str, int]:
        out = dict.fromkeys(self.splits, 0)
        for s in self.shards:
            for k, v in s.split_counts.items():
                out[k] = out.get(k, 0) + v
        return out

    @property
    def fabric_size(self) -> int:
        return int(self.pairs["fabric_size"]) if self.pairs else 0

    @property
    def pair_bytes(self) -> tuple[int, int] | None:
        if not self.pairs:
            return None
        return self.image_size**2, self.channels * self.fabric_size**2

    def schema(self) -> pa.Schema:
        return schema(self.image_bytes, len(self.attributes), self.pair_bytes)

    def to_json(self) -> str:
        d = asdict(self)
        d["schema"] = [f"{f.name}: {f.type}" for f in self.schema()]
        d["rows"] = self.rows
        d["split_counts"] = self.split_counts()
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str, where: str) -> Manifest:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(d, dict):
            raise DataError(f"{where} is not a shard-set manifest (not a JSON object)")
        version = d.get("format_version")
        if version not in READ_VERSIONS:
            raise DataError(
                f"{where} has shard format version {version}; this fashion-tune reads "
                f"versions {', '.join(map(str, READ_VERSIONS))}: prepare the set again"
            )
        pairs = d.get("pairs")
        if version == PAIRED_FORMAT_VERSION and not (
            isinstance(pairs, dict) and type(pairs.get("fabric_size")) is int
        ):
            raise DataError(f"{where}: a paired set (version 2) without a valid 'pairs' entry")
        for key, allowed in (("image_size", SUPPORTED_SIZES), ("channels", (1, 3))):
            value = d.get(key)
            if type(value) is not int or value not in allowed:
                raise DataError(
                    f"{where}: {key} is {value!r}, expected one of "
                    f"{', '.join(map(str, allowed))}; the manifest is damaged: prepare it again"
                )
        try:
            return cls(
                source=d["source"],
                image_size=int(d["image_size"]),
                channels=int(d["channels"]),
                classes=list(d["classes"]),
                splits=list(d["splits"]),
                attributes=list(d["attributes"]),
                shards=[ShardInfo(**s) for s in d["shards"]],
                skipped=[Skipped(**s) for s in d["skipped"]],
                fingerprint=d["fingerprint"],
                options=dict(d.get("options", {})),
                layout=d.get("layout", "CHW"),
                format_version=int(version),
                pairs=dict(pairs) if isinstance(pairs, dict) and version == 2 else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{where} is missing or has a malformed field: {exc}") from None


def fingerprint(spec: dict[str, Any]) -> str:
    """A stable hash of what defines a shard set (source, inputs, options, format)."""
    blob = json.dumps({"format_version": FORMAT_VERSION, **spec}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def encode_shard(
    images: np.ndarray,
    labels: np.ndarray,
    splits: np.ndarray,
    attributes: np.ndarray | None,
    source_ids: list[str],
    num_attributes: int,
    split_names: list[str],
    pairs: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[bytes, ShardInfo]:
    """Serialize rows to Arrow IPC file bytes; returns (bytes, info without file name).
    ``pairs`` = (sketches (n, 1, S, S), fabrics (n, C, P, P)) for a paired set."""
    n = len(labels)
    image_bytes = int(np.prod(images.shape[1:]))
    image_col = _fixed_binary(images, n)
    pair_cols = [] if pairs is None else [_fixed_binary(a, n) for a in pairs]
    pair_bytes = (
        None if pairs is None else (pair_cols[0].type.byte_width, pair_cols[1].type.byte_width)
    )
    if num_attributes:
        assert attributes is not None
        values = pa.array(np.ascontiguousarray(attributes, dtype=np.int8).reshape(-1))
        attr_col: pa.Array = pa.FixedSizeListArray.from_arrays(values, num_attributes)
    else:
        attr_col = pa.nulls(n)
    table = pa.table(
        [
            image_col,
            pa.array(labels.astype(np.int16)),
            pa.array(splits.astype(np.int8)),
            attr_col,
            pa.array(source_ids, pa.string()),
            *pair_cols,
        ],
        schema=schema(image_bytes, num_attributes, pair_bytes),
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        # one record batch per shard: the reader gathers from a single contiguous view
        writer.write_table(table, max_chunksize=max(1, n))
    buf = sink.getvalue()
    counts = np.bincount(splits.astype(np.int64), minlength=len(split_names))
    info = ShardInfo(
        file="",
        rows=n,
        bytes=buf.size,
        sha256=hashlib.sha256(memoryview(buf)).hexdigest(),
        split_counts={name: int(c) for name, c in zip(split_names, counts) if c},
    )
    return buf.to_pybytes(), info


def _fixed_binary(arr: np.ndarray, n: int) -> pa.FixedSizeBinaryArray:
    """Rows of a uint8 array as one fixed-size binary column (no copy of the pixels)."""
    row = int(np.prod(arr.shape[1:]))
    flat = np.ascontiguousarray(arr, dtype=np.uint8).reshape(n * row)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(row), n, [None, pa.py_buffer(flat)])
