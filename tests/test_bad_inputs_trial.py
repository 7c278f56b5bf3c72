"""Bad and unusual inputs to ``trial`` and ``sample``, through the real CLI on real files and
real checkpoints: one ``error:`` line, exit 2, no traceback, nothing left that reads as valid."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from fashion_tune.checkpoint import STATE_FILE
from fashion_tune.cli import main
from fashion_tune.config import TrialConfig
from tests.cli_helpers import assert_one_error, read_only, run_main, tree
from tests.conftest import tiny_overrides


def _sets(overrides: dict) -> list[str]:
    return [f"--set={k}={v}" for k, v in overrides.items()]


@pytest.fixture(scope="module")
def tiny_run(fmnist_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-tick trial run folder (checkpoints, metrics, config)."""
    run = tmp_path_factory.mktemp("trial") / "run"
    assert main(["trial", *_sets(tiny_overrides(fmnist_small)), "--out", str(run)]) == 0
    return run


@pytest.fixture()
def run(tiny_run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(tiny_run, dest, symlinks=True)
    return dest


@pytest.fixture()
def ckpt_state(tiny_run: Path) -> dict:
    return torch.load(tiny_run / "checkpoints" / "latest" / STATE_FILE, weights_only=True)


# -- config values -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--set", "loss.lambda_sym=nan"], "loss.lambda_sym"),
        (["--set", "loss.lambda_sym=.inf"], "loss.lambda_sym"),
        (["--set", "loss.lambda_sym=-inf"], "loss.lambda_sym"),
        (["--set", "optim.lr_g=nan"], "optim.lr_g"),
        (["--set", "loss.penalty_weight=1e400"], "loss.penalty_weight"),
        (["--set", f"optim.lr_d={10**400}"], "optim.lr_d"),
        (["--set", "runtime.seed=-1"], "runtime.seed"),
        (["--set", "runtime.seed=4294967296"], "runtime.seed"),
        (["--set", f"runtime.seed={10**30}"], "runtime.seed"),
        (["--set", "metrics.kid_subset_size=1"], "metrics.kid_subset_size"),
        (["--set", "metrics.kid_subset_size=0"], "metrics.kid_subset_size"),
        (["--set", f"model.z_dim={10**20}"], "model.z_dim"),
        (["--set", f"runtime.threads={10**20}"], "runtime.threads"),
        (["--set", f"schedule.snapshot_ticks={10**20}"], "too large"),
        (["--set", "model.g_width=100000"], "model.g_width"),
        (["--set", "metrics.num_samples=100000000"], "metrics.num_samples"),
        (["--kimg", "nan"], "schedule.total_kimg"),
        (["--kimg", "inf"], "schedule.total_kimg"),
    ],
)
def test_bad_config_values(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], fragment: str
) -> None:
    out = tmp_path / "out"
    assert_one_error(run_main(capsys, "trial", *args, "--out", out), fragment)
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("loss:\n  lambda_sym: .nan\n", "loss.lambda_sym"),
        ("optim:\n  beta1: .inf\n", "optim.beta1"),
        ("runtime:\n  seed: -5\n", "runtime.seed"),
    ],
)
def test_bad_config_file_values(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, fragment: str
) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(text)
    out = tmp_path / "out"
    assert_one_error(run_main(capsys, "trial", "--config", cfg, "--out", out), fragment)
    assert not out.exists()


