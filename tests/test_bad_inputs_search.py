"""``fashion-tune search`` on bad input: one ``error:`` line, no traceback, nothing written.

Every case runs through the real entry point (``main(argv)`` in this process) both with
``--dry-run`` and without: each mistake must be caught before Ray starts, so neither
leaves an experiment folder (no ``tuner.pkl`` blocking the name). Two tests start Ray:
a search that fails after its Tuner was made must not block its name, and a trial that
no node of a live cluster can hold fails the search with one line naming the resource.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import SPACES
from ray.tune import Callback

from fashion_tune import experiment_layout as layout
from tests.cli_helpers import assert_one_error, run_main

TINY = yaml.safe_load((SPACES / "tiny.yaml").read_text())


def _write_space(tmp: Path, text: str) -> Path:
    """tests/spaces/tiny.yaml with top-level settings replaced by ``text`` (raw YAML)."""
    doc = dict(TINY)
    doc.update(yaml.safe_load(text) or {})
    path = tmp / "space.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))  # .inf / .nan stay .inf / .nan
    return path


def _nothing_written(storage: Path) -> None:
    leftovers = list(storage.rglob("*")) if storage.exists() else []
    assert leftovers == [], leftovers
    assert not list(storage.parent.rglob(layout.TUNER_FILE))


def _search(capsys: Any, space: Path | str, data: Path, storage: Path, *args: str, dry: bool):
    argv = ["search", str(space), "--data", str(data), "--storage", str(storage), *args]
    return run_main(capsys, *argv, *(["--dry-run"] if dry else []))


DRY = pytest.mark.parametrize("dry", [True, False], ids=["dry-run", "run"])

# (YAML replacing top-level settings, fragments of the one error line)
SPACE_CASES = {
    "searcher-as-string": ("searcher: optuna", ["searcher", "expected a mapping", "'optuna'"]),
    "scheduler-as-string": ("scheduler: asha", ["scheduler", "expected a mapping", "'asha'"]),
    "objective-as-string": ("objective: fd", ["objective", "expected a mapping"]),
    "num-samples-word": ("num_samples: many", ["num_samples", "integer", "'many'"]),
    "num-samples-zero": ("num_samples: 0", ["num_samples", ">= 1"]),
    "seed-negative": ("searcher: {type: optuna, seed: -1}", ["searcher.seed", ">= 0"]),
    "seed-huge": ("searcher: {seed: 99999999999999}", ["searcher.seed", "<="]),
    "when-as-list": (
        "params: {loss.lambda_sym: {uniform: [0.1, 1], when: [loss.symmetry, pixel]}}",
        ["params.loss.lambda_sym.when", "expected a mapping"],
    ),
    "bound-inf": (
        "params: {optim.lr_g: {uniform: [1.0e-4, .inf]}}",
        ["params.optim.lr_g.uniform[1]", "finite"],
    ),
    "bound-nan": (
        "params: {optim.lr_g: {loguniform: [.nan, 1.0e-3]}}",
        ["params.optim.lr_g.loguniform[0]", "finite"],
    ),
    "choice-empty": ("params: {model.arch: {choice: }}", ["params.model.arch", "choice needs"]),
    "when-empty": (
        "params: {loss.lambda_sym: {uniform: [0.1, 1], when: {loss.symmetry: []}}}",
        ["params.loss.lambda_sym", "at least one value"],
    ),
    "num-samples-huge": ("num_samples: 123456789012345678901234567890", ["num_samples", "large"]),
    "bound-word": ("params: {optim.lr_g: {uniform: [low, 1]}}", ["uniform[0]", "'low'"]),
    "max-concurrent-negative": ("max_concurrent: -1", ["max_concurrent", ">= 0"]),
    "reduction-factor-nan": (
        "scheduler: {type: asha, grace_kimg: 0.064, reduction_factor: .nan}",
        ["scheduler.reduction_factor", "finite"],
    ),
    "reduction-factor-one": (
        "scheduler: {type: asha, grace_kimg: 0.064, reduction_factor: 1}",
        ["scheduler.reduction_factor", "> 1"],
    ),
    "point-outside-range": (
        "points: [{model.arch: dcgan, optim.lr_g: 0.5, loss.symmetry: none}]",
        ["points[0].optim.lr_g", "outside"],
    ),
    "point-not-a-choice": (
        "points: [{model.arch: vit}]",
        ["points[0].model.arch", "not one of"],
    ),
    "fixed-nan": ("fixed: {optim.lr_d: .nan}", ["fixed.optim.lr_d", "finite"]),
    "resources-as-number": ("resources: 2", ["resources", "expected a mapping"]),
    "resources-cpu-nan": ("resources: {cpu: .nan}", ["resources.cpu", "finite"]),
    "name-escapes-storage": ("name: ../../x", ["name", "'../../x'"]),
    "unknown-top-key": ("paramz: {}", ["paramz", "unknown setting"]),
}


@DRY
@pytest.mark.parametrize("case", list(SPACE_CASES))
def test_bad_space_file(
    capsys: Any, tmp_path: Path, fmnist_small: Path, case: str, dry: bool
) -> None:
    text, fragments = SPACE_CASES[case]
    space = _write_space(tmp_path, text)
    r = _search(capsys, space, fmnist_small, tmp_path / "results", dry=dry)
    assert_one_error(r, str(space), *fragments)
    _nothing_written(tmp_path / "results")


def test_space_file_that_cannot_be_read(capsys: Any, tmp_path: Path, fmnist_small: Path) -> None:
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: café\n".encode("latin-1"))
    folder = tmp_path / "a-folder.yaml"
    folder.mkdir()
    empty_list = tmp_path / "list.yaml"
    empty_list.write_text("- a\n- b\n")
    for path, frag in [(latin1, "UTF-8"), (folder, "folder"), (empty_list, "mapping")]:
        r = _search(capsys, path, fmnist_small, tmp_path / "results", dry=False)
        assert_one_error(r, str(path), frag)
    _nothing_written(tmp_path / "results")


@pytest.fixture
def truncated_set(fmnist_small: Path, tmp_path: Path) -> Path:
    """A copy of the small shard set whose first shard lost its tail."""
    copy = tmp_path / "damaged-set"
    shutil.copytree(fmnist_small, copy)
    shard = sorted(copy.glob("shard-*.arrow"))[0]
    shard.write_bytes(shard.read_bytes()[:1000])
    return copy


# (command-line options, fragments); "{data}" is replaced by a real shard set
OPTION_CASES: dict[str, tuple[list[str], list[str]]] = {
    "max-failures-negative": (["--max-failures", "-7"], ["--max-failures", "-7"]),
    "name-parent": (["--name", "../../x"], ["experiment name", "'../../x'"]),
    "name-slash": (["--name", "a/b"], ["experiment name", "separator"]),
    "name-empty": (["--name", ""], ["experiment name", "empty"]),
    "name-hidden": (["--name", ".hidden"], ["experiment name", "'.hidden'"]),
    "name-dotdot": (["--name", ".."], ["experiment name", "'..'"]),
    "cpus-too-many": (["--cpus-per-trial", "4096"], ["4096 CPU", "this machine"]),
    "cpus-nan": (["--cpus-per-trial", "nan"], ["resources.cpu", "--cpus-per-trial", "finite"]),
    "gpus-negative": (["--gpus-per-trial", "-1"], ["resources.gpu", ">= 0"]),
    "num-samples-zero": (["--num-samples", "0"], ["num_samples", "--num-samples", ">= 1"]),
    "max-concurrent-negative": (["--max-concurrent", "-1"], ["max_concurrent", ">= 0"]),
    "address-malformed": (["--address", "not-an-address"], ["--address", "HOST:PORT"]),
    "resume-nothing": (["--resume"], ["no experiment to resume"]),
}


@DRY
@pytest.mark.parametrize("case", list(OPTION_CASES))
def test_bad_option(capsys: Any, tmp_path: Path, fmnist_small: Path, case: str, dry: bool) -> None:
    args, fragments = OPTION_CASES[case]
    r = _search(capsys, SPACES / "tiny.yaml", fmnist_small, tmp_path / "results", *args, dry=dry)
    assert_one_error(r, *fragments)
    _nothing_written(tmp_path / "results")


@pytest.mark.skipif(bool(os.environ.get("CUDA_VISIBLE_DEVICES")), reason="a GPU may be here")
def test_gpus_on_a_machine_without_one(capsys: Any, tmp_path: Path, fmnist_small: Path) -> None:
    import torch

    if torch.cuda.device_count():
        pytest.skip("this machine has a GPU")
    args = ["--gpus-per-trial", "1"]
    r = _search(capsys, SPACES / "tiny.yaml", fmnist_small, tmp_path / "results", *args, dry=True)
    assert_one_error(r, "1 GPU", "this machine")


@DRY
def test_bad_data_and_storage(
    capsys: Any, tmp_path: Path, fmnist_small: Path, truncated_set: Path, dry: bool
) -> None:
    storage = tmp_path / "results"
    cases = [
        (tmp_path / "nowhere", storage, ["nowhere"]),
        (tmp_path, storage, ["not a shard set"]),
        (truncated_set, storage, ["shard-00000.arrow", "1000 bytes"]),
    ]
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases.append((fmnist_small, a_file / "results", ["--storage", "is a file"]))
    for data, store, fragments in cases:
        r = _search(capsys, SPACES / "tiny.yaml", data, store, dry=dry)
        assert_one_error(r, *fragments)
    _nothing_written(storage)


def test_address_that_does_not_answer_fails_fast(
    capsys: Any, tmp_path: Path, fmnist_small: Path
) -> None:
    start = time.monotonic()
    args = ["--address", "127.0.0.1:1"]
    r = _search(capsys, SPACES / "tiny.yaml", fmnist_small, tmp_path / "results", *args, dry=False)
    assert_one_error(r, "cannot reach the Ray cluster", "127.0.0.1:1")
    assert time.monotonic() - start < 60
    _nothing_written(tmp_path / "results")


def test_address_of_something_that_is_not_ray_fails_fast(
    capsys: Any, tmp_path: Path, fmnist_small: Path
) -> None:
    """An SSH-like service on the port: Ray would retry it for ever."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = server.accept()
                with conn:
                    conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    threading.Thread(target=serve, daemon=True).start()
    start = time.monotonic()
    try:
        for dry in (True, False):
            args = ["--address", f"127.0.0.1:{port}"]
            store = tmp_path / "results"
            r = _search(capsys, SPACES / "tiny.yaml", fmnist_small, store, *args, dry=dry)
            assert_one_error(r, "not a Ray head", f"127.0.0.1:{port}")
    finally:
        server.close()
    assert time.monotonic() - start < 60
    _nothing_written(tmp_path / "results")


