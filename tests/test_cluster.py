"""The cluster configs in cluster/: Ray's own launcher schema, plus the security properties.

`prepare_config` + `validate_config` are what `ray up` runs first (a private Ray module; it
needs jsonschema, not boto3 or the network). `prepare_config` merges the AWS defaults in
only at the top level, so a missing `head_start_ray_commands` or `setup_commands` would be
filled with Ray's unsafe defaults: the checks below read the YAML as written.
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = Path(__file__).resolve().parents[1] / "cluster"
AWS = CLUSTER / "aws.yaml"
KUBERAY = CLUSTER / "kuberay-rayjob.yaml"

# `ray==X`, `ray[extras]==X`, `"ray[extras]==X"`
RAY_PIN = re.compile(r"""(?<![\w.-])ray(?:\[[^\]]*\])?==([^\s"']+)""")


def ray_validate(config: dict[str, Any]) -> dict[str, Any]:
    """What `ray up` checks before it touches the cloud; returns the prepared config."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.fixture(scope="module")
def aws() -> dict[str, Any]:
    return yaml.safe_load(AWS.read_text())


@pytest.fixture(scope="module")
def kuberay_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(KUBERAY.read_text()) if d is not None]


# --- AWS cluster launcher ------------------------------------------------------------


def test_aws_config_passes_rays_schema(aws: dict[str, Any]) -> None:
    prepared = ray_validate(aws)
    assert prepared["provider"]["type"] == "aws"
    # what the launcher will run is what the YAML says, not Ray's defaults
    assert prepared["head_start_ray_commands"] == aws["head_start_ray_commands"]
    assert prepared["worker_start_ray_commands"] == aws["worker_start_ray_commands"]
    assert prepared["head_setup_commands"] == aws["setup_commands"] + aws["head_setup_commands"]


def _joined(commands: list[str]) -> str:
    return "\n".join(commands)


def test_aws_start_commands_use_token_auth_and_a_local_dashboard(aws: dict[str, Any]) -> None:
    head = aws.get("head_start_ray_commands")
    workers = aws.get("worker_start_ray_commands")
    assert head, "head_start_ray_commands must be set (the default opens 0.0.0.0)"
    assert workers, "worker_start_ray_commands must be set"
    for commands in (head, workers):
        starts = [c for c in commands if "ray start" in c]
        assert len(starts) == 1
        # exported in the same shell command that starts Ray
        assert "RAY_AUTH_MODE=token" in starts[0].split("ray start")[0]
    head_start = next(c for c in head if "ray start" in c)
    assert "--head" in head_start
    assert "--dashboard-host=127.0.0.1" in head_start
    assert "0.0.0.0" not in _joined(head + workers)


def test_aws_token_reaches_every_node(aws: dict[str, Any]) -> None:
    paths = set(
        re.findall(r"RAY_AUTH_TOKEN_PATH=(\S+?)[;'\s]", _joined(aws["head_start_ray_commands"]))
    )
    assert len(paths) == 1
    (token_path,) = paths
    # file_mounts go to the head and, through the autoscaler, to every worker
    assert aws["file_mounts"][token_path] == "~/.ray/auth_token"
    assert f"RAY_AUTH_TOKEN_PATH={token_path}" in _joined(aws["worker_start_ray_commands"])


def test_aws_setup_installs_the_project_with_the_pinned_ray(aws: dict[str, Any]) -> None:
    setup = aws.get("setup_commands")
    assert setup, "setup_commands must be set (the default installs a nightly Ray)"
    text = _joined(setup)
    assert RAY_PIN.findall(text) == [ray.__version__]
    assert "ray-wheels" not in text and "nightly" not in text and "dev0" not in text
    # the project wheel, placed on the node by file_mounts
    wheel = next(tok for tok in shlex.split(text) if tok.endswith(".whl"))
    mount = next(remote for remote in aws["file_mounts"] if wheel.startswith(remote + "/"))
    assert aws["file_mounts"][mount] == "./dist"
    # the Docker image is Ray's image of the same version
    assert aws["docker"]["image"].startswith(f"rayproject/ray:{ray.__version__}-")


def test_aws_head_runs_no_trials_and_workers_have_gpus(aws: dict[str, Any]) -> None:
    types = aws["available_node_types"]
    head = types[aws["head_node_type"]]
    assert head["resources"].get("CPU") == 0
    assert "--num-cpus=0" in _joined(aws["head_start_ray_commands"])
    workers = {name: t for name, t in types.items() if name != aws["head_node_type"]}
    assert workers
    for t in workers.values():
        assert t["resources"].get("GPU", 0) >= 1
        # Ray only checks the sum of min_workers against the global max_workers, not each
        # node type's min against its max, so that is checked here.
        assert 0 <= t.get("min_workers", 0) <= t["max_workers"] <= aws["max_workers"]


def test_aws_opens_no_ray_port_to_the_outside(aws: dict[str, Any]) -> None:
    extra_rules = aws["provider"].get("security_group", {}).get("IpPermissions", [])
    assert extra_rules == []


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda c: c.update(max_wokers=4), "max_wokers"),
        (lambda c: c["available_node_types"]["gpu_worker"].update(num_gpus=1), "num_gpus"),
        (lambda c: c["docker"].update(imgae="rayproject/ray"), "imgae"),
        (lambda c: c["available_node_types"]["gpu_worker"].update(resources={"GPU": 0.5}), "0.5"),
        (lambda c: c["available_node_types"]["gpu_worker"].update(min_workers=9), "max_workers"),
        (lambda c: c.update(head_node_type="ray.head.default"), "head_node_type"),
    ],
    ids=[
        "unknown-key",
        "unknown-node-key",
        "docker-typo",
        "fractional-gpu",
        "min-over-global-max",
        "head",
    ],
)
def test_rays_schema_rejects_broken_configs(aws: dict[str, Any], mutate: Any, error: str) -> None:
    import jsonschema

    broken = copy.deepcopy(aws)
    mutate(broken)
    with pytest.raises((jsonschema.ValidationError, ValueError), match=re.escape(error)):
        ray_validate(broken)


def test_rays_defaults_are_unsafe_so_the_yaml_must_override_them(aws: dict[str, Any]) -> None:
    bare = {k: v for k, v in aws.items() if k not in ("head_start_ray_commands", "setup_commands")}
    prepared = ray_validate(bare)
    assert "--dashboard-host=0.0.0.0" in _joined(prepared["head_start_ray_commands"])
    assert "RAY_AUTH_MODE" not in _joined(prepared["head_start_ray_commands"])
    assert RAY_PIN.findall(_joined(prepared["setup_commands"])) == []


# --- KubeRay RayJob ------------------------------------------------------------------


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _ray_container(pod_template: dict[str, Any]) -> dict[str, Any]:
    return pod_template["spec"]["containers"][0]


def _mounted_claims(pod_template: dict[str, Any]) -> dict[str, str]:
    """claimName -> mountPath in the Ray container."""
    volumes = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod_template["spec"].get("volumes", [])
        if "persistentVolumeClaim" in v
    }
    return {
        volumes[m["name"]]: m["mountPath"]
        for m in _ray_container(pod_template).get("volumeMounts", [])
        if m["name"] in volumes
    }


def test_kuberay_rayjob_shape_and_version(kuberay_docs: list[dict[str, Any]]) -> None:
    job = _one(kuberay_docs, "RayJob")
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]["rayClusterSpec"]
    assert spec["rayVersion"] == ray.__version__
    assert spec["authOptions"] == {"mode": "token"}
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    templates = [head["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
    images = {_ray_container(t)["image"] for t in templates}
    assert len(images) == 1
    assert ray.__version__ in images.pop()
    # every object lives in one namespace
    assert {d["metadata"].get("namespace") for d in kuberay_docs if d["kind"] != "Namespace"} == {
        _one(kuberay_docs, "Namespace")["metadata"]["name"]
    }


def test_kuberay_has_a_gpu_worker_group(kuberay_docs: list[dict[str, Any]]) -> None:
    groups = _one(kuberay_docs, "RayJob")["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    gpu_groups = [
        g
        for g in groups
        if _ray_container(g["template"])["resources"]["limits"].get("nvidia.com/gpu")
    ]
    assert gpu_groups
    for g in gpu_groups:
        assert 0 <= g["minReplicas"] <= g["maxReplicas"]


def test_kuberay_shared_volume_is_rwx_mounted_everywhere_and_is_the_storage(
    kuberay_docs: list[dict[str, Any]],
) -> None:
    pvc = _one(kuberay_docs, "PersistentVolumeClaim")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    claim = pvc["metadata"]["name"]
    job = _one(kuberay_docs, "RayJob")
    spec = job["spec"]["rayClusterSpec"]
    templates = [spec["headGroupSpec"]["template"]] + [
        g["template"] for g in spec["workerGroupSpecs"]
    ]
    mount_paths = {_mounted_claims(t).get(claim) for t in templates}
    assert len(mount_paths) == 1 and None not in mount_paths
    (mount,) = mount_paths
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:2] == ["fashion-tune", "search"]
    assert argv[argv.index("--address") + 1] == "auto"
    assert "--autoscaling" in argv  # no GPU worker at the start: wait for the autoscaler
    storage = argv[argv.index("--storage") + 1]
    assert storage == mount or storage.startswith(mount.rstrip("/") + "/")


def test_kuberay_network_policy_limits_who_reaches_the_pods(
    kuberay_docs: list[dict[str, Any]],
) -> None:
    policy = _one(kuberay_docs, "NetworkPolicy")["spec"]
    assert policy["podSelector"] == {}
    assert policy["policyTypes"] == ["Ingress"]
    for rule in policy["ingress"]:
        assert rule.get("from"), "an ingress rule without 'from' admits everyone"
        for peer in rule["from"]:
            assert "ipBlock" not in peer
