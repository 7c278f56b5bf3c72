"""FashionGAN on real Fashion-MNIST at tiny budgets: sketch + fabric pairs made at prepare
time, read back, shown by ``data inspect``; the model family's contract; trials that train,
checkpoint, resume exactly and learn to follow their sketches; old sets give one line."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fashion_tune import checkpoint as ckpt
from fashion_tune.config import TrialConfig
from fashion_tune.data.pairs import fabric_size, garment_mask
from fashion_tune.data.reader import ShardBatches, ShardSet
from fashion_tune.errors import DataError
from fashion_tune.losses import SYMMETRY_VARIANTS
from fashion_tune.models import IMG_SIZES, NORMS, PAIRED_ARCHS
from fashion_tune.training import train
from tests.conftest import assert_one_line_error, run_cli, tiny_overrides


@pytest.fixture(scope="module")
def paired_small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 real Fashion-MNIST garments at 32 px with sketch + fabric columns and their
    metric reference (~30 s on 2 cores)."""
    from fashion_tune.data.prepare import prepare
    from fashion_tune.data.sources import SourceOptions
    from fashion_tune.metrics import reference

    out = tmp_path_factory.mktemp("fmnist-pairs") / "shards"
    prepare("fashion-mnist", None, str(out), SourceOptions(size=32, limit=1500), pairs=True)
    reference.ensure(str(out), log=lambda _: None)  # as `data prepare` does
    return out


def _cfg(data: Path, **extra: object) -> TrialConfig:
    base = {"model.arch": "fashiongan", "model.z_dim": 8, **extra}
    return TrialConfig().with_overrides(tiny_overrides(data, **base))


