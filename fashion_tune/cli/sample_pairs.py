"""``fashion-tune sample`` for fashiongan checkpoints: a user's sketch + fabric -> a garment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fashion_tune.cli.common import console, save_image
from fashion_tune.config import TrialConfig
from fashion_tune.errors import FashionTuneError


def sample_paired(
    state: dict[str, Any],
    cfg: TrialConfig,
    out: Path,
    sketch: Path | None,
    fabric: Path | None,
    n: int,
    seed: int,
) -> None:
    import numpy as np
    from PIL import Image

    from fashion_tune.grids import to_uint8, triptychs
    from fashion_tune.metrics.paired import translate
    from fashion_tune.pair_inputs import load_fabric, load_sketch, rebuild_paired

    meta = state["model_meta"]
    size, channels = int(meta["img_size"]), int(meta["channels"])
    patch = int(meta.get("fabric_size", size // 4))
    if (sketch is None) != (fabric is None):
        raise FashionTuneError(
            "give both --sketch and --fabric (or neither: pairs of the data set)"
        )
    G, E = rebuild_paired(state, cfg)
    scale = max(1, 64 // size)
    if sketch is not None and fabric is not None:
        sk = load_sketch(sketch, size)[None]
        fb = load_fabric(fabric, patch, channels)[None]
        garment = to_uint8(translate(G, E, sk, fb))[0]
        img = Image.fromarray(garment[0] if channels == 1 else garment.transpose(1, 2, 0))
        save_image(img, out)
        side = out.with_name(f"{out.stem}-triptych{out.suffix}")
        save_image(triptychs([sk, fb, garment[None]], per_row=1, scale=scale), side)
        console.print(f"wrote {out} ({size}x{size}); sketch | fabric | garment: {side}")
        return
    from fashion_tune.data.reader import ShardSet

    shards = ShardSet(cfg.data.path, verify="size")
    shards.require_pairs("sampling without --sketch / --fabric")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(shards), size=min(n, len(shards)), replace=False))
    sks, fbs = shards.gather_pairs(idx)
    outs = translate(G, E, sks, fbs)
    save_image(triptychs([sks, fbs, outs], per_row=4, scale=scale), out)
    console.print(
        f"wrote {len(idx)} sketch | fabric | garment triptychs from {cfg.data.path} to {out}"
    )
