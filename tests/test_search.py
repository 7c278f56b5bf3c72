"""``fashion-tune search`` on real Ray: ASHA stops trials, Optuna hears PRUNED, faults are survived.

The fault tests follow Ray's own (``python/ray/tune/tests/test_cluster.py``,
``test_tuner_restore.py``): faults are injected from a Tune callback at a known tick
(kill -9 of a trial's worker, removal of a node of a ``ray.cluster_utils.Cluster``) or
by SIGKILL of the whole driver process, then the records are checked.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pickle
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CLI, ROOT, SPACES, assert_one_line_error, run_cli, tiny_overrides
from ray.tune import Callback

from fashion_tune.search.space import load_space
from fashion_tune.search.trainable import LEDGER_DIR

# the tests' tiny trial (data.path comes from --data), as a DCGAN
TINY = {**tiny_overrides(Path()), "model.arch": "dcgan"}
del TINY["data.path"]
HEALTHY = {"optim.lr_d": 2.0e-4, "optim.lr_g": 2.0e-4, "loss.gan": "ns", "model.d_norm": "spectral"}
DIVERGING = {"optim.lr_d": 1.0e30, "optim.lr_g": 1.0e30, "loss.gan": "wgan", "model.d_norm": "none"}


def _space_file(tmp: Path, name: str, total_kimg: float, **top: Any) -> Path:
    """A search space of the healthy and the diverging point (FIFO, run to the end)."""
    doc = {
        "name": name,
        "fixed": {**TINY, "schedule.total_kimg": total_kimg},
        "params": {k: {"choice": [HEALTHY[k], DIVERGING[k]]} for k in HEALTHY},
        "points": [HEALTHY, DIVERGING],
        "scheduler": {"type": "fifo"},
        "num_samples": 2,
        "max_concurrent": 2,
        "resources": {"cpu": 1, "gpu": 0},
        **top,
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _rows(trial_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]


def _ledger(exp: Path) -> dict[str, dict[str, Any]]:
    # glob of a missing folder is empty; a file being renamed into place is never partial
    return {p.stem: json.loads(p.read_text()) for p in sorted((exp / LEDGER_DIR).glob("*.json"))}


def _newest(exp: Path, pattern: str) -> str:
    """Ray writes a new state file per driver session (a resume adds one), named by its
    start time; the older ones are re-synced too, so only the name tells which is newest."""
    return max(glob.glob(str(exp / pattern)))


def _study(exp: Path) -> Any:
    """The Optuna study, from the journal file in the experiment folder."""
    from fashion_tune.search.searcher import load_study

    study = load_study(exp, exp.name)
    assert study is not None, f"no Optuna journal in {exp}"
    return study


def _scheduler(exp: Path) -> dict[str, Any]:
    """Promotion ASHA's records, as our callback saved them with Ray's experiment state."""
    path = _newest(exp, "callback-states-*.pkl")
    with open(path, "rb") as f:
        states = pickle.load(f)
    return next(s for s in states.values() if s and "promotion" in s)["promotion"]


def _rung_trials(exp: Path) -> set[str]:
    return {tid for rungs in _scheduler(exp)["rungs"] for rung in rungs for tid in rung}


# -- ASHA + Optuna on the shared tiny experiment --------------------------------------------


def test_promotion_asha_pauses_promotes_and_optuna_records_states(
    tiny_experiment: Path,
) -> None:
    search = json.loads((tiny_experiment / "fashion_tune_search.json").read_text())
    sch = search["scheduler"]
    assert sch["type"] == "asha" and sch["budget"] == "compute"
    ledger = _ledger(tiny_experiment)
    assert len(ledger) == 6
    progress = {tid: e["result"]["progress"] for tid, e in ledger.items()}
    stopped = {tid for tid, p in progress.items() if p < 1 - 1e-6}
    assert 0 < len(stopped) < 6, progress  # ASHA ended some at rungs, trained others fully

    # every report carries compute: training FLOPs in kimg of the reference config
    ref = sch["compute_ref"]["gflop_per_kimg"]
    for tid in ledger:
        for row in _rows(tiny_experiment / f"trial_{tid}"):
            assert row["compute"] == pytest.approx(row["gflop"] / ref)
    default = next(e for e in ledger.values() if e["config"] == search["points"][0])
    assert default["result"]["compute"] == pytest.approx(default["result"]["kimg"], rel=0.02)

    # the scheduler's log: pauses at rungs, promotions, and the prunes at the end; a
    # trial that went past a rung was promoted from it
    events = json.loads((tiny_experiment / "fashion_tune_scheduler.json").read_text())["events"]
    kinds = Counter(e["event"] for e in events)
    assert kinds["paused"] > 0 and kinds["promoted"] > 0, kinds
    assert {e["trial_id"] for e in events if e["event"] == "pruned"} == stopped
    promoted = {(e["trial_id"], e["rung"]) for e in events if e["event"] == "promoted"}
    state = _scheduler(tiny_experiment)
    for e in events:
        tid, k = e["trial_id"], e["rung"]
        if e["event"] == "paused" and (state["next"][tid] > k + 1 or tid not in stopped):
            assert (tid, k) in promoted, f"{tid} paused at rung {k}, went on unpromoted"

    # Optuna: PRUNED at the rung value (the mean of the last `smooth` fds), else COMPLETE
    study = _study(tiny_experiment)
    states = Counter(t.state.name for t in study.trials)
    assert states == {"PRUNED": len(stopped), "COMPLETE": 6 - len(stopped)}, states
    assert study.trials[0].params == search["points"][0]
    for t in study.trials:
        tid = t.user_attrs["ray_trial_id"]
        fds = [r["fd"] for r in _rows(tiny_experiment / f"trial_{tid}")]
        smooth = fds[-sch["smooth"] :]
        values = list(t.intermediate_values.values())
        assert len(values) == len(fds)  # one intermediate value per tick
        assert values[-1] == pytest.approx(sum(smooth) / len(smooth))
        if t.state.name == "COMPLETE":
            assert t.value == pytest.approx(values[-1])
    # Ray's saved state holds the pruned ones as TERMINATED (Ray does not re-save a trial
    # stopped while paused unless told), so the search reads as finished
    state = json.loads(Path(_newest(tiny_experiment, "experiment_state-*.json")).read_text())
    statuses = [json.loads(t[0])["status"] for t in state["trial_data"]]
    assert statuses == ["TERMINATED"] * 6, statuses
    from fashion_tune.search.confirm import load_finished_search

    load_finished_search(str(tiny_experiment))  # raises if any trial looks unfinished
    # every trial's records count ticks one by one, with no tick trained twice
    for tid in ledger:
        rows = _rows(tiny_experiment / f"trial_{tid}")
        assert [r["tick"] for r in rows] == list(range(1, len(rows) + 1))
        assert all(r["resumed_from_kimg"] <= r["kimg"] for r in rows)


def test_dry_run_prints_the_space_and_a_config(fmnist_small: Path) -> None:
    proc = run_cli("search", str(SPACES / "tiny.yaml"), "--data", str(fmnist_small), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "loss.lambda_sym: loguniform" in proc.stdout and '"total_kimg": 0.256' in proc.stdout
    assert str(fmnist_small) in proc.stdout


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["nope.yaml"], ["nope.yaml", "does not exist"]),
        (["--data", "/nonexistent/shards"], ["/nonexistent/shards"]),
        (["--resume", "--name", "never-ran"], ["no experiment to resume"]),
        (["--num-samples", "0"], ["num_samples", "must be >= 1"]),
    ],
)
def test_search_bad_input(
    tmp_path: Path, fmnist_small: Path, args: list[str], fragments: list[str]
) -> None:
    if not args[0].endswith(".yaml"):
        args = [str(SPACES / "tiny.yaml"), *args]
    if "--data" not in args:  # a real shard set, so only the bad input is wrong
        args += ["--data", str(fmnist_small)]
    proc = run_cli("search", *args, "--storage", str(tmp_path))
    assert_one_line_error(proc, *fragments)


# -- faults inside one driver: a worker killed, a diverging trial, a node lost --------------


class KillWorkerAtTick(Callback):
    """kill -9 the worker of the first healthy trial whose ``tick`` checkpoint is registered."""

    def __init__(self, tick: int):
        self.tick = tick
        self.killed: dict[str, Any] = {}

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result
        if not self.killed and result["tick"] == self.tick and not result["diverged"]:
            self.killed.update(trial_id=trial.trial_id, kimg=result["kimg"])
            os.kill(result["pid"], signal.SIGKILL)


CLUSTER: Any = None  # the ray.cluster_utils.Cluster of the node-loss test (not picklable)


class RemoveNodeAtTick(Callback):
    """SIGKILL the node of the first trial whose ``tick`` checkpoint is registered."""

    def __init__(self, tick: int):
        self.tick = tick
        self.removed: dict[str, Any] = {}

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = trial.last_result
        if not self.removed and result["tick"] == self.tick:
            node = next(n for n in CLUSTER.worker_nodes if n.node_id == result["node_id"])
            self.removed.update(trial_id=trial.trial_id, kimg=result["kimg"], node=node.node_id)
            CLUSTER.remove_node(node, allow_graceful=False)


def _search(space_path: Path, storage: Path, data: Path, callback: Any, address: str | None):
    import ray

    from fashion_tune.search.tuner import SearchOptions, run_search

    opts = SearchOptions(
        storage=str(storage), data=str(data), address=address, callbacks=(callback,), verbose=0
    )
    try:
        return run_search(load_space(space_path), opts)
    finally:
        ray.shutdown()


def _assert_resumed_at_checkpoint(rows: list[dict[str, Any]], fault: dict, total: float) -> None:
    """The retry resumed exactly at the last checkpoint recorded before it: no tick lost or
    trained twice. (A killed worker stops at once; on a lost node the worker can report a
    tick or two more before it notices, and those checkpoints count.)"""
    first = next(i for i, r in enumerate(rows) if r["resumed_from_kimg"] > 0)
    before, resumed = rows[first - 1], rows[first]
    assert [r["tick"] for r in rows[:first]] == list(range(1, first + 1))  # from scratch
    assert resumed["resumed_from_kimg"] == pytest.approx(before["kimg"])
    assert resumed["resumed_from_kimg"] >= fault["kimg"] - 1e-9
    assert resumed["tick"] == before["tick"] + 1 and resumed["iterations_since_restore"] == 1
    assert [r["tick"] for r in rows[first:]] == list(range(first + 1, len(rows) + 1))
    assert rows[-1]["kimg"] == pytest.approx(total) and not rows[-1]["diverged"]


def test_killed_worker_resumes_from_checkpoint_and_divergence_is_contained(
    fmnist_small: Path, tmp_path: Path
) -> None:
    space = _space_file(tmp_path, "kill", total_kimg=0.384)
    kill = KillWorkerAtTick(tick=2)
    grid = _search(space, tmp_path / "results", fmnist_small, kill, address=None)
    assert kill.killed, "the fault was never injected"
    assert len(grid) == 2 and not any(r.error for r in grid)
    exp = tmp_path / "results" / "kill"
    _assert_resumed_at_checkpoint(
        _rows(exp / f"trial_{kill.killed['trial_id']}"), kill.killed, 0.384
    )
    # the diverging trial ended early and cleanly, and the searcher marked it failed
    ledger = _ledger(exp)
    diverged = [e for e in ledger.values() if e["config"]["optim.lr_d"] > 1]
    assert diverged[0]["result"]["diverged"] == 1 and diverged[0]["result"]["kimg"] < 0.384
    assert sorted(t.state.name for t in _study(exp).trials) == ["COMPLETE", "FAIL"]


def test_lost_node_trial_continues_elsewhere_from_checkpoint(
    fmnist_small: Path, tmp_path: Path
) -> None:
    global CLUSTER
    from ray.cluster_utils import Cluster

    space = _space_file(tmp_path, "node", total_kimg=0.64)
    # a SIGKILLed raylet is noticed at once through its closed connections; tighter health
    # checks (needed only for frozen nodes) would fail healthy nodes on a loaded machine
    CLUSTER = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        for _ in range(3):
            CLUSTER.add_node(num_cpus=1)
        CLUSTER.wait_for_nodes()
        remove = RemoveNodeAtTick(tick=2)
        grid = _search(space, tmp_path / "results", fmnist_small, remove, CLUSTER.address)
    finally:
        CLUSTER.shutdown()
        CLUSTER = None
    assert remove.removed, "the fault was never injected"
    assert len(grid) == 2 and not any(r.error for r in grid)
    rows = _rows(tmp_path / "results" / "node" / f"trial_{remove.removed['trial_id']}")
    total = 0.64 if rows[-1]["diverged"] == 0 else rows[-1]["kimg"]
    if rows[-1]["diverged"]:  # the diverging trial was on the lost node: it ends early anyway
        assert any(r["resumed_from_kimg"] > 0 for r in rows)
    else:
        _assert_resumed_at_checkpoint(rows, remove.removed, total)
    moved = [r for r in rows if r["resumed_from_kimg"] > 0]
    assert {r["node_id"] for r in moved}.isdisjoint({remove.removed["node"]})


# -- a killed driver, then --resume ---------------------------------------------------------


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the driver and every process it started (Ray's own processes included)."""
    import psutil

    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    proc.wait(timeout=30)
    psutil.wait_procs(family, timeout=30)


