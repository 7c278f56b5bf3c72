"""``fashion-tune search --address`` on a Ray cluster started with ``ray start``, as
cluster/README.md starts one, and a worker node lost mid-search.

Three Ray nodes run as separate process trees on this machine: a token is made with
``ray get-auth-token --generate`` (HOME is a temp folder, so the real ``~/.ray`` is never
touched), the head is ``ray start --head --num-cpus=0`` and two 1-CPU workers are ``ray
start --address=HEAD``, all with ``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` as
``cluster/aws.yaml`` sets them. The search runs as the ``fashion-tune search`` command;
once a trial has reported, the raylet of the worker node it runs on is SIGKILLed, and
the search must still end with every trial finished exactly once.

Loopback only. ``ray start`` on Linux turns 127.0.0.1 (in ``--node-ip-address`` and in
``--address``) into the machine's routable address, and then every node listens on all
interfaces; Ray's "no cluster" switch ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps
127.0.0.1 (and loopback-only ports) but makes ``ray start --address`` refuse to start a
worker. So the head runs the stock ``ray start`` with that switch (as the embedded Ray of
``fashion-tune search`` does, ``ray_private.loopback_only``), the workers run Ray's own
``ray start`` code with that one resolution step turned off (``WORKER_START``), and the
driver and ``ray status`` get the switch so that they keep 127.0.0.1 too. The test checks
that every TCP port of the cluster listens on loopback.

Every process the test starts is killed by the test, by process group, by the temp
folder in its command line, and by descent from those; never ``ray stop`` (it would stop
other Ray instances on the machine).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from conftest import CLI, ROOT, tiny_overrides

from fashion_tune.search.trainable import LEDGER_DIR

pytestmark = pytest.mark.timeout(600)

RAY = str(Path(sys.executable).with_name("ray"))
NO_CLUSTER = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# `ray start` for a worker node, with 127.0.0.1 kept as written (see the module docstring)
WORKER_START = (
    "import sys, ray._private.services as s; s.resolve_ip_for_localhost = lambda host: host; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; sys.exit(main())"
)
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1"}

# a killed raylet's workers live on for seconds (measured 3-4 s, reporting ticks of ~0.3 s
# meanwhile), so a trial trains for several seconds: the one on the lost node is still
# training when its worker dies, and goes on elsewhere from a checkpoint
NUM_SAMPLES, TICKS, TICK_KIMG = 4, 20, 0.064
TOTAL_KIMG = TICKS * TICK_KIMG


class LocalCluster:
    """Ray nodes started with ``ray start`` under one private temp folder; kills them all."""

    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root  # short: Ray's socket paths live under it
        self.env = env
        self.groups: list[int] = []  # each `ray start` runs in its own session / group
        self.address = ""

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 (closed below)
        # never a pipe: the daemons `ray start` leaves behind would hold it open
        proc = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.groups.append(proc.pid)
        return proc

    def _wait(self, name: str, proc: subprocess.Popen) -> None:
        rc = proc.wait(timeout=180)
        assert rc == 0, f"ray start ({name}) failed:\n" + self.log(name)[-3000:]

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def start_head(self) -> str:
        args = [RAY, "start", "--head", "--node-ip-address=127.0.0.1", "--port=0"]
        args += ["--num-cpus=0", "--include-dashboard=false", "--disable-usage-stats"]
        args += [f"--temp-dir={self.root / 'h'}"]
        self._wait("head", self._start("head", args, {**self.env, NO_CLUSTER: "0"}))
        self.address = (self.root / "h" / "ray_current_cluster").read_text().strip()
        assert self.address.startswith("127.0.0.1:"), self.address
        return self.address

    def add_workers(self, *names: str) -> None:
        """Start the worker nodes at once (each `ray start` takes seconds), 1 CPU each."""
        procs = {}
        for name in names:
            args = [sys.executable, "-c", WORKER_START, "start", f"--address={self.address}"]
            args += ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
            args += [f"--temp-dir={self.root / name}"]
            procs[name] = self._start(name, args, self.env)
        for name, proc in procs.items():
            self._wait(name, proc)

    def status(self) -> str:
        proc = subprocess.run(
            [RAY, "status", f"--address={self.address}"],
            env={**self.env, NO_CLUSTER: "0"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        return proc.stdout + proc.stderr

    def wait_for_nodes(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            text = self.status()
            active = text.split("Active:", 1)[-1].split("Pending:", 1)[0]
            if len(re.findall(r"^\s*1 node_[0-9a-f]+\s*$", active, re.M)) == n:
                return
            assert time.monotonic() < deadline, f"{n} nodes never came up:\n{text}"
            time.sleep(1)

    def processes(self) -> list[psutil.Process]:
        """Every live process of the cluster: the temp folder in its command line, or in
        a group of ours, or a descendant of either."""
        me = os.getpid()
        found: dict[int, psutil.Process] = {}
        for p in psutil.process_iter(["cmdline"]):
            if p.pid == me:
                continue
            with contextlib.suppress(psutil.Error, OSError):
                if any(str(self.root) in a for a in p.info["cmdline"] or []) or (
                    os.getpgid(p.pid) in self.groups
                ):
                    found[p.pid] = p
        for p in list(found.values()):
            with contextlib.suppress(psutil.Error):
                found.update({c.pid: c for c in p.children(recursive=True) if c.pid != me})
        return list(found.values())

    def raylets(self) -> dict[str, psutil.Process]:
        """node id -> the raylet process of that node (one per node of ours)."""
        out = {}
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                cmd = p.cmdline()
                if cmd and cmd[0].endswith("/raylet"):
                    (node,) = [a.split("=", 1)[1] for a in cmd if a.startswith("--node_id=")]
                    out[node] = p
        return out

    def listening(self) -> set[tuple[str, str, int]]:
        """(process name, address, port) of every TCP port the cluster listens on."""
        out = set()
        for p in self.processes():
            with contextlib.suppress(psutil.Error):
                for c in p.net_connections(kind="tcp"):
                    if c.status == psutil.CONN_LISTEN:
                        out.add((p.name(), c.laddr.ip, c.laddr.port))
        return out

    def kill_all(self) -> None:
        procs = self.processes()
        for pgid in self.groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGKILL)
        for p in procs:
            with contextlib.suppress(psutil.Error):
                p.kill()
        psutil.wait_procs(procs, timeout=30)
        left = self.processes()
        assert not left, f"processes of the test's cluster survived: {left}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A head (0 CPUs) and two 1-CPU workers, token auth on, loopback only."""
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), RAY_USAGE_STATS_ENABLED="0")
    made = subprocess.run(
        [RAY, "get-auth-token", "--generate"], env=env, capture_output=True, timeout=120
    )
    token = home / ".ray" / "auth_token"
    assert made.returncode == 0 and token.is_file(), made.stderr.decode()[-2000:]
    token.chmod(0o600)
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    root = Path(tempfile.mkdtemp(prefix="ftrs-", dir="/tmp"))  # 0700, short
    c = LocalCluster(root, env)
    try:
        t0 = time.monotonic()
        c.start_head()
        t_head = time.monotonic() - t0
        c.add_workers("w1", "w2")
        c.wait_for_nodes(3)
        print(f"\nhead up in {t_head:.1f} s, 3 nodes in {time.monotonic() - t0:.1f} s")
        yield c
    finally:
        try:
            c.kill_all()
        finally:
            shutil.rmtree(root, ignore_errors=True)


