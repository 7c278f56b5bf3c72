"""TrialLogKeeper: a (re)starting trial's logs in storage end at the checkpoint it resumes from.

Real Ray ``Trial`` objects with real storage contexts on an embedded Ray; the callback is
called as Ray's controller calls it, before Ray's own loggers restore the files.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fashion_tune import experiment_layout as layout
from fashion_tune.search.callbacks import TrialLogKeeper


@pytest.fixture(scope="module")
def embedded_ray() -> Iterator[None]:
    import ray

    from fashion_tune.search.experiments import init_ray

    init_ray(None, num_cpus=1)
    yield
    ray.shutdown()


def _trial(storage: Path, tick: int | None, tmp: Path) -> tuple:
    from ray.train import Checkpoint
    from ray.train._internal.session import _TrainingResult
    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment import Trial

    ctx = StorageContext(storage_path=str(storage), experiment_dir_name="exp")
    trial = Trial("func", config={}, storage=ctx, trial_id="t0001", stub=True)
    trial.init_local_path()
    if tick is not None:
        ckpt = tmp / f"ckpt{tick}"
        ckpt.mkdir()
        trial.on_checkpoint(
            _TrainingResult(checkpoint=Checkpoint(str(ckpt)), metrics={"tick": tick})
        )
    remote = Path(trial.path)
    remote.mkdir(parents=True, exist_ok=True)
    return trial, remote, Path(trial.local_path)


def _write_logs(folder: Path, ticks: list[int]) -> None:
    rows = [{"tick": t, "fd": 1.0 / t, "training_iteration": i + 1} for i, t in enumerate(ticks)]
    (folder / layout.RESULT_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = io.StringIO()
    writer = csv.DictWriter(out, ["tick", "fd", "training_iteration"])
    writer.writeheader()
    writer.writerows(rows)
    (folder / layout.PROGRESS_FILE).write_text(out.getvalue())


def _ticks(folder: Path) -> tuple[list[int], list[int]]:
    rows = [json.loads(x) for x in (folder / layout.RESULT_FILE).read_text().splitlines()]
    csv_rows = list(csv.DictReader(io.StringIO((folder / layout.PROGRESS_FILE).read_text())))
    return [r["tick"] for r in rows], [int(r["tick"]) for r in csv_rows]


def _start(keeper: TrialLogKeeper, trial: object) -> None:
    keeper.on_trial_start(iteration=0, trials=[trial], trial=trial)


def test_after_a_driver_restart_rows_past_the_checkpoint_are_cut(
    embedded_ray: None, tmp_path: Path
) -> None:
    """Storage ran ahead of Ray's saved state: the trial resumes from tick 3, not 5."""
    storage = tmp_path / "results"
    trial, remote, local = _trial(storage, tick=3, tmp=tmp_path)
    _write_logs(remote, [1, 2, 3, 4, 5])
    if local.exists():  # a new driver has no staged copy
        for name in (layout.RESULT_FILE, layout.PROGRESS_FILE):
            (local / name).unlink(missing_ok=True)
    _start(TrialLogKeeper(str(storage / "exp")), trial)
    assert _ticks(remote) == ([1, 2, 3], [1, 2, 3])


def test_within_a_driver_the_newer_staged_rows_are_kept(embedded_ray: None, tmp_path: Path) -> None:
    """Paused at a rung after tick 4, promoted before the next state write."""
    storage = tmp_path / "results"
    trial, remote, local = _trial(storage, tick=4, tmp=tmp_path)
    _write_logs(remote, [1, 2])  # the last sync
    local.mkdir(parents=True, exist_ok=True)
    _write_logs(local, [1, 2, 3, 4])
    _start(TrialLogKeeper(str(storage / "exp")), trial)
    assert _ticks(remote) == ([1, 2, 3, 4], [1, 2, 3, 4])
    assert _ticks(local) == ([1, 2, 3, 4], [1, 2, 3, 4])


def test_a_trial_without_a_checkpoint_starts_its_logs_over(
    embedded_ray: None, tmp_path: Path
) -> None:
    """No checkpoint: it trains from tick 1 again, and Ray's loggers append to the staged
    copy without restoring it, so both copies are emptied."""
    storage = tmp_path / "results"
    trial, remote, local = _trial(storage, tick=None, tmp=tmp_path)
    _write_logs(remote, [1, 2])
    local.mkdir(parents=True, exist_ok=True)
    _write_logs(local, [1, 2])
    _start(TrialLogKeeper(str(storage / "exp")), trial)
    for folder in (remote, local):
        assert (folder / layout.RESULT_FILE).read_bytes() == b""
        assert (folder / layout.PROGRESS_FILE).read_bytes() == b""


def test_a_finished_trial_keeps_its_rows(embedded_ray: None, tmp_path: Path) -> None:
    """The ledger has it: it replays its final result instead of training, rows stay."""
    storage = tmp_path / "results"
    trial, remote, _ = _trial(storage, tick=2, tmp=tmp_path)
    _write_logs(remote, [1, 2, 3, 4, 5])
    ledger = storage / "exp" / layout.LEDGER_DIR
    ledger.mkdir(parents=True)
    (ledger / layout.ledger_entry_name("t0001")).write_text('{"result": {}}')
    _start(TrialLogKeeper(str(storage / "exp")), trial)
    assert _ticks(remote) == ([1, 2, 3, 4, 5], [1, 2, 3, 4, 5])


def test_a_row_cut_short_by_a_kill_is_dropped(embedded_ray: None, tmp_path: Path) -> None:
    storage = tmp_path / "results"
    trial, remote, _ = _trial(storage, tick=5, tmp=tmp_path)
    _write_logs(remote, [1, 2])
    with open(remote / layout.RESULT_FILE, "a") as f:
        f.write('{"tick": 3, "fd": 0.')
    _start(TrialLogKeeper(str(storage / "exp")), trial)
    assert _ticks(remote) == ([1, 2], [1, 2])
