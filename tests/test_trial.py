"""GAN trials at tiny budgets on real Fashion-MNIST: every variant, determinism, exact resume,
divergence, metric sanity, and the ``fashion-tune trial`` command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from fashion_tune import checkpoint as ckpt
from fashion_tune.config import TrialConfig
from fashion_tune.data.reader import ShardSet
from fashion_tune.losses import GAN_LOSSES, SYMMETRY_VARIANTS
from fashion_tune.metrics import reference
from fashion_tune.metrics.featnet import embed
from fashion_tune.metrics.stats import (
    frechet_distance,
    kernel_inception_distance,
    mean_cov,
    mirror_asymmetry,
    symmetry_gap,
)
from fashion_tune.models import ARCHS
from fashion_tune.training import train
from tests.conftest import assert_one_line_error, run_cli, tiny_overrides


def _cfg(data: Path, **extra: object) -> TrialConfig:
    return TrialConfig().with_overrides(tiny_overrides(data, **extra))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("gan", GAN_LOSSES)
@pytest.mark.parametrize("symmetry", SYMMETRY_VARIANTS)
def test_every_model_loss_and_symmetry_variant_trains(
    fmnist_small: Path, tmp_path: Path, arch: str, gan: str, symmetry: str
) -> None:
    lam = 0.0 if symmetry == "none" else 1.0
    cfg = _cfg(
        fmnist_small,
        **{
            "model.arch": arch,
            "loss.gan": gan,
            "loss.symmetry": symmetry,
            "loss.lambda_sym": lam,
            "schedule.total_kimg": 0.064,
        },
    )
    reports: list[dict] = []
    result = train(cfg, tmp_path, report=lambda m, c: reports.append(m), log=lambda _: None)
    assert result.status == "finished" and len(reports) == 1
    m = reports[0]
    for key in ("fd", "kid", "sym_gap", "loss/d", "loss/g", "loss/sym"):
        assert math.isfinite(m[key]), (key, m)
    assert (m["loss/sym"] > 0) == (lam > 0)
    assert m["kimg"] == pytest.approx(0.064)


@pytest.mark.parametrize("pen", ["wgan-gp", "r1"])
def test_gradient_penalties_train(fmnist_small: Path, tmp_path: Path, pen: str) -> None:
    cfg = _cfg(
        fmnist_small, **{"loss.penalty": pen, "loss.gan": "wgan" if pen == "wgan-gp" else "ns"}
    )
    assert train(cfg, tmp_path, log=lambda _: None).status == "finished"


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    state, _ = ckpt.load(run_dir / "checkpoints" / "latest")
    out = {}
    for net in ("G", "D", "G_ema"):
        out.update({f"{net}.{k}": v for k, v in state[net].items()})
    return out


def test_same_seed_same_weights(fmnist_small: Path, tmp_path: Path) -> None:
    cfg = _cfg(fmnist_small)
    train(cfg, tmp_path / "a", log=lambda _: None)
    train(cfg, tmp_path / "b", log=lambda _: None)
    train(cfg.with_overrides({"runtime.seed": 1}), tmp_path / "c", log=lambda _: None)
    a, b, c = _weights(tmp_path / "a"), _weights(tmp_path / "b"), _weights(tmp_path / "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_is_exact(fmnist_small: Path, tmp_path: Path) -> None:
    """2 ticks + resume + 2 ticks gives the same weights as 4 ticks in one run."""
    four = _cfg(fmnist_small, **{"schedule.total_kimg": 0.256, "data.flip_aug": True})
    two = four.with_overrides({"schedule.total_kimg": 0.128})
    train(four, tmp_path / "straight", log=lambda _: None)
    first = train(two, tmp_path / "split", log=lambda _: None)
    assert first.metrics["tick"] == 2
    second = train(four, tmp_path / "split", resume=first.checkpoint, log=lambda _: None)
    assert second.metrics["tick"] == 4 and second.metrics["kimg"] == pytest.approx(0.256)
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    sa, _ = ckpt.load(tmp_path / "straight" / "checkpoints" / "latest")
    sb, _ = ckpt.load(tmp_path / "split" / "checkpoints" / "latest")
    assert (sa["epoch"], sa["batch"], sa["nimg"]) == (sb["epoch"], sb["batch"], sb["nimg"])
    # timings vary; progress is relative to each run's own total_kimg (the first half of
    # the split run was a 2-tick run)
    timing = {"img_per_s", "eval_frac", "progress"}
    ha = [{k: v for k, v in r.items() if k not in timing} for r in json.loads(sa["history"])]
    hb = [{k: v for k, v in r.items() if k not in timing} for r in json.loads(sb["history"])]
    assert ha == hb  # same metrics at every tick, not just the same final weights


def test_divergence_ends_the_trial_cleanly(fmnist_small: Path, tmp_path: Path) -> None:
    cfg = _cfg(
        fmnist_small,
        **{
            "optim.lr_d": 1e30,
            "optim.lr_g": 1e30,
            "loss.gan": "wgan",
            "model.d_norm": "none",
            "schedule.total_kimg": 0.64,
        },
    )
    reports: list[tuple[dict, Path | None]] = []
    result = train(cfg, tmp_path, report=lambda m, c: reports.append((m, c)), log=lambda _: None)
    assert result.status == "diverged"
    last, last_ckpt = reports[-1]
    assert last["diverged"] == 1 and last_ckpt is None and math.isnan(last["kid"])
    assert last["kimg"] < 0.64  # it stopped early instead of training on NaNs


def test_checkpoint_alone_rebuilds_the_generator(fmnist_small: Path, tmp_path: Path) -> None:
    from fashion_tune.training import rebuild_generator

    result = train(_cfg(fmnist_small), tmp_path, log=lambda _: None)
    assert result.checkpoint is not None
    state, cfg = ckpt.load(result.checkpoint)
    assert cfg == _cfg(fmnist_small)
    G = rebuild_generator(state, cfg)
    assert G(torch.randn(4, cfg.model.z_dim), torch.zeros(4, dtype=torch.long)).shape == (
        4,
        1,
        32,
        32,
    )
    assert json.loads((result.checkpoint / "config.json").read_text()) == cfg.to_dict()


def test_unsafe_checkpoint_is_refused(tmp_path: Path) -> None:
    import pickle

    bad = tmp_path / "evil"
    bad.mkdir()
    with open(bad / "checkpoint.pt", "wb") as f:
        pickle.dump({"x": object()}, f)
    with pytest.raises(ckpt.CheckpointError, match="cannot load"):
        ckpt.load(bad)


# -- metric sanity (the distortion suite is tests/test_metric_sanity.py) -----------------------
def test_metrics_real_vs_real_near_zero_and_noise_far(fmnist32_ref: Path) -> None:
    shards = ShardSet(fmnist32_ref)
    ref = reference.load(str(fmnist32_ref), shards)
    assert ref.accuracy > 0.7  # the label head learned the garment classes (shared with SimCLR)
    test_rows = shards.split_indices("test")[:2000]
    reals = torch.from_numpy(shards.gather(test_rows))
    feats, _ = embed(ref.net, reals)
    feats = feats / ref.scale
    noise = torch.rand(2000, 1, 32, 32) * 2 - 1
    nfeats, _ = embed(ref.net, noise)
    nfeats = nfeats / ref.scale
    fd_real = frechet_distance(ref.mu, ref.cov, *mean_cov(feats))
    fd_noise = frechet_distance(ref.mu, ref.cov, *mean_cov(nfeats))
    kid_real = kernel_inception_distance(ref.feats, feats, 1000, 20)
    kid_noise = kernel_inception_distance(ref.feats, nfeats, 1000, 20)
    assert fd_noise > 50 * fd_real and kid_noise > 50 * max(kid_real, 1e-4)
    assert abs(kid_real) < 0.03 and fd_real < 1.0


def test_symmetry_gap_is_zero_for_mirror_symmetric_images(fmnist32_ref: Path) -> None:
    shards = ShardSet(fmnist32_ref)
    ref = reference.load(str(fmnist32_ref), shards)
    rows = shards.split_indices("test")[:500]
    imgs = torch.from_numpy(shards.gather(rows))
    left = imgs[..., :16]
    symmetric = torch.cat([left, left.flip(3)], dim=3)
    labels = shards.labels[rows]
    assert symmetry_gap(mirror_asymmetry(symmetric).numpy(), labels, ref.asym_by_class) == 0
    gap_real = symmetry_gap(mirror_asymmetry(imgs).numpy(), labels, ref.asym_by_class)
    assert 0.8 < gap_real < 1.25  # reals are about as asymmetric as reals
    np.testing.assert_allclose(mirror_asymmetry(symmetric).numpy(), 0)


def test_a_short_trial_visibly_improves(fmnist32_ref: Path, tmp_path: Path) -> None:
    """A few kimg of the default conditional DCGAN: kid and fd fall from the first tick."""
    cfg = TrialConfig().with_overrides(
        {
            "data.path": str(fmnist32_ref),
            "schedule.total_kimg": 6.0,
            "schedule.tick_kimg": 2.0,
            "metrics.num_samples": 1000,
            "metrics.kid_subset_size": 500,
            "metrics.kid_subsets": 10,
            "runtime.threads": 2,
        }
    )
    result = train(cfg, tmp_path, log=lambda _: None)
    first, last = result.history[0], result.history[-1]
    assert last["kid"] < 0.8 * first["kid"] and last["fd"] < 0.8 * first["fd"], result.history
    assert (tmp_path / "samples.png").exists() and (tmp_path / "tb").is_dir()


# -- the command -------------------------------------------------------------------------------
def test_trial_cli_end_to_end_and_resume(fmnist_small: Path, tmp_path: Path) -> None:
    sets = [f"--set={k}={v}" for k, v in tiny_overrides(fmnist_small).items()]
    proc = run_cli("trial", *sets, "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    assert "trial finished" in proc.stdout and "checkpoint:" in proc.stdout
    assert (tmp_path / "run" / "samples.png").exists()
    proc = run_cli(
        "trial",
        "--resume",
        str(tmp_path / "run"),
        "--kimg",
        "0.192",
        "--out",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["tick"] for x in lines] == [1, 2, 3]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--set", "model.archh=resnet"], ["model.archh", "model.arch"]),
        (["--set", "optim.lr_g=fast"], ["optim.lr_g", "float"]),
        (["--set", "model.arch=vit"], ["model.arch", "dcgan"]),
        (["--set", "loss.lambda_sym=1"], ["lambda_sym", "symmetry"]),
        (["--set", "noequals"], ["KEY=VALUE"]),
        (["--data", "/no/such/shards"], ["not a shard set"]),
        (["--resume", "/no/such/ckpt"], ["does not exist"]),
    ],
)
def test_trial_cli_bad_input(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(run_cli("trial", *args, "--out", str(tmp_path)), *fragments)


def test_optional_inception_metrics(fmnist_small: Path, tmp_path: Path) -> None:
    cfg = _cfg(
        fmnist_small,
        **{"metrics.inception": True, "metrics.inception_samples": 8, "schedule.total_kimg": 0.064},
    )
    result = train(cfg, tmp_path, log=lambda _: None)
    assert math.isfinite(result.metrics["fid_inception"]) and result.metrics["fid_inception"] > 0
    assert math.isfinite(result.metrics["kid_inception"])


def test_inception_without_the_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from fashion_tune.errors import ConfigError
    from fashion_tune.metrics import inception

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="uv sync --extra inception"):
        inception.inception_weights()
    # the Gram texture loss reads the same network: refused with the config, before Ray
    gram = {"model.arch": "fashiongan", "data.conditional": False, "loss.texture": "gram"}
    with pytest.raises(ConfigError, match=r"loss\.texture=gram .*--extra inception"):
        TrialConfig().with_overrides(gram)
    TrialConfig().with_overrides({**gram, "loss.lambda_tex": 0.0})  # off: not needed


def test_sample_cli_from_a_trial_checkpoint(fmnist_small: Path, tmp_path: Path) -> None:
    import re

    from PIL import Image

    result = train(_cfg(fmnist_small), tmp_path / "run", log=lambda _: None)
    assert result.checkpoint is not None
    out = tmp_path / "grid.png"
    proc = run_cli("sample", str(result.checkpoint), "--n", "16", "--seed", "3", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    first = np.asarray(Image.open(out))
    run_cli("sample", str(tmp_path / "run"), "--n", "16", "--seed", "3", "--out", str(out))
    np.testing.assert_array_equal(first, np.asarray(Image.open(out)))  # fixed seed, same grid
    proc = run_cli(
        "sample",
        str(result.checkpoint),
        "--class",
        "Trouser",
        "--n",
        "8",
        "--symmetrize",
        "--steps",
        "30",
        "--out",
        str(tmp_path / "sym.png"),
    )
    assert proc.returncode == 0, proc.stderr
    before, after = map(float, re.search(r"asymmetry ([\d.]+) -> ([\d.]+)", proc.stdout).groups())
    assert after < before
    assert (tmp_path / "sym-compare.png").exists()
    assert_one_line_error(
        run_cli("sample", str(result.checkpoint), "--class", "Hat", "--out", str(out)),
        "Hat",
        "Trouser",
    )
    assert_one_line_error(
        run_cli("sample", str(tmp_path), "--out", str(out)), "not a fashion-tune checkpoint"
    )
