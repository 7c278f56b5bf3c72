"""Object storage for real: a local S3-compatible server (moto's standalone server, loopback
only) carries the whole path through the real CLI: ``data prepare --out s3://...`` (with its
metric reference), a trial and a tiny search reading the set through the node-local cache,
results stored at an ``s3://`` storage path, ``report`` from it; and a server stopped
mid-read is one ``error:`` line.

pyarrow's S3 file system (and so Ray's storage) finds the endpoint in ``AWS_ENDPOINT_URL``,
the credentials in ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``: plain ``s3://bucket/...``
URIs work unchanged, in the CLI, in Ray's workers and in ``Tuner.restore``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import CLI, ROOT, assert_one_line_error, run_cli

pytest.importorskip("moto.server", reason="moto[server] (dev dependency) is not installed")
pafs = pytest.importorskip("pyarrow.fs")

BUCKET = "ft-test"
LIMIT = 500  # images in the set: its reference trains in seconds
TINY_SPACE = """\
name: s3tiny
description: Two tiny trials on a set in S3, results in S3.
objective: {metric: fd, mode: min}
fixed:
  data.batch_size: 32
  model.z_dim: 16
  model.g_width: 8
  model.d_width: 8
  schedule.total_kimg: 0.128
  schedule.tick_kimg: 0.064
  metrics.num_samples: 128
  metrics.kid_subset_size: 64
  metrics.kid_subsets: 5
  runtime.threads: 1
  runtime.device: cpu
params:
  optim.lr_g: {loguniform: [1.0e-4, 2.0e-3]}