def test_killed_driver_then_resume_finishes_without_rerunning(
    fmnist_small: Path, tmp_path: Path
) -> None:
    """SIGKILL of the driver while trials wait paused at rungs, then --resume."""
    storage, exp = tmp_path / "results", tmp_path / "results" / "tiny"
    args = ["search", str(SPACES / "tiny.yaml"), "--data", str(fmnist_small)]
    args += ["--storage", str(storage)]
    proc = subprocess.Popen(
        [*CLI, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 300
        while len(_waiting_saved(exp)) < 2:
            assert proc.poll() is None, "the search ended before the driver could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.2)
        # the Optuna journal opens while the search runs (as optuna-dashboard reads it)
        live = _study(exp)
        assert sum(bool(t.intermediate_values) for t in live.trials) >= 2
    finally:
        _kill_tree(proc)
    finished = _ledger(exp)
    assert len(finished) < 6
    # Ray copies its state files into storage in place: a kill mid-copy leaves one empty
    # (seen here now and then); make it certain, --resume must repair it from staging
    Path(_newest(exp, "search_gen_state-*.json")).write_bytes(b"")
    before = {tid: _rows(exp / f"trial_{tid}") for tid in finished}
    in_rungs = _rung_trials(exp)
    waiting = _scheduler(exp)["waiting"]  # paused at a rung, as the killed driver saved it
    assert len(waiting) >= 2
    rows_then = {tid: _rows(exp / f"trial_{tid}") for tid in waiting}

    proc2 = run_cli(*args, "--resume", timeout=600)
    assert proc2.returncode == 0, proc2.stdout[-3000:] + proc2.stderr[-3000:]
    after = _ledger(exp)
    assert len(after) == 6, proc2.stderr[-4000:]  # the interrupted search finished
    assert any(e["result"]["progress"] >= 1 for e in after.values())
    for tid, rows in before.items():
        trained = [r for r in _rows(exp / f"trial_{tid}") if not r.get("replayed")]
        assert trained == rows, f"finished trial {tid} was trained again"
        assert after[tid]["result"]["fd"] == finished[tid]["result"]["fd"]
    # the paused trials stayed paused: each trained on only if promoted from its rung
    events = json.loads((exp / "fashion_tune_scheduler.json").read_text())["events"]
    promoted = {(e["trial_id"], e["rung"]) for e in events if e["event"] == "promoted"}
    for tid, rung in waiting.items():
        rows = _rows(exp / f"trial_{tid}")
        assert rows[: len(rows_then[tid])] == rows_then[tid]
        if len(rows) > len(rows_then[tid]):
            assert (tid, rung) in promoted, f"paused trial {tid} resumed without a promotion"
            assert rows[len(rows_then[tid])]["resumed_from_kimg"] == rows_then[tid][-1]["kimg"]
    # the rung records came back with the restored experiment, then grew
    assert in_rungs <= _rung_trials(exp)
    states = Counter(t.state.name for t in _study(exp).trials)
    # an Optuna trial asked for after the last saved state is marked FAIL on resume
    assert states["COMPLETE"] + states["PRUNED"] == 6 and set(states) <= {
        "COMPLETE",
        "PRUNED",
        "FAIL",
    }, states


def _waiting_saved(exp: Path) -> dict[str, int]:
    """Trials waiting at a rung in the newest saved scheduler state ({} before any)."""
    try:
        return _scheduler(exp)["waiting"]
    except (ValueError, OSError, EOFError, pickle.UnpicklingError, StopIteration):
        return {}


def test_resume_repairs_a_state_file_cut_short_by_the_kill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray copies state files to storage in place; a killed copy leaves one empty."""
    from ray import cloudpickle

    from fashion_tune.errors import FashionTuneError
    from fashion_tune.search.ray_private import TEMP_ENV
    from fashion_tune.search.recovery import repair_state_files

    start = "2026-01-02_03-04-05"
    exp = tmp_path / "results" / "quick"
    # the embedded Ray's private temp root (mode 0700); Ray names the staging folder by its
    # own clock, a second off the state files' names
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    staging = private / "ray" / "session_x" / "artifacts" / "t" / "quick" / "driver_artifacts"
    exp.mkdir(parents=True)
    staging.mkdir(parents=True)
    good = {
        f"experiment_state-{start}.json": json.dumps({"trial_data": []}).encode(),
        f"search_gen_state-{start}.json": cloudpickle.dumps({"counter": 5}),
        f"searcher-state-{start}.pkl": cloudpickle.dumps({"_metric": "fd"}),
    }
    for name, data in good.items():
        (exp / name).write_bytes(data)
        (staging / name).write_bytes(data)
    damaged = f"search_gen_state-{start}.json"
    (exp / damaged).write_bytes(b"")  # the copy the kill interrupted
    monkeypatch.setenv(TEMP_ENV, str(private))

    assert repair_state_files(str(exp)) == [damaged]
    assert cloudpickle.loads((exp / damaged).read_bytes()) == {"counter": 5}
    assert repair_state_files(str(exp)) == []  # intact files are left alone

    (exp / damaged).write_bytes(b"\x80\x05")  # cut short, and no intact copy left
    (staging / damaged).unlink()
    with pytest.raises(FashionTuneError, match=f"{damaged} is damaged"):
        repair_state_files(str(exp))
