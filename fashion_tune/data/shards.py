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
==============  ===============================  ====================================
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
MANIFEST = "manifest.json"
PROGRESS = "_progress.json"
SUPPORTED_SIZES = (32, 64, 128)
DEFAULT_SHARD_MB = 256


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.arrow"


def schema(image_bytes: int, num_attributes: int) -> pa.Schema:
    attr_type = pa.list_(pa.int8(), num_attributes) if num_attributes else pa.null()
    return pa.schema(
        [
            pa.field("image", pa.binary(image_bytes), nullable=False),
            pa.field("label", pa.int16(), nullable=False),
            pa.field("split", pa.int8(), nullable=False),
            pa.field("attributes", attr_type),
            pa.field("source_id", pa.string(), nullable=False),
        ]
    )


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

    def schema(self) -> pa.Schema:
        return schema(self.image_bytes, len(self.attributes))

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
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise DataError(
                f"{where} has shard format version {version}; this fashion-tune reads "
                f"version {FORMAT_VERSION}: prepare the set again"
            )
        if not isinstance(d, dict):
            raise DataError(f"{where} is not a shard-set manifest (not a JSON object)")
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
) -> tuple[bytes, ShardInfo]:
    """Serialize rows to Arrow IPC file bytes; returns (bytes, info without file name)."""
    n = len(labels)
    image_bytes = int(np.prod(images.shape[1:]))
    flat = np.ascontiguousarray(images, dtype=np.uint8).reshape(n * image_bytes)
    image_col = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(image_bytes), n, [None, pa.py_buffer(flat)]
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
        ],
        schema=schema(image_bytes, num_attributes),
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
