"""Data sources, registered by name: fashion-mnist, deepfashion, folder."""

from fashion_tune.data.sources import deepfashion, fashion_mnist, folder  # noqa: F401  (register)
from fashion_tune.data.sources.base import SOURCES, Record, Scan, Source, SourceOptions

__all__ = ["SOURCES", "Record", "Scan", "Source", "SourceOptions"]
