"""The metric sanity suite on real Fashion-MNIST: the objective must rank controlled
distortions (collapse, blur, noise, copies, class means, shuffled labels) as a person would,
and the fidelity / diversity metrics must move the right way. Also: the metric reference
(made once, checked by hash) and `fashion-tune evaluate`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fashion_tune.data.reader import ShardSet
from fashion_tune.metrics import reference
from fashion_tune.metrics.names import OBJECTIVE
from fashion_tune.metrics.sanity import sanity_images, sanity_table
from tests.conftest import assert_one_line_error, run_cli


@pytest.fixture(scope="module")
def table(fmnist32_ref: Path) -> dict[str, dict]:
    shards = ShardSet(fmnist32_ref)
    ref = reference.load(str(fmnist32_ref), shards)
    return sanity_table(shards, ref, n=1000)


def test_objective_ranks_the_distortions_as_a_person_would(table: dict) -> None:
    fd = {case: scores[OBJECTIVE] for case, scores in table.items()}
    # fd is unconditional: shuffled labels are for the per-class metrics (below)
    defects = [
        c for c in fd if c not in ("held-out reals", "training-set copies", "labels shuffled")
    ]
    assert all(fd["held-out reals"] < fd[c] for c in defects), fd
    assert fd["training-set copies"] < min(fd[c] for c in defects), fd
    # total collapse is worse than a barely blurred or noisy copy of the data
    assert fd["1 per class"] > fd["blur 3x3"] and fd["1 per class"] > fd["noise 0.1"], fd
    # and collapse is graded: fewer distinct garments, worse
    assert fd["1 per class"] > fd["4 per class"] > fd["16 per class"] > fd["held-out reals"]
    assert fd["4 per class"] > 3 * fd["held-out reals"], fd
    assert fd["blur 5x5"] > fd["blur 3x3"] and fd["noise 0.3"] > fd["noise 0.1"], fd


def test_kid_sees_collapse_too(table: dict) -> None:
    """kid (a side metric) must at least tell total collapse from real garments."""
    kid = {case: scores["kid"] for case, scores in table.items()}
    assert kid["1 per class"] > kid["held-out reals"] + 0.05, kid


def test_recall_sees_collapse_and_precision_sees_blur_and_noise(table: dict) -> None:
    real = table["held-out reals"]
    for case in ("1 per class", "4 per class", "16 per class"):
        assert table[case]["recall"] < 0.5 * real["recall"], (case, table[case])
        assert table[case]["coverage"] < 0.5 * real["coverage"], (case, table[case])
        assert table[case]["precision"] > 0.8 * real["precision"], (case, table[case])
    for case in ("blur 3x3", "blur 5x5", "noise 0.3", "class means"):
        assert table[case]["precision"] < real["precision"], (case, table[case])
    for case in ("blur 3x3", "blur 5x5", "noise 0.1", "noise 0.3"):
        assert table[case]["density"] < 0.95 * real["density"], (case, table[case])
    # conditional sets: an image of the wrong class is no fidelity at all
    assert table["labels shuffled"]["precision"] < 0.5 * real["precision"]
    assert 0.8 < real["precision"] <= 1 and 0.8 < real["recall"] <= 1


def test_diversity_and_symmetry_do_not_reward_collapse(table: dict) -> None:
    real = table["held-out reals"]
    assert 0.85 < real["diversity"] < 1.15
    assert table["1 per class"]["diversity"] < 0.05
    assert table["4 per class"]["diversity"] < 0.9 * real["diversity"]
    # sym_gap calls blurred and averaged garments "more symmetric" (better); sym_excess can
    # gain at most the reals' own small excess (sampling noise) by being too symmetric
    for case in ("blur 3x3", "blur 5x5", "class means"):
        assert real["sym_gap"] - table[case]["sym_gap"] > 0.2, (case, table[case])
        assert real["sym_excess"] - table[case]["sym_excess"] <= 0.05, (case, table[case])
    assert table["1 per class"]["sym_excess"] >= real["sym_excess"] - 0.05


def test_reference_is_hashed_checked_and_never_trained_by_a_trial(
    fmnist_small: Path, tmp_path: Path
) -> None:
    shards = ShardSet(fmnist_small)
    index = reference.read_index(reference.reference_store(str(fmnist_small)))
    assert index is not None and len(index["hash"]) == 16
    # already made: ensure() loads, it does not train again
    loc, again, built = reference.ensure(str(fmnist_small), log=lambda _: None)
    assert not built and again["hash"] == index["hash"] and loc == str(fmnist_small)
    assert reference.load(loc, shards).hash == index["hash"]
    # a tampered file is refused by its checksum, naming the command that makes it
    copy = tmp_path / "ref"
    store = reference.reference_store(str(copy))
    src = reference.reference_store(str(fmnist_small))
    for name in ("featnet.pt", "stats.npz", "reference.json"):
        store.write_atomic(name, src.read_bytes(name))
    blob = bytearray(store.read_bytes("stats.npz"))
    blob[-100] ^= 0xFF
    store.write_atomic("stats.npz", bytes(blob))
    with pytest.raises(Exception, match="checksum.*fashion-tune data reference"):
        reference.load(str(copy), shards)
    # a set without one: a trial refuses to score rather than train a metric net
    from fashion_tune.config import TrialConfig
    from fashion_tune.training import train
    from tests.conftest import tiny_overrides

    cfg = TrialConfig().with_overrides(
        tiny_overrides(fmnist_small, **{"metrics.reference": str(tmp_path / "nowhere")})
    )
    with pytest.raises(Exception, match="no metric reference.*fashion-tune data reference"):
        train(cfg, tmp_path / "run", log=lambda _: None)


def _write_pngs(folder: Path, images: np.ndarray, labels: np.ndarray | None, classes: list[str]):
    for i, img in enumerate(images):
        # a class folder is the class name, '/' written as '_' ("T-shirt/top" -> "T-shirt_top")
        sub = folder / classes[labels[i]].replace("/", "_") if labels is not None else folder
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0]).save(sub / f"{i:05d}.png")


def test_evaluate_a_folder_of_images_and_a_checkpoint(fmnist_small: Path, tmp_path: Path) -> None:
    shards = ShardSet(fmnist_small)
    held, held_y, _, _ = sanity_images(shards, n=300)
    _write_pngs(tmp_path / "reals", held, held_y, shards.classes)
    out = tmp_path / "scores.json"
    proc = run_cli(
        "evaluate", str(tmp_path / "reals"), "--data", str(fmnist_small),
        "--num-samples", "300", "--json", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["reference"] in proc.stdout and doc["num_samples"] == 300
    assert doc["precision"] > 0.5 and doc["diversity"] > 0.7 and doc["fd"] < 2
    # collapsed images: same folder layout, one garment per class -> recall ~0, fd worse
    collapsed = held.copy()
    for c in np.unique(held_y):
        collapsed[held_y == c] = held[np.flatnonzero(held_y == c)[0]]
    _write_pngs(tmp_path / "collapsed", collapsed, held_y, shards.classes)
    out2 = tmp_path / "collapsed.json"
    proc = run_cli(
        "evaluate", str(tmp_path / "collapsed"), "--data", str(fmnist_small),
        "--num-samples", "300", "--json", str(out2),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    bad = json.loads(out2.read_text())
    assert bad["fd"] > 3 * doc["fd"] and bad["recall"] < 0.1 and bad["diversity"] < 0.05
    # a checkpoint: a tiny trial's, scored with its own metric settings
    from tests.conftest import tiny_overrides

    sets = [f"--set={k}={v}" for k, v in tiny_overrides(fmnist_small).items()]
    proc = run_cli("trial", *sets, "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("evaluate", str(tmp_path / "run"), "--data", str(fmnist_small))
    assert proc.returncode == 0, proc.stderr
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["metric_ref"] in proc.stdout  # the same ruler a trial reports


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda d: d.mkdir(), "holds 0 images"),
        (lambda d: _one(d, (16, 16), "L"), "is 16x16 px"),
        (lambda d: _one(d, (32, 32), "RGB"), "3 channel"),
        (lambda d: _garbage(d), "cannot read image"),
        (lambda d: _one(d / "NoSuchClass", (32, 32), "L"), "name no class"),
    ],
)
def test_evaluate_bad_inputs_are_one_line(
    fmnist_small: Path, tmp_path: Path, make, fragment: str
) -> None:
    folder = tmp_path / "imgs"
    make(folder)
    n = ["--num-samples", "16"] if fragment != "holds 0 images" else []
    proc = run_cli("evaluate", str(folder), "--data", str(fmnist_small), *n)
    if fragment == "holds 0 images":  # an empty folder is no image folder and no checkpoint
        assert_one_line_error(proc, "checkpoint")
    else:
        assert_one_line_error(proc, fragment)


def _garbage(folder: Path) -> None:
    folder.mkdir()
    for i in range(20):
        (folder / f"{i}.png").write_bytes(b"not a png")


def _one(folder: Path, size: tuple[int, int], mode: str) -> None:
    folder.mkdir(parents=True)
    for i in range(20):
        Image.new(mode, size).save(folder / f"{i}.png")
