"""Fashion-MNIST from its four IDX files (Debian's dataset-fashion-mnist, or any folder)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
from PIL import Image

from fashion_tune.data.imaging import to_square
from fashion_tune.data.sources.base import Record, Scan, Source, register
from fashion_tune.errors import DataError

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


def _find(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"Fashion-MNIST file {folder / (stem + '.gz')} not found")


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an IDX file (big-endian header: magic, counts, dims; then raw uint8)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    ndim = 3 if magic == IMAGE_MAGIC else 1
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        raise DataError(f"{path} is not an IDX file with magic {magic}")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(f"{path} holds {len(raw) - header} bytes of data, header says {expected}")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def default_folder() -> Path | None:
    for cand in (os.environ.get("FASHION_MNIST_DIR"), DEBIAN_DIR):
        if cand and (Path(cand) / "train-images-idx3-ubyte.gz").is_file():
            return Path(cand)
    return None


def download(dest: Path) -> Path:
    """Fetch the IDX files with torchvision (needs network); returns their folder."""
    from torchvision.datasets import FashionMNIST

    try:
        FashionMNIST(str(dest), train=True, download=True)
        FashionMNIST(str(dest), train=False, download=True)
    except Exception as exc:
        raise DataError(
            "Fashion-MNIST is not installed and could not be downloaded "
            f"({type(exc).__name__}); install Debian's dataset-fashion-mnist or pass a folder "
            "holding the four IDX .gz files"
        ) from None
    return dest / "FashionMNIST" / "raw"


@register
class FashionMNIST(Source):
    name = "fashion-mnist"
    parallel = False  # in-memory arrays: a pool would only add pickling

    def _folder(self) -> Path:
        if self.path:
            folder = Path(self.path).expanduser()
            if not folder.is_dir():
                raise DataError(f"Fashion-MNIST folder {folder} does not exist")
            return folder
        found = default_folder()
        if found:
            return found
        from fashion_tune.data.storage import cache_root

        return download(cache_root() / "downloads")

    def scan(self) -> Scan:
        folder = self._folder()
        self._images: dict[int, np.ndarray] = {}
        records: list[Record] = []
        for split_idx, (split, (img_stem, lbl_stem)) in enumerate(FILES.items()):
            images = read_idx(_find(folder, img_stem), IMAGE_MAGIC)
            labels = read_idx(_find(folder, lbl_stem), LABEL_MAGIC)
            if len(images) != len(labels):
                raise DataError(
                    f"{folder}: {split} has {len(images)} images but {len(labels)} labels"
                )
            if labels.max(initial=0) >= len(CLASSES):
                raise DataError(f"{folder}: {split} labels exceed the 10 Fashion-MNIST classes")
            self._images[split_idx] = images
            records += [
                Record(f"{split}/{i:05d}", int(lbl), split_idx, (split_idx, i))
                for i, lbl in enumerate(labels)
            ]
        from fashion_tune.data.sources.base import filter_classes

        records, classes, _ = filter_classes(
            records, CLASSES, self.options.categories, "Fashion-MNIST class"
        )
        return Scan(
            records=records,
            classes=classes,
            splits=list(FILES),
            channels=self.options.channels or 1,
            spec={"folder": str(folder.resolve())},
        )

    def load(self, record: Record) -> np.ndarray:
        split_idx, i = record.ref
        pixels = self._images[split_idx][i]
        size, channels = self.options.size, self.options.channels or 1
        if size == 32 and channels == 1:
            # pad 28 -> 32 with the black background: exact pixels, no resampling
            out = np.zeros((1, 32, 32), np.uint8)
            out[0, 2:30, 2:30] = pixels
            return out
        # same framing at every size: pad to 32 first, then resize
        padded = np.zeros((32, 32), np.uint8)
        padded[2:30, 2:30] = pixels
        return to_square(Image.fromarray(padded), size, channels)
