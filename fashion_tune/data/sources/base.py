"""The data-source contract: a source lists records cheaply, then loads each one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from fashion_tune.data.shards import Skipped


@dataclass(frozen=True)
class SourceOptions:
    """What ``fashion-tune data prepare`` asks of a source."""

    size: int = 32
    channels: int | None = None  # None = the source's natural channels
    margin: float = 0.1  # bbox margin, a fraction of the box's width / height
    category_types: tuple[str, ...] = ()  # DeepFashion: upper / lower / full
    categories: tuple[str, ...] = ()  # keep only these class names
    views: tuple[str, ...] = ()  # In-shop: front / side / back / full / flat / additional
    limit: int | None = None  # keep the first N records (debugging, tests)


@dataclass(frozen=True)
class Record:
    """One input image: enough to load it in any worker process."""

    source_id: str
    label: int
    split: int
    ref: Any  # source-specific: a path and bbox, or an array index


@dataclass
class Scan:
    """The result of listing a source: records plus everything the manifest needs."""

    records: list[Record]
    classes: list[str]
    splits: list[str]
    channels: int
    attributes: list[str] = field(default_factory=list)
    attribute_rows: np.ndarray | None = None  # (len(records), len(attributes)) int8
    skipped: list[Skipped] = field(default_factory=list)  # dropped while listing
    spec: dict[str, Any] = field(default_factory=dict)  # identifies the inputs (fingerprint)


class Source(ABC):
    """A data source. ``scan`` parses annotations only; ``load`` decodes one image."""

    name: ClassVar[str]
    parallel: ClassVar[bool] = True  # decode in a process pool

    def __init__(self, path: str | None, options: SourceOptions):
        self.path = path
        self.options = options

    @abstractmethod
    def scan(self) -> Scan: ...

    @abstractmethod
    def load(self, record: Record) -> np.ndarray:
        """uint8 (channels, size, size); raises SkipImage for an unusable input."""

    def drawing(self, record: Record) -> np.ndarray | None:
        """What ``--pairs`` draws the garment's sketch from, uint8 (c, size, size); None (the
        default): the garment image itself. A synthetic source whose fabric is painted on
        a known cut returns the cut, so the sketch shows the garment, not its fabric."""
        return None


SOURCES: dict[str, Callable[[str | None, SourceOptions], Source]] = {}


def register(cls: type[Source]) -> type[Source]:
    SOURCES[cls.name] = cls
    return cls


def filter_classes(
    records: list[Record], classes: list[str], keep: tuple[str, ...], what: str
) -> tuple[list[Record], list[str], list[int]]:
    """Keep records whose class is in ``keep`` (all if empty) and renumber labels densely.

    Returns (records, class names, kept positions). An unknown name is an error that lists
    the valid ones; classes with no records are dropped so ``num_classes`` stays compact.
    """
    from fashion_tune.errors import DataError

    if keep:
        unknown = [k for k in keep if k not in classes]
        if unknown:
            raise DataError(f"unknown {what} {unknown[0]!r}; valid: {', '.join(classes)}")
    wanted = set(keep) if keep else set(classes)
    present = sorted({r.label for r in records if classes[r.label] in wanted})
    remap = {old: new for new, old in enumerate(present)}
    kept_pos = [i for i, r in enumerate(records) if r.label in remap]
    out = [
        Record(records[i].source_id, remap[records[i].label], records[i].split, records[i].ref)
        for i in kept_pos
    ]
    return out, [classes[i] for i in present], kept_pos
