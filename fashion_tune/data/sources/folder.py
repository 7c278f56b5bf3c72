"""A folder of class sub-folders of images (a user's own garments).

``ROOT/<class>/<image>``, or with splits ``ROOT/{train,val,test}/<class>/<image>``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from fashion_tune.data.imaging import open_image, to_square
from fashion_tune.data.sources.base import Record, Scan, Source, filter_classes, register
from fashion_tune.errors import DataError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
SPLIT_DIRS = ("train", "val", "test")


def inputs_digest(root: Path, rels: list[str]) -> str:
    """A hash of every input's path, size and modification time, in record order (which
    also fixes each one's class and split): a changed, moved, added or deleted image changes
    it, so a finished set is not mistaken for the current inputs and a resume never mixes
    old and new files. Content is not read (that would cost a second decode pass)."""
    h = hashlib.sha256()
    for rel in rels:
        try:
            st = (root / rel).stat()
            h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode(errors="surrogateescape"))
        except OSError:
            h.update(f"{rel}\0missing\n".encode(errors="surrogateescape"))
    return h.hexdigest()


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


@register
class ImageFolder(Source):
    name = "folder"

    def scan(self) -> Scan:
        if not self.path:
            raise DataError("the folder source needs a PATH: fashion-tune data prepare folder DIR")
        root = Path(self.path).expanduser()
        if not root.is_dir():
            raise DataError(f"image folder {root} does not exist")
        top = _class_dirs(root)
        if top and all(p.name in SPLIT_DIRS for p in top):
            split_roots = [(p.name, p) for p in top]
        else:
            split_roots = [("train", root)]
        classes = sorted({c.name for _, sr in split_roots for c in _class_dirs(sr)})
        if not classes:
            raise DataError(f"{root} has no class sub-folders (expected ROOT/<class>/<image>)")
        records: list[Record] = []
        for split_idx, (_, split_root) in enumerate(split_roots):
            for class_dir in _class_dirs(split_root):
                for f in sorted(class_dir.rglob("*")):
                    if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
                        rel = f.relative_to(root).as_posix()
                        # a file name that is not UTF-8 is still read; its id shows U+FFFD
                        shown = rel.encode(errors="surrogateescape").decode(errors="replace")
                        label = classes.index(class_dir.name)
                        records.append(Record(shown, label, split_idx, rel))
        if not records:
            raise DataError(f"{root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        records, classes, _ = filter_classes(records, classes, self.options.categories, "class")
        return Scan(
            records=records,
            classes=classes,
            splits=[name for name, _ in split_roots],
            channels=self.options.channels or 3,
            spec={
                "root": str(root.resolve()),
                "files": len(records),
                "inputs": inputs_digest(root, [r.ref for r in records]),
            },
        )

    def load(self, record: Record) -> np.ndarray:
        assert self.path is not None
        img = open_image(str(Path(self.path) / record.ref))
        return to_square(img, self.options.size, self.options.channels or 3)
