"""``fashion-tune swap-test``: do fashiongan checkpoints make the garment of its fabric?"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fashion_tune.cli.common import console, save_image

SHEET_ROWS = 8  # sketches drawn on each checkpoint's sheet


def swap_test(
    checkpoints: Annotated[
        list[str],
        typer.Argument(
            help="fashiongan checkpoints (trial, exported or run folders): e.g. a model and "
            "its fabric-blind control (model.fabric_in=false), scored on the same pairs."
        ),
    ],
    data: Annotated[
        str | None,
        typer.Option("--data", help="Shard set with pairs (default: the first checkpoint's)."),
    ] = None,
    sketches: Annotated[
        int, typer.Option(min=1, max=10_000, help="N held-out sketches, each rendered K times.")
    ] = 125,
    fabrics: Annotated[
        int, typer.Option(min=2, max=64, help="K fabrics, cut from K other held-out garments.")
    ] = 8,
    sheet: Annotated[
        Path | None,
        typer.Option(
            help="Write a swap sheet per checkpoint (its first 8 sketches x the K fabrics): "
            "FILE-1.png, FILE-2.png, ..."
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the scores to this JSON file.")
    ] = None,
    reference: Annotated[
        str | None, typer.Option(help="Metric reference location (default: SHARDS/_reference).")
    ] = None,
) -> None:
    """Render N held-out sketches with K fabrics of other garments and ask whether each
    output is made of its own fabric.

    fabric_top1: the output's fabric patch is nearest its own fabric among the K (colour
    and texture statistics). texture_top1: the same with colour removed (the pattern's
    power spectrum). Chance is 1/K for both, and a model that ignores its fabric scores
    chance: score the fabric-blind control (trained with --set model.fabric_in=false) in
    the same command to read them against. Also: shape_iou and edge_f1 against the sketch,
    and fd of the N x K outputs. The sheet shows the fabrics along the top and one row per
    sketch.
    """
    from fashion_tune.atomic import write_json
    from fashion_tune.checkpoint import load
    from fashion_tune.cli.reference import ensure_reference
    from fashion_tune.config import MetricsConfig
    from fashion_tune.data.reader import ShardSet
    from fashion_tune.errors import FashionTuneError
    from fashion_tune.metrics import reference as metric_reference
    from fashion_tune.metrics.swap import SwapSet, render, swap_scores, swap_sheet
    from fashion_tune.pair_inputs import rebuild_paired

    if json_out is not None and json_out.is_dir():
        raise FashionTuneError(f"--json {json_out} is a folder; give a file name")
    loaded = []
    for source in checkpoints:
        state, cfg = load(source)
        if state.get("task") != "paired":
            raise FashionTuneError(
                f"{source} is a {cfg.model.arch} checkpoint; the swap test needs fashiongan's"
            )
        loaded.append((source, state, cfg))
    data = data or loaded[0][2].data.path
    shards = ShardSet(data)
    for source, state, _ in loaded:
        meta = state["model_meta"]
        if (int(meta["img_size"]), int(meta["channels"])) != (shards.image_size, shards.channels):
            raise FashionTuneError(
                f"{source} makes {meta['img_size']} px images with {meta['channels']} "
                f"channel(s); {data} holds {shards.image_size} px with {shards.channels}"
            )
    loc, _ = ensure_reference(data, reference)
    ref = metric_reference.load(loc, shards)
    swap = SwapSet.draw(shards, sketches, fabrics)
    n_out = sketches * fabrics
    mcfg = MetricsConfig(num_samples=n_out, kid_subset_size=max(2, min(1000, n_out // 2)))
    rows = []
    for i, (source, state, cfg) in enumerate(loaded, 1):
        G, E = rebuild_paired(state, cfg)
        outputs = render(G, E, swap)
        scores = swap_scores(outputs, swap, ref, mcfg)
        blind = not cfg.model.fabric_in
        rows.append({"checkpoint": source, "fabric_blind_control": blind, **scores})
        if sheet is not None:
            path = sheet.with_name(f"{sheet.stem}-{i}{sheet.suffix or '.png'}")
            scale = max(1, 64 // shards.image_size)
            save_image(swap_sheet(outputs, swap, scale=scale, rows=SHEET_ROWS), path)
            rows[-1]["sheet"] = str(path)
    table = Table(
        title=f"swap test: {sketches} sketches x {fabrics} fabrics of {data} "
        f"(chance {1 / fabrics:.3f})",
        title_justify="left",
    )
    for col in ("#", "E sees", "fabric_top1", "texture_top1", "shape_iou", "edge_f1", "fd"):
        table.add_column(col, justify="left" if col == "E sees" else "right", no_wrap=True)
    for i, r in enumerate(rows, 1):
        name = "zeros" if r["fabric_blind_control"] else "fabric"
        cells = [
            "missing" if not math.isfinite(r[c]) else f"{r[c]:.3f}"
            for c in ("fabric_top1", "texture_top1", "shape_iou", "edge_f1", "fd")
        ]
        table.add_row(str(i), name, *cells)
    console.print(table)
    for i, r in enumerate(rows, 1):
        note = " (the fabric-blind control)" if r["fabric_blind_control"] else ""
        note += f"; sheet {r['sheet']}" if "sheet" in r else ""
        console.print(f"{i}: {r['checkpoint']}{note}", soft_wrap=True)
    if json_out is not None:
        doc = {"data": data, "sketches": sketches, "fabrics": fabrics, "reference": ref.hash,
               "rows": [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                         for k, v in r.items()} for r in rows]}  # fmt: skip
        try:
            write_json(json_out, doc)
        except OSError as exc:
            raise FashionTuneError(f"cannot write {json_out}: {exc.strerror or exc}") from None
        console.print(f"wrote {json_out}")
