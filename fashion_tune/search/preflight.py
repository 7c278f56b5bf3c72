"""Checks made before Ray starts (and by ``--dry-run``): each failure is one error line.

Everything a search can know up front is checked here, and nothing is written before:
the experiment name, the storage folder, the shard set, ``--max-failures``, whether a
``--address`` answers, and whether one trial's resources fit on a node (on this machine
before an embedded Ray starts; on the live cluster's nodes once joined).
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from fashion_tune import experiment_layout as layout
from fashion_tune.data.storage import Store, is_uri
from fashion_tune.errors import FashionTuneError

ADDRESS_TIMEOUT_S = 10.0  # how long a --address may take to answer a TCP connect
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"  # on clusters made by Ray's launcher


def check_name(name: str) -> None:
    if problem := layout.name_problem(name):
        raise FashionTuneError(f"experiment name {name!r} {problem} (set it with --name)")


def check_storage(storage: str) -> None:
    """A local --storage must be (or can become) a folder we can write."""
    if is_uri(storage):
        return
    path = Path(storage).expanduser().resolve()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise FashionTuneError(f"--storage {storage}: {probe} is a file, not a folder")
    try:  # a real try: permission bits do not tell for root, /proc or read-only mounts
        tempfile.TemporaryDirectory(dir=probe, prefix=".fashion-tune-probe-").cleanup()
    except OSError as exc:
        raise FashionTuneError(
            f"--storage {storage}: cannot write in {probe} ({exc.strerror})"
        ) from None


def check_data(path: str, split: str) -> None:
    """The shard set is there, complete, and holds the split the trials train on."""
    from fashion_tune.data.reader import _read_manifest
    from fashion_tune.errors import DataError

    store = Store.open(path)
    try:
        manifest = _read_manifest(store)
        for shard in manifest.shards:
            size = store.size(shard.file)
            if size != shard.bytes:
                raise DataError(
                    f"shard {store.describe(shard.file)} is {size} bytes, the manifest says "
                    f"{shard.bytes}: the set is damaged; prepare it again"
                )
    except OSError as exc:
        raise DataError(f"cannot read the shard set {path}: {exc}") from None
    if split not in manifest.splits:
        raise DataError(
            f"the shard set {path} has no {split!r} split (it has {', '.join(manifest.splits)}); "
            "set data.split"
        )


def check_experiment(exp: str, resume: bool) -> None:
    """--resume needs an experiment (that only we could have written); a new search must
    not overwrite one."""
    exists = Store.open(exp).exists(layout.TUNER_FILE)
    if resume and not exists:
        raise FashionTuneError(f"no experiment to resume at {exp} (no {layout.TUNER_FILE} there)")
    if not resume and exists:
        raise FashionTuneError(
            f"experiment {exp} already exists: pass --resume to continue it, "
            "or --name to start a new one"
        )
    if resume:
        from fashion_tune.search.recovery import check_trusted

        check_trusted(exp)


def check_max_failures(n: int) -> None:
    if n < 0:
        raise FashionTuneError(f"--max-failures must be >= 0 (retries per trial), got {n}")


def address_endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) to probe for a --address; None for 'auto' (Ray finds the cluster)."""
    if address == "auto":
        return None
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in rest:
        raise FashionTuneError(
            f"--address {address!r}: expected 'auto', HOST:PORT (the head's GCS port, "
            "e.g. 10.0.0.5:6379) or ray://HOST:10001"
        )
    return host.strip("[]"), int(port)


# an HTTP/2 client preface and an empty SETTINGS frame: a gRPC server (Ray's GCS, Ray
# Client) answers with a SETTINGS frame of its own
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _speaks_grpc(sock: socket.socket) -> bool:
    sock.sendall(_H2_PREFACE)
    head = b""
    while len(head) < 9:
        chunk = sock.recv(9 - len(head))
        if not chunk:
            break
        head += chunk
    return len(head) == 9 and head[3] == 0x04  # frame type SETTINGS


def probe_address(address: str, timeout_s: float = ADDRESS_TIMEOUT_S) -> None:
    """Fail with one line unless a Ray head (a gRPC server) answers at --address.

    Ray retries an address for ever when nothing answers, and also when something that
    is not Ray does (measured: still trying after 110 s). A TCP connect, retried for
    ``timeout_s``, tells a dead address from a slow one; an HTTP/2 handshake tells Ray's
    gRPC from another service (skipped under RAY_USE_TLS, where the handshake is TLS).
    """
    endpoint = address_endpoint(address)
    if endpoint is None:
        return
    deadline = time.monotonic() + timeout_s
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(endpoint, timeout=min(5.0, timeout_s)) as sock:
                if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
                    return
                sock.settimeout(5.0)
                try:
                    if _speaks_grpc(sock):
                        return
                except OSError:
                    pass
                raise FashionTuneError(
                    f"cannot use the Ray cluster at {address}: something answers there but "
                    "it is not a Ray head (no gRPC); give the head's GCS port (default 6379) "
                    "or ray://HOST:10001"
                )
        except OSError as exc:  # refused, unreachable, unknown host, timed out
            last = exc
            if isinstance(exc, socket.gaierror):
                break
            time.sleep(1.0)
    reason = getattr(last, "strerror", None) or str(last) or "no answer"
    raise FashionTuneError(
        f"cannot reach the Ray cluster at {address}: {reason} "
        f"(nothing answered within {timeout_s:g} s); check the head node's address and port"
    )


def local_resources() -> dict[str, float]:
    """What an embedded Ray on this machine will offer (CPUs usable by this process, GPUs)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    gpus = 0
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) != "":
        import torch

        gpus = torch.cuda.device_count()
    return {"CPU": float(cpus), "GPU": float(gpus)}


def autoscaler_configured() -> bool:
    """Ray's own test (Tune's insufficient-resources check): a launcher-made cluster."""
    return Path(BOOTSTRAP_CONFIG).expanduser().exists()


def check_fits(
    cpu: float, gpu: float, nodes: Sequence[dict[str, float]], where: str, autoscaling: bool
) -> None:
    """One trial needs ``cpu`` CPUs and ``gpu`` GPUs on one node: fail unless a node has them.

    With an autoscaler (``autoscaling``) a missing node may still come, so only the
    caller's warning remains.
    """
    if autoscaling:
        return
    if any(n.get("CPU", 0.0) >= cpu and n.get("GPU", 0.0) >= gpu for n in nodes):
        return
    if not any(n.get("CPU", 0.0) >= cpu for n in nodes):
        short, need, option = "CPU", cpu, "--cpus-per-trial / resources.cpu"
        has = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    else:
        short, need, option = "GPU", gpu, "--gpus-per-trial / resources.gpu"
        has = max((n.get("GPU", 0.0) for n in nodes if n.get("CPU", 0.0) >= cpu), default=0.0)
    hint = "" if where == "this machine" else ", or pass --autoscaling if an autoscaler adds nodes"
    raise FashionTuneError(
        f"a trial needs {need:g} {short} but {where} has at most {has:g} {short} on one node, "
        f"so no trial could ever start; lower {option}{hint}"
    )


def cluster_nodes() -> list[dict[str, float]]:
    """The resources of each live node of the joined Ray cluster."""
    import ray

    return [
        {k: float(v) for k, v in n.get("Resources", {}).items()}
        for n in ray.nodes()
        if n.get("Alive")
    ]