def test_prepare_with_pairs_writes_a_version_2_set(paired_small: Path) -> None:
    manifest = json.loads((paired_small / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    assert manifest["pairs"]["fabric_size"] == fabric_size(32) == 8
    assert any(col.startswith("sketch") for col in manifest["schema"])
    shards = ShardSet(paired_small)
    assert shards.has_pairs and len(shards) == 1500
    idx = np.arange(0, 1500, 17)
    images = shards.gather(idx)
    sketches, fabrics = shards.gather_pairs(idx)
    assert sketches.shape == (len(idx), 1, 32, 32) and fabrics.shape == (len(idx), 1, 8, 8)
    for img, sk, fb in zip(images, sketches, fabrics):
        mask = garment_mask(img)
        ink = sk[0] < 128
        assert ink.any() and (ink <= mask).all()  # lines lie on the garment only
        assert mask[~ink].any()  # the sketch is lines, not a filled silhouette
        # the fabric patch is a crop of the garment itself
        found = any(
            np.array_equal(img[:, y : y + 8, x : x + 8], fb) for y in range(25) for x in range(25)
        )
        assert found


def test_reader_yields_pairs_with_the_images(paired_small: Path) -> None:
    shards = ShardSet(paired_small)
    stream = ShardBatches(shards, batch_size=16, seed=3, pairs=True)
    images, labels, sketches, fabrics = next(iter(stream))
    assert images.shape == (16, 1, 32, 32) and labels.shape == (16,)
    assert sketches.shape == (16, 1, 32, 32) and fabrics.shape == (16, 1, 8, 8)
    # the same rows as the plain stream, in the same order
    plain_images, plain_labels = next(iter(ShardBatches(shards, batch_size=16, seed=3)))
    assert (images == plain_images).all() and (labels == plain_labels).all()


def test_old_set_without_pairs_is_one_line(fmnist_small: Path) -> None:
    shards = ShardSet(fmnist_small)  # a version-1 set still reads
    assert not shards.has_pairs and shards.manifest.format_version == 1
    with pytest.raises(DataError, match="no sketch / fabric pairs.*--pairs"):
        ShardBatches(shards, batch_size=16, pairs=True)


def test_inspect_shows_sketch_fabric_garment(paired_small: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.png"
    proc = run_cli("data", "inspect", str(paired_small), "--grid", str(grid))
    assert proc.returncode == 0, proc.stderr
    assert "pairs" in proc.stdout and "fabric 8x8" in proc.stdout
    from PIL import Image

    pairs_png = tmp_path / "grid-pairs.png"
    img = Image.open(pairs_png)
    # 4 triptychs of 32 px cells per row, scaled 2x: 12 cells and their padding
    assert img.width == (12 * 34 + 2) * 2


def test_prepare_pairs_cli_and_refusal_of_a_different_set(tmp_path: Path) -> None:
    out = tmp_path / "p"
    args = ["data", "prepare", "fashion-mnist", "--out", str(out), "--limit", "100"]
    proc = run_cli(*args, "--pairs", "--no-reference")
    assert proc.returncode == 0, proc.stderr
    assert ShardSet(out).has_pairs
    # the same folder without --pairs is another set: one line, nothing overwritten
    assert_one_line_error(run_cli(*args, "--no-reference"), "different shard set")


# -- the model family ----------------------------------------------------------------------
@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> object:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _paired_models(size: int, channels: int, norm: str) -> tuple:
    from fashion_tune.tasks.paired import build_paired_models

    cfg = TrialConfig().with_overrides(
        {"model.arch": "fashiongan", "model.z_dim": 8, "model.g_width": 8, "model.d_width": 8}
    )
    cfg = cfg.with_overrides({"model.d_norm": norm})
    return build_paired_models(cfg, size, channels)


@pytest.mark.parametrize(
    ("arch", "size", "channels", "norm"),
    list(itertools.product(PAIRED_ARCHS, IMG_SIZES, (1, 3), NORMS)),
)
def test_paired_contract(arch: str, size: int, channels: int, norm: str) -> None:
    """The contract of every family, for G(sketch, z), E(fabric), D(x, sketch)."""
    torch.manual_seed(0)
    G, E, D = _paired_models(size, channels, norm)
    assert (G.img_size, G.channels, D.img_size, D.channels) == (size, channels, size, channels)
    sk = torch.rand(3, 1, size, size) * 2 - 1
    fab = torch.rand(3, channels, fabric_size(size), fabric_size(size)) * 2 - 1
    mu, logvar = E(fab)
    assert mu.shape == logvar.shape == (3, 8)
    fake = G(sk, mu + torch.randn_like(mu) * (0.5 * logvar).exp(), fab)
    assert fake.shape == (3, channels, size, size) and torch.isfinite(fake).all()
    assert fake.min() >= -1 and fake.max() <= 1
    logits = D(fake, sk)
    assert logits.shape[0] == 3 and torch.isfinite(logits).all()
    logits.mean().backward()
    for name, p in itertools.chain(
        G.named_parameters(), E.named_parameters(), D.named_parameters()
    ):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_paired_channels_last_bf16_and_missing_inputs() -> None:
    G, E, D = _paired_models(64, 3, "spectral")
    G = G.to(memory_format=torch.channels_last)
    D = D.to(memory_format=torch.channels_last)
    sk = torch.rand(2, 1, 64, 64)
    fab = torch.rand(2, 3, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = G(sk, E(fab)[0], fab)
        logits = D(fake, sk)
    assert fake.shape == (2, 3, 64, 64) and torch.isfinite(logits.float()).all()
    with pytest.raises(ValueError, match="fabric code"):
        G(sk)
    with pytest.raises(ValueError, match="fabric patch"):
        G(sk, E(fab)[0])
    with pytest.raises(ValueError, match="sketch"):
        D(fake)


def test_fabric_map_tiles_the_patch_in_phase_with_a_centred_copy() -> None:
    from fashion_tune.models.fashiongan import fabric_map

    for size, p in ((32, 8), (64, 16), (64, 10)):
        fab = torch.arange(2 * 3 * p * p, dtype=torch.float32).reshape(2, 3, p, p)
        m = fabric_map(fab, size)
        assert m.shape == (2, 3, size, size)
        lo = size // 2 - p // 2  # one whole copy where a centred garment's patch was cut
        assert torch.equal(m[:, :, lo : lo + p, lo : lo + p], fab)
        assert torch.equal(m[:, :, :, p:], m[:, :, :, :-p])  # periodic with the patch's size
        assert torch.equal(m[:, :, p:, :], m[:, :, :-p, :])
        at = torch.tensor([[0, size - p], [3, 5]])  # a copy's top-left corner per image
        m = fabric_map(fab, size, at)
        for (y, x), tiled, patch in zip(at.tolist(), m, fab, strict=True):
            assert torch.equal(tiled[:, y : y + p, x : x + p], patch)


def test_locate_patch_finds_where_each_fabric_was_cut(paired_small: Path) -> None:
    """On a prepared set, each stored fabric patch is found at the window it was cut from,
    also after the garment and its patch are flipped together (the training's flip)."""
    from fashion_tune.data.reader import ShardSet
    from fashion_tune.losses import flip
    from fashion_tune.models.fashiongan import locate_patch

    shards = ShardSet(paired_small)
    idx = np.arange(min(24, len(shards.labels)))
    x = torch.from_numpy(shards.gather(idx)).float() / 127.5 - 1
    f = torch.from_numpy(shards.gather_pairs(idx)[1]).float() / 127.5 - 1
    p = f.shape[-1]
    for xs, fs in ((x, f), (flip(x), flip(f))):
        at = locate_patch(xs, fs)
        crops = torch.stack([im[:, y : y + p, c : c + p] for im, (y, c) in zip(xs, at.tolist())])
        assert torch.equal(crops, fs)


def test_the_fabric_map_reaches_the_output_and_the_control_zeroes_it() -> None:
    """G with the tiled fabric depends on the patch beyond its code; the control's G
    (model.fabric_in=false) gets zeros for both, also when called directly."""
    from fashion_tune.tasks.paired import build_paired_models

    torch.manual_seed(0)
    base = {"model.arch": "fashiongan", "model.z_dim": 4, "model.g_width": 8}
    G, _, _ = build_paired_models(TrialConfig().with_overrides(base), 32, 3)
    sk, z = torch.rand(2, 1, 32, 32), torch.zeros(2, 4)
    a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert not torch.allclose(G(sk, z, a), G(sk, z, b))  # same code, different swatch
    blind = TrialConfig().with_overrides({**base, "model.fabric_in": False})
    G0, E0, _ = build_paired_models(blind, 32, 3)
    assert torch.equal(G0(sk, z, a), G0(sk, z, b))
    assert torch.equal(E0(a)[0], E0(b)[0])
    code_only = TrialConfig().with_overrides({**base, "model.fabric_map": False})
    G1, _, _ = build_paired_models(code_only, 32, 3)
    assert torch.equal(G1(sk, z, a), G1(sk, z, b))  # the code alone: the patch is unused


def test_a_checkpoint_from_before_the_fabric_map_loads_as_code_only(tmp_path: Path) -> None:
    """A config saved before model.fabric_map existed has no such key: it rebuilds the
    code-only G its weights belong to, not today's default."""
    import json

    from fashion_tune.pair_inputs import rebuild_paired
    from fashion_tune.tasks.paired import build_paired_models

    base = {"model.arch": "fashiongan", "model.z_dim": 4, "model.g_width": 8}
    cfg = TrialConfig().with_overrides({**base, "model.fabric_map": False})
    G, E, _ = build_paired_models(cfg, 32, 3)
    meta = {"img_size": 32, "channels": 3, "num_classes": 0, "classes": []}
    state = {"G": G.state_dict(), "E": E.state_dict(), "model_meta": meta, "task": "paired"}
    folder = ckpt.save(tmp_path / "old", state, cfg)
    payload = torch.load(folder / ckpt.STATE_FILE, weights_only=True)
    old = json.loads(payload["config"])
    del old["model"]["fabric_map"]
    payload["config"] = json.dumps(old)
    torch.save(payload, folder / ckpt.STATE_FILE)
    loaded, cfg_loaded = ckpt.load(folder)
    assert cfg_loaded.model.fabric_map is False and TrialConfig().model.fabric_map is True
    G2, E2 = rebuild_paired(loaded, cfg_loaded)
    sk, f = torch.rand(1, 1, 32, 32), torch.rand(1, 3, 8, 8)
    assert torch.equal(G2(sk, E2(f)[0], f), G.eval()(sk, E.eval()(f)[0], f))


# -- training --------------------------------------------------------------------------------
def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state, _ = ckpt.load(run_dir / "checkpoints" / "latest")
    return {f"{n}.{k}": v for n in ("G", "E", "D", "G_ema") for k, v in state[n].items()}


def test_trial_trains_checkpoints_and_resumes_exactly(paired_small: Path, tmp_path: Path) -> None:
    """2 ticks + resume + 2 ticks == 4 ticks, with flips and a gradient penalty on."""
    four = _cfg(
        paired_small,
        **{"schedule.total_kimg": 0.256, "data.flip_aug": True, "loss.penalty": "r1"},
    )
    two = four.with_overrides({"schedule.total_kimg": 0.128})
    straight = train(four, tmp_path / "straight", log=lambda _: None)
    first = train(two, tmp_path / "split", log=lambda _: None)
    second = train(four, tmp_path / "split", resume=first.checkpoint, log=lambda _: None)
    assert straight.status == second.status == "finished" and second.metrics["tick"] == 4
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    timing = {"img_per_s", "eval_frac", "progress"}  # progress: of each run's own total
    strip = [{k: v for k, v in r.items() if k not in timing} for r in straight.history]
    assert strip == [{k: v for k, v in r.items() if k not in timing} for r in second.history]
    m = straight.metrics
    for key in ("fd", "shape_iou", "edge_f1", "fabric_err", "fabric_div", "fabric_top1", "loss/l1"):
        assert math.isfinite(m[key]), (key, m)
    assert m["metric_ref"] and (tmp_path / "straight" / "samples.png").exists()
    state, _ = ckpt.load(tmp_path / "split" / "checkpoints" / "latest")
    assert state["task"] == "paired" and "E" in state["task_nets"]


@pytest.mark.parametrize("symmetry", [v for v in SYMMETRY_VARIANTS if v != "none"])
def test_symmetry_variants_apply(paired_small: Path, tmp_path: Path, symmetry: str) -> None:
    cfg = _cfg(
        paired_small,
        **{"loss.symmetry": symmetry, "loss.lambda_sym": 1.0, "schedule.total_kimg": 0.064},
    )
    result = train(cfg, tmp_path, log=lambda _: None)
    assert result.status == "finished" and result.metrics["loss/sym"] > 0


def test_outputs_follow_sketches_better_than_at_init(paired_small: Path, tmp_path: Path) -> None:
    from fashion_tune.metrics import reference
    from fashion_tune.tasks import Runtime, build_task

    cfg = _cfg(
        paired_small,
        **{
            "optim.lr_g": 1e-3,
            "optim.lr_d": 1e-3,
            "schedule.total_kimg": 3.0,
            "schedule.tick_kimg": 3.0,
        },
    )
    torch.manual_seed(cfg.runtime.seed)
    shards = ShardSet(paired_small)
    task = build_task(cfg, shards, Runtime.from_config(cfg))
    task.setup_eval(reference.load(str(paired_small), shards), None)
    init = task.evaluate()
    trained = train(cfg, tmp_path, log=lambda _: None).metrics
    assert trained["shape_iou"] > init["shape_iou"] + 0.2, (init, trained)
    assert trained["edge_f1"] > init["edge_f1"] + 0.2, (init, trained)
    assert trained["fd"] < init["fd"] / 2, (init, trained)


def test_fashiongan_on_an_old_set_is_one_line(fmnist_small: Path, tmp_path: Path) -> None:
    sets = [f"--set={k}={v}" for k, v in tiny_overrides(fmnist_small).items()]
    proc = run_cli("trial", *sets, "--set", "model.arch=fashiongan", "--out", str(tmp_path / "r"))
    assert_one_line_error(proc, "no sketch / fabric pairs", "--pairs")
    assert not (tmp_path / "r").exists()


# -- sample with a user's own files --------------------------------------------------------
@pytest.fixture(scope="module")
def fg_run(paired_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("fg-run")
    train(_cfg(paired_small, **{"schedule.total_kimg": 0.064}), run, log=lambda _: None)
    return run


def test_sample_with_user_files(fg_run: Path, tmp_path: Path) -> None:
    from PIL import Image, ImageDraw

    sk = Image.new("RGBA", (300, 200), (255, 255, 255, 255))  # any size, with alpha
    ImageDraw.Draw(sk).rectangle((100, 30, 200, 180), outline=(0, 0, 0, 255), width=6)
    sk.save(tmp_path / "sketch.png")
    Image.new("RGB", (50, 70), (200, 60, 60)).save(tmp_path / "fabric.jpg")
    out = tmp_path / "x.png"
    proc = run_cli(
        "sample",
        str(fg_run),
        "--sketch",
        str(tmp_path / "sketch.png"),
        "--fabric",
        str(tmp_path / "fabric.jpg"),
        "--out",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (32, 32)
    assert (tmp_path / "x-triptych.png").exists()
    # without files: pairs of the checkpoint's shard set
    proc = run_cli("sample", str(fg_run), "--n", "8", "--out", str(tmp_path / "g.png"))
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "g.png").width == (12 * 34 + 2) * 2
    # a slimmed copy (weights, meta and config, no task name) is still a fashiongan
    state = torch.load(fg_run / "checkpoints" / "latest" / ckpt.STATE_FILE, weights_only=True)
    slim = {k: state[k] for k in ("format_version", "config", "G", "G_ema", "E", "model_meta")}
    (tmp_path / "slim").mkdir()
    torch.save(slim, tmp_path / "slim" / ckpt.STATE_FILE)
    files = ("--sketch", str(tmp_path / "sketch.png"), "--fabric", str(tmp_path / "fabric.jpg"))
    proc = run_cli("sample", str(tmp_path / "slim"), *files, "--out", str(tmp_path / "s.png"))
    assert proc.returncode == 0, proc.stderr
    assert Image.open(tmp_path / "s.png").size == (32, 32)


def test_sample_bad_files_are_one_line(fg_run: Path, fmnist_small: Path, tmp_path: Path) -> None:
    from PIL import Image

    (tmp_path / "bad.png").write_bytes(b"not an image")
    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    Image.new("RGB", (20, 20), (9, 9, 9)).save(tmp_path / "f.png")
    out = str(tmp_path / "x.png")
    cases = [
        (
            ["--sketch", str(tmp_path / "bad.png"), "--fabric", str(tmp_path / "f.png")],
            "not a readable",
        ),
        (
            ["--sketch", str(tmp_path / "none.png"), "--fabric", str(tmp_path / "f.png")],
            "does not exist",
        ),
        (
            ["--sketch", str(tmp_path / "blank.png"), "--fabric", str(tmp_path / "f.png")],
            "no lines",
        ),
        (["--sketch", str(tmp_path / "f.png")], "both --sketch and --fabric"),
    ]
    for args, fragment in cases:
        assert_one_line_error(run_cli("sample", str(fg_run), *args, "--out", out), fragment)
    assert not Path(out).exists()


def test_damaged_pair_columns_are_one_line(paired_small: Path, tmp_path: Path) -> None:
    """A manifest whose pair sizes do not match its shards (wrong sizes) is one line."""
    import shutil

    copy = tmp_path / "set"
    shutil.copytree(paired_small, copy, ignore=shutil.ignore_patterns("_reference"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["pairs"]["fabric_size"] = 9
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert_one_line_error(run_cli("data", "inspect", str(copy)), "'fabric' column", "again")


# -- search and report ---------------------------------------------------------------------
def test_search_and_report_show_swap_sheets(paired_small: Path, tmp_path: Path) -> None:
    from PIL import Image

    space = Path(__file__).resolve().parent / "spaces" / "fashiongan_tiny.yaml"
    storage = tmp_path / "results"
    proc = run_cli(
        "search", str(space), "--data", str(paired_small), "--storage", str(storage), timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = tmp_path / "report"
    proc = run_cli("report", str(storage / "fashiongan_tiny"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    grids = sorted((out / "images").glob("samples-*.png"))
    assert grids, proc.stdout
    # the swap sheet: a header row of 6 fixed fabrics, then 6 sketches, each followed by it
    # made of every fabric; 7 x 7 cells of 32 px, padded, at 2x; the top-left cell is blank
    sheet = np.asarray(Image.open(grids[0]).convert("RGB"))
    assert sheet.shape[:2] == ((7 * 34 + 2) * 2, (7 * 34 + 2) * 2)
    assert (sheet[4:68, 4:68] == 255).all()
    assert (sheet[4:68, 72:136] != 255).any()  # the first fabric
    assert "fd" in (out / "report.md").read_text()
    html = (out / "index.html").read_text()
    assert "Swap sheet of fixed pairs" in html and "noise seed" not in html
    assert "fabric_top1" in html and "texture_top1" in html  # the swap test beside fd


def test_folder_source_rgb_pairs(tmp_path: Path) -> None:
    """Colour garments from an image folder: the fabric patch keeps the garment's colour."""
    from PIL import Image, ImageDraw

    from fashion_tune.data.prepare import prepare
    from fashion_tune.data.sources import SourceOptions

    colours = {"red": (200, 30, 30), "blue": (30, 40, 190)}
    for name, rgb in colours.items():
        (tmp_path / "src" / name).mkdir(parents=True)
        for k in range(3):
            img = Image.new("RGB", (90 + 10 * k, 120), (255, 255, 255))
            ImageDraw.Draw(img).rectangle((20, 15, 70 + 10 * k, 105), fill=rgb)
            img.save(tmp_path / "src" / name / f"{k}.png")
    out = tmp_path / "set"
    prepare("folder", str(tmp_path / "src"), str(out), SourceOptions(size=64), pairs=True)
    shards = ShardSet(out)
    sketches, fabrics = shards.gather_pairs(np.arange(len(shards)))
    assert fabrics.shape == (6, 3, 16, 16) and sketches.shape == (6, 1, 64, 64)
    for label, fab in zip(shards.labels, fabrics):
        want = np.array(colours[shards.classes[label]])
        assert np.abs(fab.reshape(3, -1).mean(1) - want).max() < 12


def test_deepfashion_inshop_front_pairs(tmp_path: Path) -> None:
    """DeepFashion In-shop front views (bbox crops) with pairs, as the GPU space expects."""
    from fashion_tune.data.prepare import prepare
    from fashion_tune.data.sources import SourceOptions
    from tests import deepfashion_fixtures as fx

    root = fx.make_inshop_benchmark(tmp_path / "inshop")
    out = tmp_path / "set"
    opts = SourceOptions(size=64, channels=3, views=("front",))
    prepare("deepfashion", str(root), str(out), opts, pairs=True)
    shards = ShardSet(out)
    sketches, fabrics = shards.gather_pairs(np.arange(len(shards)))
    assert len(shards) > 0 and fabrics.shape[1:] == (3, 16, 16)
    assert all((s[0] < 128).any() for s in sketches)  # every garment got lines


def test_pairs_across_many_shards(tmp_path: Path) -> None:
    """Pairs read back row for row from a set cut into many small shards."""
    from fashion_tune.data.pairs import make_pair
    from fashion_tune.data.prepare import prepare
    from fashion_tune.data.sources import SourceOptions

    out = tmp_path / "set"
    prepare(
        "fashion-mnist",
        None,
        str(out),
        SourceOptions(size=32, limit=100),
        shard_mb=0.02,
        pairs=True,
    )
    shards = ShardSet(out)
    assert len(shards.manifest.shards) > 3
    idx = np.array([97, 3, 50, 21, 0, 64])  # any order, across shards
    sketches, fabrics = shards.gather_pairs(idx)
    for k, img in enumerate(shards.gather(idx)):
        sk, fb = make_pair(img)
        assert np.array_equal(sketches[k], sk) and np.array_equal(fabrics[k], fb)