def _space(tmp: Path) -> Path:
    """Tiny DCGANs, FIFO (each trains its full budget), 2 at a time, 1 CPU each."""
    fixed = {**tiny_overrides(Path()), "model.arch": "dcgan", "loss.gan": "ns"}
    del fixed["data.path"]  # from --data
    fixed.update({"schedule.total_kimg": TOTAL_KIMG, "schedule.tick_kimg": TICK_KIMG})
    doc = {
        "name": "raystart",
        "objective": {"metric": "fd", "mode": "min"},
        "fixed": fixed,
        "params": {
            "optim.lr_g": {"loguniform": [1.0e-4, 5.0e-4]},
            "loss.symmetry": {"choice": ["none", "pixel"]},
        },
        "points": [{"optim.lr_g": 2.0e-4, "loss.symmetry": "none"}],
        "scheduler": {"type": "fifo"},
        "searcher": {"type": "optuna", "seed": 0},
        "num_samples": NUM_SAMPLES,
        "max_concurrent": 2,
        "resources": {"cpu": 1, "gpu": 0},
    }
    path = tmp / "raystart.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _rows(trial_dir: Path) -> list[dict[str, Any]]:
    try:
        text = (trial_dir / "result.json").read_text()
    except FileNotFoundError:
        return []
    # the driver appends a line per result: a line being written may be cut short
    rows = []
    for line in text.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            rows.append(json.loads(line))
    return rows


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