def test_config_file_that_is_not_utf8(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_bytes(b"\xff\xfe\x00model: 3")
    assert_one_error(run_main(capsys, "trial", "--config", cfg), "not UTF-8")


def test_seed_bounds_are_inclusive() -> None:
    base = TrialConfig().to_dict()
    for seed in (0, 2**32 - 1):
        base["runtime"]["seed"] = seed
        assert TrialConfig.from_dict(base).runtime.seed == seed


# -- the run folder ----------------------------------------------------------------------------
def test_out_holding_a_run_is_refused_without_resume(
    capsys: pytest.CaptureFixture[str], run: Path, fmnist_small: Path
) -> None:
    before = tree(run)
    r = run_main(capsys, "trial", *_sets(tiny_overrides(fmnist_small)), "--out", run)
    assert_one_error(r, str(run), "--resume", "--overwrite")
    assert tree(run) == before


def test_overwrite_replaces_a_run(
    capsys: pytest.CaptureFixture[str], run: Path, fmnist_small: Path
) -> None:
    (run / "stale-marker").write_text("from the old run")
    sets = _sets(tiny_overrides(fmnist_small, **{"schedule.total_kimg": 0.064}))
    r = run_main(capsys, "trial", *sets, "--out", run, "--overwrite")
    assert r.code == 0, r.err
    ticks = [json.loads(x)["tick"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert ticks == [1] and not (run / "stale-marker").exists()


def test_overwrite_refuses_a_folder_that_is_not_a_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("do not delete")
    r = run_main(capsys, "trial", "--out", precious, "--overwrite")
    assert_one_error(r, "not empty and holds no run")
    assert (precious / "thesis.tex").read_text() == "do not delete"


@pytest.mark.parametrize("out", ["/proc/fashion-tune-run", "/sys/fashion-tune-run"])
def test_out_that_cannot_be_created(
    capsys: pytest.CaptureFixture[str], fmnist_small: Path, out: str
) -> None:
    r = run_main(capsys, "trial", "--data", fmnist_small, "--out", out)
    assert_one_error(r, "cannot create --out", out)


def test_out_read_only(
    capsys: pytest.CaptureFixture[str], fmnist_small: Path, tmp_path: Path
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        r = run_main(capsys, "trial", "--data", fmnist_small, "--out", ro / "run")
        assert_one_error(r, "cannot create --out")
    assert list(ro.iterdir()) == []


def test_failed_trial_leaves_no_new_out_folder(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out = tmp_path / "new" / "runs" / "run"
    r = run_main(capsys, "trial", "--data", tmp_path / "no-such-set", "--out", out)
    assert_one_error(r, "not a shard set")
    assert not (tmp_path / "new").exists()  # nor the parents it made


def test_out_that_is_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    assert_one_error(run_main(capsys, "trial", "--out", f), "is a file")


def test_overwrite_with_resume_from_inside_out_is_refused(
    capsys: pytest.CaptureFixture[str], run: Path
) -> None:
    before = tree(run)
    r = run_main(capsys, "trial", "--resume", run, "--out", run, "--overwrite")
    assert_one_error(r, "--overwrite", "--resume")
    assert tree(run) == before


def test_resume_with_a_changed_model_shape_names_the_key(
    capsys: pytest.CaptureFixture[str], run: Path
) -> None:
    before = tree(run)
    r = run_main(
        capsys, "trial", "--resume", run, "--out", run, "--set", "model.g_width=16", "--kimg", "1"
    )
    assert_one_error(r, "model.g_width", "8 -> 16")
    assert tree(run) == before


def test_resume_whose_weights_do_not_fit_is_one_line(
    capsys: pytest.CaptureFixture[str], run: Path, tmp_path: Path
) -> None:
    # --config bypasses the checkpoint's own config: the weights then meet another shape
    cfg = json.loads((run / "config.json").read_text())
    cfg["model"]["g_width"] = 16
    cfg["schedule"]["total_kimg"] = 1.0
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    out = tmp_path / "elsewhere"
    r = run_main(capsys, "trial", "--resume", run, "--config", tmp_path / "cfg.json", "--out", out)
    assert_one_error(r, "do not fit")
    assert not (out / "config.json").exists() and not (out / "checkpoints").exists()


# -- sample: checkpoints that are not ------------------------------------------------------------
def _ckpt(tmp_path: Path, payload: object, name: str = "ckpt") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    torch.save(payload, folder / STATE_FILE)
    return folder


class Evil:
    def __reduce__(self) -> tuple:
        return (print, ("this ran code",))


def _bad_checkpoints(tmp_path: Path, state: dict) -> dict[str, tuple[Path, str]]:
    tmp_path.mkdir()
    cfg = TrialConfig().to_json()
    no_g = {k: v for k, v in state.items() if k not in ("G", "G_ema")}
    shaped = json.loads(state["config"])
    shaped["model"]["g_width"] = 16  # the weights were trained at g_width 8
    wrong_shape = {**state, "config": json.dumps(shaped)}
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    real = tmp_path / "real"
    real.mkdir()
    torch.save(state, real / STATE_FILE)
    (truncated / STATE_FILE).write_bytes((real / STATE_FILE).read_bytes()[:5000])
    evil = tmp_path / "evil"
    evil.mkdir()
    with open(evil / STATE_FILE, "wb") as f:
        pickle.dump({"x": Evil()}, f)
    nockpt = tmp_path / "nockpt"
    nockpt.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / STATE_FILE).write_bytes(b"")
    return {
        "bare tensor": (_ckpt(tmp_path, torch.zeros(3), "bare"), "holds a Tensor"),
        "no config": (_ckpt(tmp_path, {"format_version": 1, "G": {}}, "nocfg"), "no config"),
        "non-JSON config": (
            _ckpt(tmp_path, {"format_version": 1, "config": "{oops"}, "badjson"),
            "not JSON",
        ),
        "invalid config": (
            _ckpt(tmp_path, {"format_version": 1, "config": json.dumps({"model": 3})}, "badcfg"),
            "invalid config",
        ),
        "no G weights": (_ckpt(tmp_path, no_g, "nog"), "lacks G"),
        "old format": (_ckpt(tmp_path, {"format_version": 0, "config": cfg}, "old"), "format"),
        "weights of another shape": (_ckpt(tmp_path, wrong_shape, "shape"), "do not fit"),
        "truncated": (truncated, "corrupt"),
        "empty file": (empty, "corrupt"),
        "unsafe pickle": (evil, "safe (weights-only) load refuses"),
        "no checkpoint.pt": (nockpt, "holds no checkpoint.pt"),
        "missing": (tmp_path / "nowhere", "does not exist"),
    }


CASES = [
    "bare tensor",
    "no config",
    "non-JSON config",
    "invalid config",
    "no G weights",
    "old format",
    "weights of another shape",
    "truncated",
    "empty file",
    "unsafe pickle",
    "no checkpoint.pt",
    "missing",
]


@pytest.mark.parametrize("case", CASES)
def test_sample_from_a_bad_checkpoint(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    ckpt_state: dict,
    case: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder, fragment = _bad_checkpoints(tmp_path / "ckpts", ckpt_state)[case]
    monkeypatch.chdir(tmp_path)
    r = run_main(capsys, "sample", folder, "--out", tmp_path / "grid.png")
    line = assert_one_error(r, fragment)
    assert "weights_only" not in r.err and "this ran code" not in r.out + r.err, line
    assert not (tmp_path / "grid.png").exists()


# -- sample: options ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--nrow", "0"], "--nrow"),
        (["--n", "0"], "--n"),
        (["--n", "-5"], "--n"),
        (["--n", "1000000"], "--n"),
        (["--steps", "0"], "--steps"),
        (["--seed", "-1"], "--seed"),
        (["--seed", "99999999999999999999"], "--seed"),
        (["--out", "grid.xyz"], ".xyz"),
        (["--out", "grid"], "no suffix"),
        (["--class", "Spaceship"], "unknown class"),
    ],
)
def test_sample_bad_options(
    capsys: pytest.CaptureFixture[str],
    tiny_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    fragment: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_one_error(run_main(capsys, "sample", tiny_run, *args), fragment)
    assert list(tmp_path.iterdir()) == []


def test_sample_out_is_a_folder(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, tmp_path: Path
) -> None:
    assert_one_error(run_main(capsys, "sample", tiny_run, "--out", tmp_path), "is a folder")


def test_sample_into_a_read_only_folder(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, tmp_path: Path
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    with read_only(ro):
        r = run_main(capsys, "sample", tiny_run, "--out", ro / "grid.png")
        assert_one_error(r, "grid.png")
    assert list(ro.iterdir()) == []


def test_sample_replaces_an_existing_grid_whole(
    capsys: pytest.CaptureFixture[str], tiny_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "grid.png"
    out.write_bytes(b"old")
    r = run_main(capsys, "sample", tiny_run, "--out", out, "--n", "16", "--nrow", "4")
    assert r.code == 0, r.err
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]  # no temp file left