scheduler: {type: fifo}
searcher: {type: random, seed: 0}
num_samples: 2
max_concurrent: 2
resources: {cpu: 1, gpu: 0}
"""
TRIAL_SETTINGS = [
    "data.batch_size=32",
    "model.z_dim=16",
    "model.g_width=8",
    "model.d_width=8",
    "schedule.tick_kimg=0.064",
    "metrics.num_samples=128",
    "metrics.kid_subset_size=64",
    "metrics.kid_subsets=5",
    "runtime.threads=1",
]


class MotoServer:
    """moto's standalone S3 server in a subprocess on 127.0.0.1 (a free port)."""

    def __init__(self, log: Path):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not self.listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto server did not start; see {log}")
            time.sleep(0.1)

    def listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def fs(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            access_key="testing",
            secret_key="testing",
            region="us-east-1",
            endpoint_override=f"127.0.0.1:{self.port}",
            scheme="http",
            allow_bucket_creation=True,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


def s3_env(endpoint: str, cache: Path) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "FASHION_TUNE_CACHE": str(cache),
    }


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One server for the module, a bucket in it, and the environment pointing at it (the
    CLI subprocesses and Ray's workers inherit it); all restored at the end."""
    base = tmp_path_factory.mktemp("s3")
    server = MotoServer(base / "moto.log")
    saved = dict(os.environ)
    try:
        server.fs().create_dir(BUCKET)
        os.environ.update(s3_env(server.endpoint, base / "cache"))
        yield server
    finally:
        os.environ.clear()
        os.environ.update(saved)
        server.stop()


@pytest.fixture(scope="module")
def s3_set(s3: MotoServer) -> str:
    """A small real Fashion-MNIST set prepared straight into the bucket, with its reference."""
    uri = f"s3://{BUCKET}/fm"
    proc = run_cli("data", "prepare", "fashion-mnist", "--out", uri, "--limit", str(LIMIT))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr
    return uri


def _keys(server: MotoServer, prefix: str) -> set[str]:
    root = f"{BUCKET}/{prefix}/"
    sel = pafs.FileSelector(root, recursive=True)
    return {i.path.removeprefix(root) for i in server.fs().get_file_info(sel)}


def test_prepare_writes_the_set_and_its_reference_to_s3(
    s3: MotoServer, s3_set: str, tmp_path: Path
) -> None:
    keys = _keys(s3, "fm")
    assert {"manifest.json", "shard-00000.arrow"} <= keys, keys
    assert any(k.startswith("_reference/") for k in keys), keys
    assert not any(".tmp-" in k or ".probe-" in k for k in keys), keys  # atomic writes
    manifest = json.loads(s3.fs().open_input_stream(f"{BUCKET}/fm/manifest.json").read())
    assert sum(s["rows"] for s in manifest["shards"]) == LIMIT


def test_trial_reads_the_set_through_the_node_cache(
    s3: MotoServer, s3_set: str, tmp_path: Path
) -> None:
    sets = [a for s in TRIAL_SETTINGS for a in ("--set", s)]
    out = tmp_path / "trial"
    proc = run_cli(
        "trial", "--data", s3_set, "--kimg", "0.064", "--device", "cpu", "--out", str(out), *sets
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(r["fd"] == r["fd"] for r in rows)  # scored against the S3 reference
    cache = Path(os.environ["FASHION_TUNE_CACHE"]) / "shards"
    copies = [p for p in cache.iterdir() if (p / ".complete").exists()]
    assert len(copies) == 1 and (copies[0] / "shard-00000.arrow").exists()


def test_search_stores_results_in_s3_and_report_reads_them(
    s3: MotoServer, s3_set: str, tmp_path: Path
) -> None:
    space = tmp_path / "s3tiny.yaml"
    space.write_text(TINY_SPACE)
    storage = f"s3://{BUCKET}/results"
    proc = run_cli("search", str(space), "--data", s3_set, "--storage", storage, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # Ray's background sync racing our atomic writes' temp files is no traceback
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    assert f"({storage}/s3tiny/trial_" in proc.stdout, proc.stdout[-1000:]
    keys = _keys(s3, "results/s3tiny")
    trials = {k.split("/")[0] for k in keys if k.startswith("trial_")}
    assert len(trials) == 2, sorted(keys)[:50]
    assert any(k.endswith("result.json") for k in keys)
    assert any("checkpoint" in k for k in keys)

    out = tmp_path / "report"
    rep = run_cli("report", f"{storage}/s3tiny", "--out", str(out))
    assert rep.returncode == 0, rep.stdout[-3000:] + rep.stderr[-3000:]
    board = json.loads((out / "leaderboard.json").read_text())
    rows = board["trials"] if isinstance(board, dict) else board
    assert len(rows) == 2
    assert (out / "index.html").exists()
    assert list((out / "checkpoints").iterdir())


# Runs the CLI after patching Store.download so that the server is stopped just before the
# first shard is copied: the manifest was read from a live server, the shards are not.
_STOP_MID_READ = textwrap.dedent(
    """
    import os, signal, socket, sys, time
    from fashion_tune.data import storage
    from fashion_tune.cli import main

    pid, port = int(sys.argv[1]), int(sys.argv[2])
    download = storage.Store.download

    def stop_then_download(self, name, dest):
        os.kill(pid, signal.SIGTERM)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                time.sleep(0.05)
            except OSError:
                break
        return download(self, name, dest)

    storage.Store.download = stop_then_download
    sys.exit(main(sys.argv[3:]))
    """
)


def test_server_stopped_mid_read_is_one_error_line(
    s3: MotoServer, s3_set: str, tmp_path: Path
) -> None:
    """A second server holding a copy of the set is stopped after the manifest is read and
    before the shards are copied to the node cache; then a report of a search in it."""
    doomed = MotoServer(tmp_path / "moto.log")
    try:
        doomed.fs().create_dir(BUCKET)
        pafs.copy_files(
            f"{BUCKET}/fm",
            f"{BUCKET}/fm",
            source_filesystem=s3.fs(),
            destination_filesystem=doomed.fs(),
        )
        env = {**os.environ, **s3_env(doomed.endpoint, tmp_path / "cache")}
        cmd = [sys.executable, "-c", _STOP_MID_READ, str(doomed.proc.pid), str(doomed.port)]
        args = ["trial", "--data", s3_set, "--kimg", "0.064", "--out", str(tmp_path / "t")]
        proc = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120
        )
        assert doomed.proc.poll() is not None, "the server was not stopped"
        assert_one_line_error(proc, f"s3://{BUCKET}/fm/shard-00000.arrow")
        assert not (tmp_path / "cache" / "shards").exists() or not any(
            (p / ".complete").exists() for p in (tmp_path / "cache" / "shards").iterdir()
        )
        # anything else that reads the stopped server: the same one line
        rep = subprocess.run(
            [*CLI, "report", f"s3://{BUCKET}/results/s3tiny", "--out", str(tmp_path / "r")],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=120,
        )
        assert_one_line_error(rep, "object storage failed")
        assert not (tmp_path / "r" / "index.html").exists()
    finally:
        doomed.stop()


def test_uri_with_options_is_one_error_line(tmp_path: Path) -> None:
    """pyarrow's ?endpoint_override=... would swallow the folder names appended to the URI."""
    uri = "s3://bucket/set?endpoint_override=127.0.0.1:9&scheme=http"
    proc = run_cli("data", "inspect", uri, timeout=120)
    assert_one_line_error(proc, "AWS_ENDPOINT_URL")