@dataclass
class KilledRun:
    """A finished search whose one worker node lost its raylet mid-run."""

    exp: Path
    victim: str  # the trial whose first report triggered the kill, on the lost node
    lost_node: str
    t_kill: float  # time.time() of the kill
    timings: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def killed_run(
    cluster: LocalCluster, fmnist_small: Path, tmp_path_factory: pytest.TempPathFactory
) -> KilledRun:
    """``fashion-tune search --address`` as a process; at the first report of any trial,
    kill -9 the raylet of the worker node that trial runs on; the search must exit 0."""
    # the cluster listens on loopback only
    ports = cluster.listening()
    assert ports and all(ip in LOOPBACK for _, ip, _ in ports), ports

    raylets = cluster.raylets()  # looked up now, so that the kill follows the report at once
    assert len(raylets) == 3, raylets
    tmp = tmp_path_factory.mktemp("search")
    storage = tmp / "results"
    exp = storage / "raystart"
    log_path = tmp / "search.log"
    args = ["search", str(_space(tmp)), "--address", cluster.address]
    args += ["--storage", str(storage), "--data", str(fmnist_small), "--max-failures", "3"]
    t0 = time.monotonic()
    with open(log_path, "wb") as log:
        driver = subprocess.Popen(
            [*CLI, *args],
            cwd=ROOT,
            env={**cluster.env, NO_CLUSTER: "0"},  # keep 127.0.0.1 (module docstring)
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def search_log() -> str:
        return log_path.read_text(errors="replace")[-6000:]

    try:
        deadline = time.monotonic() + 300
        while True:
            reported = {
                d.name.removeprefix("trial_"): rows
                for d in sorted(exp.glob("trial_*"))
                if (rows := _rows(d))
            }
            if reported:
                break
            assert driver.poll() is None, "the search ended before any report:\n" + search_log()
            assert time.monotonic() < deadline, "no trial reported in 300 s:\n" + search_log()
            time.sleep(0.05)
        victim, rows = next(iter(reported.items()))
        lost_node, trainer = rows[-1]["node_id"], psutil.Process(rows[-1]["pid"])
        raylet = raylets[lost_node]
        assert trainer.ppid() == raylet.pid, "the trial's worker is not a child of its raylet"
        raylet.kill()
        t_kill = time.time()
        t_first = time.monotonic() - t0
        # the trial's worker dies with its raylet: no orphan trains beside the retry
        _, alive = psutil.wait_procs([trainer], timeout=60)
        assert not alive, f"the trial worker {trainer.pid} outlived its raylet by 60 s"
        t_orphan = time.time() - t_kill
        during = cluster.listening()  # the other worker's trial runs now: loopback only
        assert all(ip in LOOPBACK for _, ip, _ in during), during
        rc = driver.wait(timeout=420)
        t_search = time.monotonic() - t0
    finally:
        _kill_group(driver)
    assert rc == 0, search_log()
    # the CLI's summary line (rich wraps it at the terminal width)
    assert f"({NUM_SAMPLES} trials, 0 errored)" in " ".join(search_log().split()), search_log()
    cluster.kill_all()  # done with Ray: the checks and the report get the CPUs
    timings = {"first_report": t_first, "worker_gone": t_orphan, "search": t_search}
    return KilledRun(exp, victim, lost_node, t_kill, timings)


def test_search_survives_a_killed_worker_raylet(
    killed_run: KilledRun, cluster: LocalCluster, tmp_path: Path
) -> None:
    exp, victim, lost_node = killed_run.exp, killed_run.victim, killed_run.lost_node
    # every trial of the space ended exactly once, TERMINATED in Ray's saved state
    trial_dirs = sorted(exp.glob("trial_*"))
    assert len(trial_dirs) == NUM_SAMPLES, [d.name for d in trial_dirs]
    state_file = max(glob.glob(str(exp / "experiment_state-*.json")))
    trials = [json.loads(t[0]) for t in json.loads(Path(state_file).read_text())["trial_data"]]
    assert [t["status"] for t in trials] == ["TERMINATED"] * NUM_SAMPLES
    ids = {t["trial_id"] for t in trials}
    assert ids == {d.name.removeprefix("trial_") for d in trial_dirs}
    assert {p.stem for p in (exp / LEDGER_DIR).glob("*.json")} == ids

    # each trial reported its ticks once, in order, to the full budget, with its checkpoint
    for d in trial_dirs:
        rows = _rows(d)
        assert [r["training_iteration"] for r in rows] == list(range(1, TICKS + 1)), d.name
        assert [r["tick"] for r in rows] == list(range(1, TICKS + 1)), d.name
        kimg = [r["kimg"] for r in rows]
        assert kimg == sorted(set(kimg)) and kimg[-1] == pytest.approx(TOTAL_KIMG), d.name
        assert not rows[-1]["diverged"] and not any(r.get("replayed") for r in rows)
        last = d / rows[-1]["checkpoint_dir_name"]
        assert (last / "checkpoint.pt").is_file(), f"{d.name}: no final checkpoint in {last}"

    # the trials the lost node failed (Ray logs each failure in the trial's error.txt) went
    # on elsewhere: from their last checkpoint when they had one, losing no tick. The
    # trial that triggered the kill may instead have finished there: a worker whose raylet
    # died lives on for seconds, and its reports still reach the driver.
    failures = {
        d.name.removeprefix("trial_"): (d / "error.txt").read_text()
        for d in trial_dirs
        if (d / "error.txt").exists()
    }
    assert failures, "no trial failed: the lost node ran none at the time"
    delays, lines = [], []
    for tid, text in failures.items():
        assert "actor" in text.lower(), text  # the actor on the lost node, not the trial
        rows = _rows(exp / f"trial_{tid}")
        there = next((i for i, r in enumerate(rows) if r["node_id"] != lost_node), len(rows))
        assert there > 0 or tid != victim, rows  # the victim had reported there
        after = rows[there:]
        assert after and {r["node_id"] for r in after}.isdisjoint({lost_node}), tid
        first = after[0]
        start_kimg = rows[there - 1]["kimg"] if there else 0.0
        assert first["resumed_from_kimg"] == pytest.approx(start_kimg), (tid, rows)
        assert first["iterations_since_restore"] == 1, (tid, rows)
        if there:  # resumed from a checkpoint on another node
            delays.append(first["timestamp"] - first["time_this_iter_s"] - killed_run.t_kill)
        lines.append(
            f"trial {tid}: {there} tick(s) on the lost node, {text.count('Failure #')} "
            f"failure(s), went on from {start_kimg:g} kimg on node {first['node_id'][:8]}"
        )
    assert delays, f"no trial on the lost node resumed from a checkpoint: {lines}"
    late = [r for r in _rows(exp / f"trial_{victim}") if r["node_id"] == lost_node]
    late = [r for r in late if r["timestamp"] > killed_run.t_kill]
    lines.append(f"trial {victim} reported {len(late)} tick(s) from the lost node after the kill")
    t = killed_run.timings
    print(
        f"\nfirst report {t['first_report']:.1f} s after the search started: killed the "
        f"raylet of node {lost_node[:8]} (trial {victim}); its trial worker was gone "
        f"{t['worker_gone']:.1f} s later; " + "; ".join(lines) + "; the resumed trial "
        f"trained its next tick ~{max(delays):.0f} s after the kill; search done "
        f"{t['search']:.1f} s after it started"
    )

    t_report = time.monotonic()
    report = subprocess.run(
        [*CLI, "report", str(exp), "--out", str(tmp_path / "report"), "--top-k", "1"],
        cwd=ROOT,
        env=cluster.env,  # HOME in the test's temp folder too
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stdout[-3000:] + report.stderr[-3000:]
    print(f"report in {time.monotonic() - t_report:.1f} s")


def test_every_trial_folder_holds_the_trials_own_files(
    killed_run: KilledRun, cluster: LocalCluster
) -> None:
    """train()'s own files reach the trial's folder in storage, as on an embedded Ray.

    Ray 2.60 gives a fresh actor's first trial the driver's staging folder as its trial
    dir; on a worker node nothing syncs that, so the trainable writes into the trial's
    working directory instead (ray_private.trial_working_dir)."""
    missing = {}
    for d in sorted(killed_run.exp.glob("trial_*")):
        lost = [f for f in ("config.json", "flops.json", "metrics.jsonl") if not (d / f).exists()]
        if lost:
            # where they are instead: the worker node's local "driver" staging folder
            stranded = glob.glob(
                f"{cluster.root}/w*/session_*/artifacts/*/{killed_run.exp.name}/"
                f"driver_artifacts/{d.name}/metrics.jsonl"
            )
            missing[d.name] = (lost, stranded)
    assert not missing, missing
    for d in sorted(killed_run.exp.glob("trial_*")):
        own = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
        assert [r["tick"] for r in own] == list(range(1, TICKS + 1)), d.name
