"""Data sources, registered by name: fashion-mnist, deepfashion, folder."""

from fashion_tune.data.sources import (  # noqa: F401  (register)
    deepfashion,
    fabric_mnist,
    fashion_mnist,
    folder,
)
from fashion_tune.data.sources.base import SOURCES, Record, Scan, Source, SourceOptions

__all__ = ["SOURCES", "Record", "Scan", "Source", "SourceOptions"]