# -- with Ray: a half-made experiment, and trials no node can hold --------------------------


class FailAtStart(Callback):
    """Raises when the search starts: after Tuner() wrote tuner.pkl, before any trial ran."""

    def setup(self, **info: Any) -> None:
        raise RuntimeError("injected failure at the start of the search")


def test_failed_start_does_not_block_the_name(fmnist_small: Path, tmp_path: Path) -> None:
    import ray

    from fashion_tune.search.preflight import check_experiment
    from fashion_tune.search.space import load_space
    from fashion_tune.search.tuner import SearchOptions, run_search

    storage = tmp_path / "results"
    opts = SearchOptions(
        storage=str(storage), data=str(fmnist_small), callbacks=(FailAtStart(),), verbose=0
    )
    try:
        with pytest.raises(RuntimeError, match="injected failure"):
            run_search(load_space(SPACES / "tiny.yaml", num_samples=1), opts)
    finally:
        ray.shutdown()
    assert not (storage / "tiny" / layout.TUNER_FILE).exists()
    check_experiment(str(storage / "tiny"), resume=False)  # the name is free again


def test_trial_no_node_can_hold_fails_with_one_line(
    capsys: Any, fmnist_small: Path, tmp_path: Path
) -> None:
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        args = ["--address", cluster.address, "--cpus-per-trial", "2"]
        r = _search(
            capsys, SPACES / "tiny.yaml", fmnist_small, tmp_path / "results", *args, dry=False
        )
        assert_one_error(r, "2 CPU", "the Ray cluster", "--autoscaling")
        _nothing_written(tmp_path / "results")
    finally:
        ray.shutdown()
        cluster.shutdown()
