"""Thick mode end to end: real netns, Debian's plugins, the daemon as a process, both
shims, the API emulator with watches. A pod with three networks from network objects,
API requests counted at the emulator."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.node.conftest import NODE_NAME, Daemon, nad, node_pod
from tests.node.emulator import WatchApi
from tests.support.cni import CNI_PLUGINS, leases, pod_args
from tests.support.lab import Node

CLUSTER = "10.206.10.0/24"
BLUE = "10.206.11.0/24"
RED = "10.206.12.0/24"


def world(node: Node, api: WatchApi, name: str = "web") -> tuple[dict[str, Any], dict[str, Any]]:
    """A conf with the cluster network (bridge) and a pod asking for two NADs."""
    bridge = node.add_bridge("mndcni0")
    nad(api, "blue", {"cniVersion": "1.0.0", "type": "ptp", "ipam": node.host_local(BLUE)})
    nad(
        api,
        "red",
        {
            "cniVersion": "1.0.0",
            "plugins": [
                {"type": "ptp", "ipam": node.host_local(RED)},
                {"type": "tuning", "sysctl": {"net.ipv4.conf.all.log_martians": "1"}},
            ],
        },
    )
    pod = node_pod(api, name, "blue, red")
    conf = {
        "cniVersion": "1.0.0",
        "name": "mnd-k8s",
        "kubeconfig": "/ignored/by/the/daemon",
        "delegates": [
            {
                "name": "mnd-cluster",
                "type": "bridge",
                "bridge": bridge,
                "isDefaultGateway": True,
                "ipam": node.host_local(CLUSTER),
            }
        ],
    }
    return conf, pod


def wait_cached(api: WatchApi, daemon: Daemon) -> None:
    """Until the daemon's caches hold what the emulator holds: this node's pods and every
    NAD (the world's objects are put just before)."""

    def count(resource: str, keep: Any = lambda obj: True) -> int:
        def counted() -> int:
            return sum(
                1
                for (res, _, _), obj in list(api.emulator.objects.items())
                if str(res.plural) == resource and not obj.deleted and keep(dict(obj.raw))
            )

        return int(api.call(counted))

    pods = count("pods", lambda obj: (obj.get("spec") or {}).get("nodeName") == NODE_NAME)
    nads = count("network-attachment-definitions")
    daemon.wait_for(
        lambda: (
            daemon.metric("multus_node_cache_objects", resource="pods") == pods
            and daemon.metric(
                "multus_node_cache_objects", resource="network-attachment-definitions"
            )
            == nads
        ),
        f"{pods} pods and {nads} NADs not cached",
    )


@pytest.mark.parametrize("shim", ["c", "py"])
def test_pod_with_three_networks_zero_reads_when_warm(
    node: Node, api: WatchApi, thick: Daemon, shim: str
) -> None:
    conf, pod = world(node, api)
    wait_cached(api, thick)
    netns = node.add_pod("mnd")
    mark = len(api.queries())
    added = thick.shim(
        shim, "ADD", conf, container_id="mndweb", netns=netns, cni_args=pod_args(pod, "mndweb")
    )
    assert added.rc == 0, added.stdout + added.stderr
    result = added.doc
    assert result["cniVersion"] == "1.0.0"
    assert Node.pod_links(netns) == {"lo", "eth0", "net1", "net2"}
    assert api.reads(mark) == [], "a warm ADD reads nothing from the API"
    writes = [(m, p) for m, p, _ in api.queries()[mark:] if m != "GET"]
    assert writes[0] == ("PATCH", "/api/v1/namespaces/default/pods/web/status")
    assert [m for m, _ in writes[1:]] == ["POST"] * 3  # one AddedInterface Event each
    status = json.loads(
        api.get("v1/pods", "default", "web")["metadata"]["annotations"][
            "k8s.v1.cni.cncf.io/network-status"
        ]
    )
    assert [s["name"] for s in status] == ["mnd-cluster", "default/blue", "default/red"]
    assert [s["interface"] for s in status] == ["eth0", "net1", "net2"]
    checked = thick.shim(
        shim, "CHECK", conf, container_id="mndweb", netns=netns, cni_args=pod_args(pod, "mndweb")
    )
    assert checked.rc == 0, checked.stdout
    mark = len(api.queries())
    deleted = thick.shim(
        shim, "DEL", conf, container_id="mndweb", netns=netns, cni_args=pod_args(pod, "mndweb")
    )
    assert deleted.rc == 0, deleted.stdout + deleted.stderr
    assert deleted.stdout == ""
    assert api.queries()[mark:] == [] or all(
        q[2].get("watch") == "true" for q in api.queries()[mark:]
    ), "DEL needs no API"
    assert Node.pod_links(netns) == {"lo"}
    assert thick.metric("multus_node_requests_total", command="ADD", code="0") == 1
    assert thick.metric("multus_node_api_reads_total", resource="pods", reason="miss") == 0


def test_cache_miss_and_uid_mismatch_cost_one_get(node: Node, api: WatchApi, thick: Daemon) -> None:
    conf, pod = world(node, api)
    wait_cached(api, thick)
    # The pod re-created under the same name (a StatefulSet's): the cache still has the
    # old one for a moment; the runtime's K8S_POD_UID names the new one.
    fresh = dict(pod, metadata={**pod["metadata"], "uid": "0f0f0f0f-new"})
    api.call(lambda: api.emulator.objects[("v1/pods", "default", "web")].update(fresh))
    netns = node.add_pod("mnd")
    mark = len(api.queries())
    added = thick.shim(
        "c", "ADD", conf, container_id="mndnew", netns=netns, cni_args=pod_args(fresh, "mndnew")
    )
    assert added.rc == 0, added.stdout + added.stderr
    assert api.reads(mark) == [("GET", "/api/v1/namespaces/default/pods/web")]
    assert thick.metric("multus_node_api_reads_total", resource="pods", reason="uid-mismatch") == 1
    assert (
        thick.shim(
            "c", "DEL", conf, container_id="mndnew", netns=netns, cni_args=pod_args(fresh, "mndnew")
        ).rc
        == 0
    )
    # A pod the watch has not delivered yet: one GET, then the ADD goes on.
    api.call(
        lambda: api.emulator.objects.__setitem__(
            ("v1/pods", "default", "late"),
            {**fresh, "metadata": {**fresh["metadata"], "name": "late", "uid": "late-uid"}},
        )
    )
    late = api.get("v1/pods", "default", "late")
    mark = len(api.queries())
    added = thick.shim(
        "c", "ADD", conf, container_id="mndlate", netns=netns, cni_args=pod_args(late, "mndlate")
    )
    assert added.rc == 0, added.stdout + added.stderr
    assert api.reads(mark) == [("GET", "/api/v1/namespaces/default/pods/late")]
    assert (
        thick.shim(
            "c",
            "DEL",
            conf,
            container_id="mndlate",
            netns=netns,
            cni_args=pod_args(late, "mndlate"),
        ).rc
        == 0
    )


def test_request_cannot_choose_binaries_cache_or_files(
    node: Node, api: WatchApi, thick: Daemon, tmp_path: Any
) -> None:
    """binDir, cniDir, confDir, logFile and CNI_PATH come from the daemon: a caller who
    reaches the socket cannot run its own binary or write records elsewhere."""
    evil = tmp_path / "evil"
    evil.mkdir()
    marker = tmp_path / "canary.ran"
    canary = evil / "bridge"
    canary.write_text(f"#!/bin/sh\necho ran >> {marker}\nexit 1\n")
    canary.chmod(0o755)
    conf, pod = world(node, api)
    conf.update(
        binDir=str(evil),
        cniDir=str(tmp_path / "elsewhere"),
        confDir=str(evil),
        logFile=str(tmp_path / "log"),
    )
    netns = node.add_pod("mnd")
    args = pod_args(pod, "mndevil")
    added = thick.shim(
        "c",
        "ADD",
        conf,
        container_id="mndevil",
        netns=netns,
        cni_args=args,
        cni_path=str(evil),
        extra_env={"LD_PRELOAD": str(evil / "x.so")},
    )
    assert added.rc == 0, added.stdout + added.stderr
    assert not marker.exists()
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "log").exists()
    assert (node.cni_dir / "attachments" / "mndevil:eth0.json").exists()
    assert thick.shim("c", "DEL", conf, container_id="mndevil", netns=netns, cni_args=args).rc == 0


