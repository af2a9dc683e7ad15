"""rbac/rules.yaml's `node` component against what the agent really sends: a day of the
agent's life (conf from its ConfigMap, NodeState, caches, a pod's ADD/CHECK/DEL through
the shim with a cache miss, the thin plugin with the agent's kubeconfig) is replayed
against the emulator, and every request must be allowed by a rule, and every rule
used by some request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.node.conftest import NODE_NAME, Daemon, node_pod
from tests.node.emulator import WatchApi
from tests.node.test_install import rendered, set_configmap, wait_until
from tests.node.test_thick_e2e import wait_cached, world
from tests.support.cni import CNI_PLUGINS, pod_args, run_multus
from tests.support.lab import Node

RULES = Path(__file__).resolve().parents[2] / "rbac" / "rules.yaml"
NAMESPACE = "kube-system"


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    node: list[dict[str, Any]] = doc["node"]
    return node


def attributes(method: str, path: str, query: dict[str, str]) -> tuple[str, str, str, str]:
    """(apiGroup, resource[/subresource], verb, namespace) of one request."""
    parts = path.strip("/").split("/")
    if parts[0] == "api":
        group, rest = "", parts[2:]
    else:
        group, rest = parts[1], parts[3:]
    namespace = ""
    if len(rest) >= 2 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    named = len(rest) >= 2
    if len(rest) >= 3:
        resource += "/" + rest[2]
    verb = {
        "GET": "get" if named else ("watch" if query.get("watch") == "true" else "list"),
        "POST": "create",
        "PATCH": "patch",
        "PUT": "update",
        "DELETE": "delete",
    }[method]
    return group, resource, verb, namespace


def allowed(request: tuple[str, str, str, str], rule: dict[str, Any]) -> bool:
    group, resource, verb, namespace = request
    if rule["scope"] == "namespace" and namespace != NAMESPACE:
        return False
    return group in rule["apiGroups"] and resource in rule["resources"] and verb in rule["verbs"]


def test_rules_are_well_formed() -> None:
    for rule in rules():
        assert set(rule) == {"apiGroups", "resources", "verbs", "scope"}, rule
        assert rule["scope"] in ("cluster", "namespace")
        assert "*" not in rule["verbs"] and "*" not in rule["resources"], "no wildcards"


@pytest.mark.usefixtures("c_shim")
def test_every_request_is_allowed_and_every_rule_used(
    node: Node, api: WatchApi, tmp_path: Path, daemons: list[Daemon]
) -> None:
    token = tmp_path / "token"
    token.write_text("agent-token\n")
    set_configmap(api, {"00-multus.conf": rendered(clusterNetwork="x")})
    daemon = Daemon(
        node, tmp_path, api, conf_source="configmap", extra=("--token-file", str(token))
    ).start()
    daemons.append(daemon)
    wait_until((node.conf_dir / "00-multus.conf").exists, "the conf installed")
    conf, pod = world(node, api)
    wait_cached(api, daemon)
    netns = node.add_pod("mnd")
    for command in ("ADD", "CHECK", "DEL"):
        done = daemon.shim(
            "c",
            command,
            conf,
            container_id="mndrbac",
            netns=netns,
            cni_args=pod_args(pod, "mndrbac"),
        )
        assert done.rc == 0, done.stdout
    # a pod the cache does not hold yet: the ADD's one GET
    late = api.put(
        "v1/pods",
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "late", "namespace": "default"}},
    )
    done = daemon.shim(
        "c", "ADD", conf, container_id="mndlate", netns=netns, cni_args=pod_args(late, "mndlate")
    )
    assert done.rc == 0, done.stdout
    assert daemon.shim("c", "DEL", conf, container_id="mndlate", netns=netns).rc == 0
    # the thin plugin on the host, with the kubeconfig the agent keeps for it: it GETs
    kubeconfig = node.conf_dir / "multus.d" / "multus.kubeconfig"
    wait_until(kubeconfig.exists, "the thin plugin's kubeconfig")
    api.put(
        "kubernetes.com/v1/networks",
        {
            "apiVersion": "kubernetes.com/v1",
            "kind": "Network",
            "metadata": {"name": "seedy", "namespace": "default"},
            "plugin": "ptp",
            "args": json.dumps([{"ipam": node.host_local("10.206.60.0/24")}]),
        },
    )
    thin_conf = {
        **conf,
        "type": "multus",
        "kubeconfig": str(kubeconfig),
        "cniDir": str(node.cni_dir),
        "binDir": CNI_PLUGINS,
    }
    for name, wanted in (
        ("thin-npwg", {"k8s.v1.cni.cncf.io/networks": "blue"}),
        ("thin-seed", {"networks": '[{"name": "seedy"}]'}),
    ):
        thin_pod = api.put(
            "v1/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "annotations": wanted},
            },
        )
        args = pod_args(thin_pod, name.replace("-", ""))
        for command in ("ADD", "DEL"):
            done = run_multus(
                command,
                thin_conf,
                container_id=name.replace("-", ""),
                netns=netns,
                cni_args=args,
                node=node.name,
            )
            assert done.rc == 0, done.stdout + done.stderr
    # DRA: a pod whose ResourceClaim and ResourceSlice the caches do not hold yet (stored
    # without a watch event): the ADD reads the claim and lists the driver's slices
    dra(api, node, daemon, netns)
    requests = {attributes(m, p, q) for m, p, q in api.queries()}
    denied = [r for r in requests if not any(allowed(r, rule) for rule in rules())]
    assert denied == []
    unused = [rule for rule in rules() if not any(allowed(r, rule) for r in requests) for _ in [0]]
    # every (group, resource, verb) a rule grants is exercised
    granted = {
        (g, r, v)
        for rule in rules()
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    used = {(g, r, v) for g, r, v, _ in requests}
    assert granted - used == set(), f"rules nothing needs: {granted - used}"
    assert unused == []


def dra(api: WatchApi, node: Node, daemon: Daemon, netns: str) -> None:
    def store(resource: str, obj: dict[str, Any], namespace: str | None) -> None:
        api.call(
            lambda: api.emulator.objects.__setitem__(
                (resource, namespace, obj["metadata"]["name"]), obj
            )
        )

    store(
        "resource.k8s.io/v1/resourceslices",
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceSlice",
            "metadata": {"name": "late-slice"},
            "spec": {
                "driver": "vf.example.com",
                "nodeName": NODE_NAME,
                "pool": {"name": "p0"},
                "devices": [
                    {
                        "name": "vf-1",
                        "attributes": {
                            "k8s.cni.cncf.io/resourceName": {"string": "vf.example.com/vf"},
                            "k8s.cni.cncf.io/deviceID": {"string": "0000:3b:02.1"},
                        },
                    }
                ],
            },
        },
        None,
    )
    store(
        "resource.k8s.io/v1/resourceclaims",
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {"name": "late-claim", "namespace": "default"},
            "status": {
                "allocation": {
                    "devices": {
                        "results": [
                            {
                                "request": "vf",
                                "driver": "vf.example.com",
                                "pool": "p0",
                                "device": "vf-1",
                            }
                        ]
                    }
                }
            },
        },
        "default",
    )
    api.put(
        "k8s.cni.cncf.io/v1/network-attachment-definitions",
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {
                "name": "vfs",
                "namespace": "default",
                "annotations": {"k8s.v1.cni.cncf.io/resourceName": "vf.example.com/vf"},
            },
            "spec": {"config": json.dumps({"cniVersion": "1.0.0", "type": "tuning"})},
        },
    )
    pod = node_pod(api, "dra", "vfs", claims={"vf": "late-claim"})
    wait_cached(api, daemon)
    conf = {
        "cniVersion": "1.0.0",
        "name": "mnd-dra",
        "kubeconfig": "/x",
        "delegates": [
            {"type": "bridge", "bridge": "mndrbac0", "ipam": node.host_local("10.206.80.0/24")}
        ],
    }
    node.add_bridge("mndrbac0")
    mark = len(api.queries())
    added = daemon.shim(
        "c", "ADD", conf, container_id="mnddra", netns=netns, cni_args=pod_args(pod, "mnddra")
    )
    # tuning on an interface that does not exist fails: the device lookup came first
    assert "resourceclaims/late-claim" in " ".join(p for _, p, _ in api.queries()[mark:])
    assert (
        added.rc != 0 or daemon.shim("c", "DEL", conf, container_id="mnddra", netns=netns).rc == 0
    )
