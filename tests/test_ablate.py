"""Ablation end to end on real Ray: a tiny search whose space ablates ``loss.symmetry`` from
the literature default with 2 seeds, ``fashion-tune ablate`` resuming without training
twice, its bad inputs (one error line, nothing written), and the report's section."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import run_cli, tiny_overrides

from fashion_tune.report.ablate import KEY_REPLICA, KEY_VALUE
from tests.cli_helpers import assert_one_error, run_main

TINY = {**tiny_overrides(Path()), "model.arch": "dcgan", "schedule.total_kimg": 0.064}
del TINY["data.path"]
FOLDER = "ablate_default_loss.symmetry"
VARY = "loss.symmetry=none,pixel"


@pytest.fixture(scope="module")
def ablated(tmp_path_factory: pytest.TempPathFactory, fmnist_small: Path) -> Path:
    """A 2-trial FIFO search whose space ablates the symmetry loss of its default (none vs
    pixel at weight 0.5) with 2 seeds, each run to 0.128 kimg (2 ticks): 4 more trials."""
    tmp = tmp_path_factory.mktemp("ablate")
    space = {
        "name": "abl",
        "fixed": TINY,
        "params": {"optim.lr_g": {"loguniform": [1.0e-4, 2.0e-3]}},
        "points": [{"optim.lr_g": 2.0e-4}],
        "scheduler": {"type": "fifo"},
        "ablate": {
            "vary": {"loss.symmetry": ["none", "pixel"]},
            "seeds": 2,
            "base": "default",
            "set": {"loss.lambda_sym": 0.5},
            "kimg": 0.128,
        },
        "num_samples": 2,
        "max_concurrent": 2,
        "resources": {"cpu": 1, "gpu": 0},
    }
    path = tmp / "abl.yaml"
    path.write_text(yaml.safe_dump(space))
    proc = run_cli(
        "search", str(path), "--data", str(fmnist_small), "--storage", str(tmp / "results"),
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return tmp / "results" / "abl"


def _runs(folder: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for d in sorted(folder.glob("trial_*")):
        out[d.name] = {
            "params": json.loads((d / "params.json").read_text()),
            "config": json.loads((d / "config.json").read_text()),
            "rows": [json.loads(x) for x in (d / "result.json").read_text().splitlines()],
        }
    return out


def test_each_value_trains_with_the_same_fresh_seeds(ablated: Path) -> None:
    plan = json.loads((ablated / FOLDER / "fashion_tune_ablate.json").read_text())
    assert plan["values"] == ["none", "pixel"] and plan["base"] == "default"
    runs = _runs(ablated / FOLDER)
    assert len(runs) == 4
    seeds: dict[int, set[int]] = {}
    for r in runs.values():
        cfg, params = r["config"], r["params"]
        value = plan["values"][params[KEY_VALUE]]
        assert cfg["loss"]["symmetry"] == value
        # none turns its weight off; pixel takes --set's weight; the base's lr stays
        assert cfg["loss"]["lambda_sym"] == (0.0 if value == "none" else 0.5)
        assert cfg["optim"]["lr_g"] == pytest.approx(2.0e-4)
        assert cfg["schedule"]["total_kimg"] == pytest.approx(0.128)
        assert [row["tick"] for row in r["rows"]] == [1, 2]
        seeds.setdefault(params[KEY_REPLICA], set()).add(cfg["runtime"]["seed"])
    # replica j of every value has seed j, and the search used none of them
    assert all(len(s) == 1 for s in seeds.values()) and len(seeds) == 2
    search_seeds = {json.loads((d / "config.json").read_text())["runtime"]["seed"]
                    for d in ablated.glob("trial_*")}  # fmt: skip
    assert not search_seeds & {s for v in seeds.values() for s in v}


def test_ablate_again_trains_nothing_and_another_plan_is_refused(
    ablated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = sorted((ablated / FOLDER).glob("trial_*/result.json"))
    before = {p: p.stat().st_mtime_ns for p in results}
    proc = run_cli(  # a relative path, as a user types it (Ray wants absolute ones)
        "ablate", ablated.name, "--vary", VARY, "--seeds", "2", "--base", "default",
        "--kimg", "0.128", cwd=ablated.parent, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in results} == before  # nothing trained again
    said = " ".join(proc.stdout.split())
    assert "2 values x 2 seeds = 4 runs" in said and "pixel vs none" in said

    r = run_main(capsys, "ablate", str(ablated), "--vary", VARY, "--seeds", "3",
                 "--base", "default")  # fmt: skip
    assert_one_error(r, "already holds an ablation of loss.symmetry", "move that folder")


def test_report_shows_the_ablation(ablated: Path, tmp_path: Path) -> None:
    from fashion_tune.report import build_report

    report = build_report(str(ablated), tmp_path / "rep", top_k=1)
    (abl,) = report.ablations
    assert abl.missing == 0 and [v.value for v in abl.values] == ["none", "pixel"]
    pixel = abl.values[1]
    assert pixel.vs_base is not None and pixel.vs_base.n == 2
    assert pixel.sentence.startswith("pixel vs none")
    html = (tmp_path / "rep" / "index.html").read_text()
    md = (tmp_path / "rep" / "report.md").read_text()
    assert 'id="ablation"' in html and "## Ablation" in md
    assert pixel.sentence.split(":")[0] in html and pixel.sentence.split(":")[0] in md
    for v in abl.values:
        assert v.stats is not None and f"{v.stats.mean:.4g}" in html
    figs = report.ablation_figures[0]
    for key in ("paired", "speed"):
        assert figs[key] and (tmp_path / "rep" / figs[key]).stat().st_size > 1000
    assert [p for _, p in figs["samples"]] and all(
        (tmp_path / "rep" / p).is_file() for _, p in figs["samples"] if p
    )
    doc = json.loads((tmp_path / "rep" / "leaderboard.json").read_text())
    (d,) = doc["ablations"]
    assert d["key"] == "loss.symmetry" and len(d["values"][1]["runs"]) == 2


def test_bad_inputs_are_one_error_line(
    ablated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ablated, copy, ignore=shutil.ignore_patterns("ablate_*"))
    cases = [
        (["--vary", "loss.symmetri=none,pixel"], "unknown config key", "did you mean"),
        (["--vary", "loss.symmetry"], "is not KEY=V1,V2"),
        (["--vary", "loss.symmetry=none,mirror"], "loss.symmetry=mirror"),
        (["--vary", "runtime.seed=1,2"], "the seeds are what an ablation pairs over"),
        (["--vary", VARY, "--seeds", "1"], "--seeds must be in [2, 100]"),
        (["--vary", VARY, "--base", "worst"], "--base must be one of best, default"),
        (["--vary", VARY, "--kimg", "nan"], "--kimg must be a positive number"),
        (["--vary", VARY, "--kimg", "-1"], "--kimg must be a positive number"),
        (["--vary", VARY, "--base", "default"], "loss.symmetry=pixel needs a weight",
         "--set loss.lambda_sym=W"),
        (["--vary", VARY, "--set", "loss.symmetry=pixel"], "is the varied setting"),
        (["--vary", "loss.symmetry=none", "--base", "default"], "no value other than the base"),
        (["--vary", VARY, "--set", "loss.lambda_sym=-1"], "loss.lambda_sym"),
    ]  # fmt: skip
    for args, *frags in cases:
        r = run_main(capsys, "ablate", str(copy), *args)
        assert_one_error(r, *frags)
    r = run_main(capsys, "ablate", str(tmp_path / "nope"), "--vary", VARY)
    assert_one_error(r, "does not exist")
    assert not list(copy.glob("ablate_*"))  # nothing was written by any of them


def test_space_ablate_section_is_checked_at_load(tmp_path: Path) -> None:
    from fashion_tune.errors import ConfigError
    from fashion_tune.search.space import load_space

    base = {
        "fixed": TINY,
        "params": {"optim.lr_g": {"loguniform": [1.0e-4, 2.0e-3]}},
        "scheduler": {"type": "fifo"},
    }
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({**base, "ablate": [
        {"vary": {"loss.symmetry": ["none", "pixel"]}, "set": {"loss.lambda_sym": 0.1}},
        {"vary": {"model.arch": ["dcgan", "resnet"]}, "base": "default", "seeds": 3},
    ]}))  # fmt: skip
    space = load_space(str(ok))
    assert [(a.key, a.values, a.base, a.seeds) for a in space.ablate] == [
        ("loss.symmetry", ("none", "pixel"), "best", 5),
        ("model.arch", ("dcgan", "resnet"), "default", 3),
    ]
    for section, frag in (
        ({"vary": {"loss.symmetri": ["none"]}}, "did you mean"),
        ({"vary": {"loss.symmetry": ["none"], "model.arch": ["dcgan"]}}, "one setting"),
        ({"vary": {"loss.symmetry": ["none", "pixel"]}, "seeds": 1}, "seeds"),
        ({"vary": {"loss.symmetry": ["none", "pixel"]}, "base": "worst"}, "base"),
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump({**base, "ablate": section}))
        with pytest.raises(ConfigError, match="ablate") as info:
            load_space(str(bad))
        assert frag in str(info.value)
