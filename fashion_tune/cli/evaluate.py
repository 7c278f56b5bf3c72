"""``fashion-tune evaluate``: score a checkpoint or a folder of images like a trial would."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fashion_tune.cli.common import console


def evaluate(
    source: Annotated[
        str,
        typer.Argument(
            help="A checkpoint (trial, exported or run folder) or a folder of PNG / JPEG "
            "images (flat, or one sub-folder per class named as in the shard set, '/' as '_')."
        ),
    ],
    data: Annotated[str, typer.Option("--data", help="Shard set folder or URI to score against.")],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the scores to this JSON file.")
    ] = None,
    num_samples: Annotated[
        int | None,
        typer.Option(
            min=16,
            max=100_000,
            help="Images scored (default: the checkpoint's metrics.num_samples, or 2000).",
        ),
    ] = None,
    reference: Annotated[
        str | None, typer.Option(help="Metric reference location (default: SHARDS/_reference).")
    ] = None,
) -> None:
    """Score generated images with the metrics and sample counts a trial uses.

    Prints fd (the search objective), kid, precision / recall / density / coverage,
    diversity and symmetry, with the metric reference hash that scored them.
    """
    from fashion_tune.cli.reference import ensure_reference
    from fashion_tune.config import MetricsConfig
    from fashion_tune.data.reader import ShardSet
    from fashion_tune.errors import FashionTuneError
    from fashion_tune.metrics import reference as metric_reference
    from fashion_tune.metrics.evaluate import SCORES, Evaluator, score_images
    from fashion_tune.metrics.image_folder import is_image_folder, load_image_folder

    if json_out is not None and json_out.is_dir():
        raise FashionTuneError(f"--json {json_out} is a folder; give a file name")
    shards = ShardSet(data)
    loc, _ = ensure_reference(data, reference)
    ref = metric_reference.load(loc, shards)
    src = Path(source).expanduser()
    if is_image_folder(src):
        n = num_samples or MetricsConfig().num_samples
        images, classes = load_image_folder(src, shards, n)
        mcfg = MetricsConfig(num_samples=n, kid_subset_size=min(1000, n // 2))
        scores = score_images(ref, mcfg, images, classes)
        what = f"{len(images)} images from {src}"
    else:
        from fashion_tune.checkpoint import load
        from fashion_tune.training import _label_freq, rebuild_generator

        state, cfg = load(source)
        G = rebuild_generator(state, cfg)
        n = num_samples or cfg.metrics.num_samples
        mcfg = MetricsConfig(
            num_samples=n,
            kid_subset_size=min(cfg.metrics.kid_subset_size, n),
            kid_subsets=cfg.metrics.kid_subsets,
        )
        meta = state["model_meta"]
        if int(meta["img_size"]) != shards.image_size or int(meta["channels"]) != shards.channels:
            raise FashionTuneError(
                f"the checkpoint makes {meta['img_size']} px images with {meta['channels']} "
                f"channel(s); {data} holds {shards.image_size} px with {shards.channels}"
            )
        if G.num_classes and G.num_classes != shards.num_classes:
            raise FashionTuneError(
                f"the checkpoint's generator has {G.num_classes} classes; {data} has "
                f"{shards.num_classes}"
            )
        freq = _label_freq(shards, shards.manifest.splits[0], G.num_classes)
        scores = Evaluator(ref, mcfg, G.z_dim, freq)(G)
        what = f"{n} images from the EMA generator of {source}"
    table = Table(title=f"scores of {what}", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("better")
    for name, lower in SCORES.items():
        value = scores[name]
        shown = "missing" if not math.isfinite(value) else f"{value:.4f}"
        table.add_row(name, shown, "lower" if lower else "higher")
    console.print(table)
    console.print(
        f"metric reference {ref.hash}; ruler (reference + settings) {scores['metric_ref']}"
    )
    if json_out is not None:
        from fashion_tune.atomic import write_json

        doc = {
            "source": source,
            "data": data,
            "num_samples": n,
            "reference": ref.hash,
            **{
                k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                for k, v in scores.items()
            },
        }
        try:
            write_json(json_out, doc)
        except OSError as exc:
            raise FashionTuneError(f"cannot write {json_out}: {exc.strerror or exc}") from None
        console.print(f"wrote {json_out}")
