"""One metric reference per shard set (issue: built once, shared by every trial on every node).

A search on a ``ray.cluster_utils.Cluster`` with two worker nodes, each with its own
node-local cache, over a shard set served from a ``file://`` URI that was prepared
without a reference (as sets made before references existed are): the driver makes the
reference once, before any trial; every trial on both nodes scores with the same ruler
and no node trains a metric network.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from conftest import run_cli, tiny_overrides

from fashion_tune.config import MetricsConfig
from fashion_tune.data.reader import ShardSet
from fashion_tune.metrics import reference
from fashion_tune.metrics.evaluate import metric_ref


def test_two_nodes_one_reference_made_once_on_the_driver(
    fmnist_small: Path, tmp_path: Path
) -> None:
    from ray.cluster_utils import Cluster

    # a set as prepared before references existed: shards + manifest only
    old_set = tmp_path / "set"
    old_set.mkdir()
    for f in fmnist_small.iterdir():
        if f.is_file():
            shutil.copy(f, old_set / f.name)
    assert not (old_set / reference.REFERENCE_DIR).exists()
    uri = f"file://{old_set}"

    tiny = {k: v for k, v in tiny_overrides(old_set).items() if k != "data.path"}
    space = tmp_path / "two.yaml"
    space.write_text(
        yaml.safe_dump(
            {
                "name": "two",
                "fixed": {**tiny, "schedule.total_kimg": 0.128},
                "params": {"optim.lr_g": {"loguniform": [1e-4, 1e-3]}},
                "scheduler": {"type": "fifo"},
                "num_samples": 4,
                "max_concurrent": 2,
                "resources": {"cpu": 1, "gpu": 0},
            }
        )
    )
    caches = [tmp_path / "cache-a", tmp_path / "cache-b"]
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        nodes = [
            cluster.add_node(num_cpus=1, env_vars={"FASHION_TUNE_CACHE": str(c)}) for c in caches
        ]
        cluster.wait_for_nodes()
        proc = run_cli(
            "search", str(space), "--data", uri, "--storage", str(tmp_path / "results"),
            "--address", cluster.address, timeout=600,
        )  # fmt: skip
    finally:
        cluster.shutdown()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # the driver made the reference once, beside the set's manifest (the URI)
    index = reference.read_index(reference.reference_store(uri))
    assert index is not None and "made the metric reference" in proc.stdout
    made_at = (old_set / reference.REFERENCE_DIR / reference.INDEX).stat().st_mtime
    ref = reference.load(uri, ShardSet(old_set))

    exp = tmp_path / "results" / "two"
    trials = sorted(exp.glob("trial_*"))
    assert len(trials) == 4
    rulers, node_ids, first_reports = set(), set(), []
    for t in trials:
        rows = [json.loads(x) for x in (t / "result.json").read_text().splitlines()]
        assert rows and all(not r["diverged"] for r in rows)
        rulers |= {r["metric_ref"] for r in rows}
        node_ids |= {r["node_id"] for r in rows}
        first_reports.append(rows[0]["timestamp"])
    cfg = MetricsConfig(num_samples=128, kid_subset_size=64, kid_subsets=5)
    assert rulers == {metric_ref(ref, cfg)}  # one ruler, and it is the stored reference's
    assert node_ids == {n.node_id for n in nodes}  # both nodes trained trials
    assert made_at < min(first_reports)  # made before any trial reported
    for c in caches:  # each node kept its own cache (a file:// set is memory-mapped in
        # place, so the cache holds its shard checksum stamps) and trained no metric net
        assert list((c / "verified").iterdir()), list(c.rglob("*"))
        assert not list(c.rglob("featnet*")) and not list(c.rglob("reference.json"))
        assert not list(c.rglob("_metrics"))
