"""Search-space YAML: the shipped spaces load; every bad input names the file, key and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fashion_tune.errors import ConfigError
from fashion_tune.search.space import load_space

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "search_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_spaces_are_valid(path: Path) -> None:
    space = load_space(path)
    assert space.params and space.num_samples >= 1
    for seed in range(5):
        cfg = space.config_for(space.sample(seed))
        assert cfg.schedule.total_kimg == space.max_kimg or space.scheduler.max_kimg
    if space.points:
        space.first_config()


def test_conditional_parameter_only_when_its_condition_holds() -> None:
    space = load_space(ROOT / "search_spaces" / "quick.yaml")
    points = [space.sample(s) for s in range(40)]
    for pt in points:
        assert ("loss.lambda_sym" in pt) == (pt["loss.symmetry"] != "none")
    assert any("loss.lambda_sym" in pt for pt in points)
    assert any("loss.lambda_sym" not in pt for pt in points)


GOOD = {
    "fixed": {"schedule.total_kimg": 4},
    "params": {"optim.lr_g": {"loguniform": [1e-4, 1e-3]}},
}


@pytest.mark.parametrize(
    ("patch", "fragments"),
    [
        ({"paramz": {}}, ["paramz", "unknown setting"]),
        (
            {"params": {"optim.lr_gg": {"uniform": [0, 1]}}},
            ["params.optim.lr_gg", "not a trial config key"],
        ),
        ({"params": {"optim.lr_g": {"uniform": [1e-3, 1e-4]}}}, ["params.optim.lr_g", "below"]),
        ({"params": {"optim.lr_g": {"loguniform": [0, 1e-3]}}}, ["params.optim.lr_g", "low > 0"]),
        ({"params": {"optim.lr_g": {"gauss": [0, 1]}}}, ["params.optim.lr_g", "exactly one of"]),
        ({"params": {"model.arch": {"choice": ["dcgan", "vit"]}}}, ["params.model.arch", "vit"]),
        ({"params": {"model.g_width": {"int": [8.5, 64]}}}, ["params.model.g_width", "integer"]),
        (
            {"params": {"loss.lambda_sym": {"uniform": [0.1, 1], "when": {"loss.sym": "pixel"}}}},
            ["when", "loss.sym"],
        ),
        (
            {
                "params": {
                    "loss.symmetry": {"choice": ["none", "pixel"]},
                    "loss.lambda_sym": {"uniform": [0.1, 1]},
                }
            },
            ["params", "lambda_sym", "when"],
        ),
        (  # safe_dump sorts keys: lambda_sym lands above the symmetry it depends on
            {
                "params": {
                    "loss.symmetry": {"choice": ["none", "pixel"]},
                    "loss.lambda_sym": {"uniform": [0.1, 1], "when": {"loss.symmetry": "pixel"}},
                }
            },
            ["params.loss.lambda_sym.when", "loss.symmetry", "list it first"],
        ),
        ({"fixed": {"schedule.total_kimg": "long"}}, ["fixed", "schedule.total_kimg"]),
        ({"fixed": {"optim.lr_g": 1e-4}}, ["params.optim.lr_g", "both fixed and searched"]),
        ({"points": [{"model.arch": "dcgan"}]}, ["points[0].model.arch", "not a searched"]),
        ({"objective": {"metric": "accuracy"}}, ["objective.metric", "accuracy"]),
        ({"scheduler": {"grace_kimg": 10}}, ["scheduler.grace_kimg", "max_kimg=4"]),
        ({"scheduler": {"type": "pbt"}}, ["scheduler.type", "pbt"]),
        ({"searcher": {"type": "hyperopt"}}, ["searcher.type", "hyperopt"]),
    ],
)
def test_bad_spaces_name_file_key_and_reason(
    tmp_path: Path, patch: dict, fragments: list[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**GOOD, **patch}))
    with pytest.raises(ConfigError) as info:
        load_space(path)
    msg = str(info.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    for frag in fragments:
        assert frag in msg, msg


def test_unreadable_spaces(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_space(tmp_path / "none.yaml")
    (tmp_path / "broken.yaml").write_text("params: {a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_space(tmp_path / "broken.yaml")


def test_choices_come_from_the_registries() -> None:
    """The config (and so every search space) accepts exactly what the registries build."""
    from fashion_tune import losses
    from fashion_tune.config import _choices
    from fashion_tune.models import registry

    choices = _choices()
    assert choices["model.arch"] == registry.archs()
    assert choices["model.d_norm"] == registry.NORMS
    assert choices["loss.gan"] == losses.GAN_LOSSES
    assert choices["loss.penalty"] == losses.PENALTIES
    assert choices["loss.symmetry"] == losses.SYMMETRY_VARIANTS
    with pytest.raises(ValueError, match="registry_names.MODEL_FAMILIES"):
        registry.register("vit", registry.Generator, registry.Discriminator)


def test_yaml_exponent_numbers_are_numbers(tmp_path: Path) -> None:
    """PyYAML reads 2e-4 (no dot) as a string; a space means the number."""
    path = tmp_path / "e.yaml"
    path.write_text(
        "fixed: {schedule.total_kimg: 4, optim.lr_d: 3e-4}\n"
        "params: {optim.lr_g: {loguniform: [1e-4, 1e-3]}}\n"
        "points: [{optim.lr_g: 2e-4}]\n"
    )
    space = load_space(path)
    assert space.fixed["optim.lr_d"] == 3e-4 and space.points[0]["optim.lr_g"] == 2e-4
    assert (space.params[0].low, space.params[0].high) == (1e-4, 1e-3)
