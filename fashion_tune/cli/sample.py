"""``fashion-tune sample``: images from any trial or exported checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fashion_tune.cli.common import check_image_out, console, save_image
from fashion_tune.config import MAX_SEED

MAX_IMAGES = 4096  # one grid; larger asks are almost surely a typo (and slow to invert)


def sample(
    checkpoint: Annotated[
        str, typer.Argument(help="Checkpoint folder, its checkpoint.pt, or a run / export folder.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG file to write.")] = Path(
        "samples.png"
    ),
    n: Annotated[int, typer.Option("--n", min=1, max=MAX_IMAGES, help="Number of images.")] = 64,
    seed: Annotated[
        int, typer.Option(min=0, max=MAX_SEED, help="Noise seed (same seed, same images).")
    ] = 0,
    class_: Annotated[
        str | None,
        typer.Option(
            "--class", help="Class name or index (conditional GANs); default: all classes in turn."
        ),
    ] = None,
    symmetrize: Annotated[
        bool,
        typer.Option(
            help="Invert each image's mirror image through G (latent optimization) and write "
            "(x + G(z*)) / 2; FILE-compare.png shows original / mirrored reconstruction / result."
        ),
    ] = False,
    steps: Annotated[
        int, typer.Option(min=1, max=100_000, help="Optimization steps of --symmetrize.")
    ] = 200,
    nrow: Annotated[int, typer.Option(min=1, max=256, help="Images per grid row.")] = 8,
    sketch: Annotated[
        Path | None,
        typer.Option(help="fashiongan: your sketch image (any size; dark lines on light)."),
    ] = None,
    fabric: Annotated[
        Path | None, typer.Option(help="fashiongan: your fabric image (any size).")
    ] = None,
) -> None:
    """Generate a fixed-seed grid from a checkpoint's EMA generator (the checkpoint suffices).

    A fashiongan checkpoint turns --sketch and --fabric into one garment (--out), with
    FILE-triptych.png beside it; without them it renders --n pairs of its shard set as
    sketch | fabric | garment triptychs.
    """
    import torch

    from fashion_tune.checkpoint import load
    from fashion_tune.errors import FashionTuneError
    from fashion_tune.grids import make_grid
    from fashion_tune.metrics.stats import mirror_asymmetry
    from fashion_tune.models.registry import family_kind
    from fashion_tune.sampling import fixed_noise, generate
    from fashion_tune.training import rebuild_generator

    check_image_out(out, "--out")
    state, cfg = load(checkpoint)
    if family_kind(cfg.model.arch) == "paired":  # the config says it, also in a slim export
        from fashion_tune.cli.sample_pairs import sample_paired

        if class_ is not None or symmetrize:
            raise FashionTuneError("--class and --symmetrize do not apply to fashiongan")
        sample_paired(state, cfg, out, sketch, fabric, n, seed)
        return
    if sketch is not None or fabric is not None:
        raise FashionTuneError(
            "--sketch / --fabric need a fashiongan checkpoint (model.arch=fashiongan); "
            f"this one is {cfg.model.arch}"
        )
    G = rebuild_generator(state, cfg)
    classes: list[str] = list(state["model_meta"].get("classes", []))
    y = None
    if G.num_classes:
        if class_ is None:
            y = torch.arange(n) % G.num_classes
        else:
            if class_ in classes:
                idx = classes.index(class_)
            elif class_.isdigit() and int(class_) < G.num_classes:
                idx = int(class_)
            else:
                raise FashionTuneError(
                    f"unknown class {class_!r}; this generator has: {', '.join(classes)}"
                )
            y = torch.full((n,), idx, dtype=torch.long)
    elif class_ is not None:
        raise FashionTuneError("--class needs a class-conditional generator; this one is not")
    z = fixed_noise(n, G.z_dim, seed)
    images = generate(G, z, y)
    scale = max(1, 64 // G.img_size)
    if symmetrize:
        from fashion_tune.symmetrize import invert_flipped

        inv = invert_flipped(G, images, y, steps=steps, seed=seed)
        before = mirror_asymmetry(images).mean().item()
        after = mirror_asymmetry(inv.symmetrized).mean().item()
        save_image(make_grid(inv.symmetrized, nrow=nrow, scale=scale), out)
        triplets = torch.stack([images, inv.reconstruction, inv.symmetrized], 1).flatten(0, 1)
        compare = out.with_name(f"{out.stem}-compare{out.suffix}")
        save_image(make_grid(triplets[: 3 * min(n, 16)], nrow=6, scale=scale), compare)
        console.print(
            f"mirror asymmetry {before:.4f} -> {after:.4f} (inversion loss {inv.loss:.4f})"
        )
        console.print(f"comparison: {compare}")
    else:
        save_image(make_grid(images, nrow=nrow, scale=scale), out)
    console.print(f"wrote {n} images to {out}")