def test_conf_file_mode_without_pod(node: Node, thick: Daemon) -> None:
    """No pod in CNI_ARGS and no kubeconfig: the conf's delegates, as the thin plugin."""
    bridge = node.add_bridge("mndcf0")
    conf = {
        "cniVersion": "0.4.0",
        "name": "mnd-file",
        "delegates": [{"type": "bridge", "bridge": bridge, "ipam": node.host_local(CLUSTER)}],
    }
    netns = node.add_pod("mnd")
    added = thick.shim("py", "ADD", conf, container_id="mndcf", netns=netns)
    assert added.rc == 0, added.stdout
    assert added.doc["cniVersion"] == "0.4.0"
    assert thick.shim("py", "DEL", conf, container_id="mndcf", netns=netns).rc == 0
    assert CNI_PLUGINS


def test_gc_and_status_through_the_daemon(node: Node, thick: Daemon, tmp_path: Any) -> None:
    ready = tmp_path / "cluster-ready"
    ready.write_text("")
    bridge = node.add_bridge("mndgc0")
    conf = {
        "cniVersion": "1.1.0",
        "name": "mnd-gc",
        "readinessindicatorfile": str(ready),
        "delegates": [{"type": "bridge", "bridge": bridge, "ipam": node.host_local(CLUSTER)}],
    }
    pods = {cid: node.add_pod("mnd") for cid in ("mndgca", "mndgcb")}
    for cid, netns in pods.items():
        added = thick.shim("c", "ADD", conf, container_id=cid, netns=netns)
        assert added.rc == 0, added.stdout
        assert added.doc["cniVersion"] == "1.1.0"
    valid = {**conf, "cni.dev/valid-attachments": [{"containerID": "mndgca", "ifname": "eth0"}]}
    collected = thick.shim("py", "GC", valid, container_id="", netns="", ifname="")
    assert collected.rc == 0, collected.stdout
    records = sorted(p.name for p in (node.cni_dir / "attachments").iterdir())
    assert records == ["mndgca:eth0.json"]
    assert len(leases(node.data_dir)) == 1
    assert thick.shim("c", "STATUS", conf, container_id="", netns="", ifname="").rc == 0
    ready.unlink()
    status = thick.shim("c", "STATUS", conf, container_id="", netns="", ifname="")
    assert status.doc["code"] == 50 and str(ready) in status.doc["msg"]
    assert thick.shim("c", "DEL", conf, container_id="mndgca", netns=pods["mndgca"]).rc == 0
