"""SR-IOV end to end on one node, through every part, against the API emulator:

simulated NIC (fake sysfs, VF netdevs are real veths) -> multus-node's discovery ->
NodeState status -> the operator (reconciling, embedded) -> the node's ConfigMap with
`sriov-inventory.json` -> multus-node writes it under multus.d/ -> a pod ADD through the
C shim and the daemon picks a free VF of `if0` from it -> DEL gives it back -> each
network's `Ready` names the nodes where it is usable, and why not elsewhere.

And what must not happen: pods coming and going write nothing to the NodeState nor the
node's ConfigMap; a sysfs that cannot be read does not wipe the reported inventory.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multus_api.nodeconf import configmap_name
from tests.node.cluster import NODE_USER, ClusterApi
from tests.node.conftest import NODE_NAME, Daemon, vf_pod
from tests.node.emulator import WatchApi
from tests.operator.apiclient import NAMESPACE
from tests.operator.conftest import OPERATOR_USER
from tests.sriov.rig import FakeNic, seed_nic
from tests.sriov.test_podresources import kubelet  # noqa: F401 (the fake kubelet fixture)
from tests.support.cni import pod_args
from tests.support.lab import Node

pytestmark = pytest.mark.usefixtures("c_shim")

OTHER_NODE = "mnd-node-2"  # in the cluster, never reported: no PF there
SETTINGS = (
    "cniVersion: 1.0.0\nmode: thick\nclusterNetwork: flannel-conf\n"
    "sriov:\n  externallyManaged: [enp2s0]\n"  # a device plugin hands out enp2s0's VFs
)
NETWORKS = "/apis/kubernetes.com/v1/namespaces/default/networks"
NODESTATE = f"/apis/multus.cni.cncf.io/v1/nodestates/{NODE_NAME}"
CONFIGMAP = f"/api/v1/namespaces/{NAMESPACE}/configmaps/{configmap_name(NODE_NAME)}"


@pytest.fixture
def cluster(node: Node) -> Iterator[ClusterApi]:
    api = ClusterApi(f"/var/run/netns/{node.name}")
    try:
        yield api
    finally:
        api.close()


def seed_network(name: str, if0: str, ipam: dict[str, Any]) -> dict[str, Any]:
    """A seed-style `Network` object (top-level `plugin` and `args`, a JSON list)."""
    return {
        "apiVersion": "kubernetes.com/v1",
        "kind": "Network",
        "metadata": {"name": name, "namespace": "default"},
        "plugin": "sriov",
        "args": json.dumps([{"if0": if0, "if0name": "net0", "ipam": ipam}]),
    }


def wait(check: Any, what: str, daemon: Daemon, timeout: float = 30) -> Any:
    return daemon.wait_for(check, what, timeout)


def ready(cluster: ClusterApi, name: str) -> dict[str, Any] | None:
    body = cluster.object(f"{NETWORKS}/{name}") or {}
    conds = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conds if c.get("type") == "Ready"), None)


def test_discovery_operator_inventory_and_a_pod_end_to_end(
    node: Node, cluster: ClusterApi, tmp_path: Path, daemons: list[Daemon]
) -> None:
    nic: FakeNic = seed_nic(tmp_path / "nic", node)
    client = cluster.client
    cluster.run(client.add_node(NODE_NAME))
    cluster.run(client.add_node(OTHER_NODE))
    cluster.run(client.set_settings(SETTINGS))
    ipam = node.host_local("10.56.217.0/24", rangeStart="10.56.217.171", gateway="10.56.217.1")
    cluster.run(client.create(NETWORKS, seed_network("sriov-conf", "enp12s0f1", ipam)))
    cluster.run(client.create(NETWORKS, seed_network("sriov-managed", "enp2s0", ipam)))
    cluster.run(client.create(NETWORKS, seed_network("sriov-nowhere", "enp99s0", ipam)))
    master = {
        "apiVersion": "kubernetes.com/v1",
        "kind": "Network",
        "metadata": {"name": "cluster-br", "namespace": "default"},
        "plugin": "bridge",
        "args": json.dumps(
            [
                {
                    "masterplugin": True,
                    "bridge": node.add_bridge("mndsr0"),
                    "ipam": node.host_local("10.206.71.0/24"),
                }
            ]
        ),
    }
    cluster.run(client.create(NETWORKS, master))
    cluster.start_operator()

    # The SR-IOV network operator's own `sriov` first in binDir: --sriov-type maps to ours.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sriov").write_text('#!/bin/sh\necho \'{"code": 7, "msg": "not ours"}\'; exit 1\n')
    (bin_dir / "sriov").chmod(0o755)
    daemon = Daemon(
        node,
        tmp_path,
        cluster,  # type: ignore[arg-type]
        conf_source="configmap",
        extra=(
            "--sysfs-root",
            str(nic.root),
            "--sriov-sim-state",
            str(nic.sim_state),
            "--sriov-devinfo-dir",
            str(tmp_path / "devinfo"),
            "--sriov-discovery-interval",
            "1",
            "--sriov-type",
            "multus-sriov",
        ),
    ).start()
    daemons.append(daemon)

    # discovery -> NodeState -> operator -> ConfigMap -> the file on the node
    inventory_file = node.conf_dir / "multus.d" / "sriov-inventory.json"

    def installed() -> dict[str, Any] | None:
        if not inventory_file.exists():
            return None
        doc: dict[str, Any] = json.loads(inventory_file.read_text())
        return doc if {p["name"] for p in doc.get("pfs", [])} == {"enp12s0f1", "enp2s0"} else None

    doc = wait(installed, "no inventory installed", daemon)
    assert doc["externallyManaged"] == ["enp2s0"]
    f1 = next(p for p in doc["pfs"] if p["name"] == "enp12s0f1")
    assert [vf["netdev"] for vf in f1["vfs"]] == [f"enp12s0f1v{i}" for i in range(4)]
    usable = [u["network"] for u in doc.get("networks", [])]
    assert "default/sriov-conf" in usable and "default/sriov-managed" not in usable

    # the inventory file says enp2s0 is a device plugin's: discovery reports it bare
    def bare() -> bool:
        status = (cluster.object(NODESTATE) or {}).get("status") or {}
        pf = next((p for p in status.get("pfs", []) if p["name"] == "enp2s0"), None)
        return pf is not None and all("netdev" not in vf for vf in pf["vfs"])

    wait(bare, "enp2s0 still reported with netdevs", daemon)
    # what the operator needs to judge a network with the seed's dpdk block here
    assert cluster.object(NODESTATE)["status"]["dpdkRebinding"] is False

    # Ready: where each network is usable, and why not elsewhere
    def verdict(name: str, message: str) -> dict[str, Any] | None:
        cond = ready(cluster, name)
        return cond if cond is not None and cond["message"] == message else None

    cond = wait(
        lambda: verdict(
            "sriov-conf",
            f"usable on 1 of 2 nodes: {NODE_NAME}; not on: {OTHER_NODE} (no PF enp12s0f1)",
        ),
        f"sriov-conf's Ready: {ready(cluster, 'sriov-conf')}",
        daemon,
    )
    assert (cond["status"], cond["reason"]) == ("True", "UsableOnSomeNodes")
    cond = wait(
        lambda: verdict(
            "sriov-managed",
            f"usable on 0 of 2 nodes; not on: {NODE_NAME} (PF enp2s0 (0000:02:00.0) is "
            "externally managed (sriov.externallyManaged: a device plugin or DRA driver hands "
            "out its VFs): picking a free VF of it could give one VF to two pods; name the VF "
            f"by deviceID (a NAD's k8s.v1.cni.cncf.io/resourceName)), {OTHER_NODE} (no PF enp2s0)",
        ),
        f"sriov-managed's Ready: {ready(cluster, 'sriov-managed')}",
        daemon,
    )
    assert (cond["status"], cond["reason"]) == ("False", "NoUsableNode")
    assert ready(cluster, "sriov-nowhere")["status"] == "False"  # type: ignore[index]

    time.sleep(1.5)  # one more periodic pass: nothing new to write
    nodestate_writes = cluster.writes_by(NODE_USER, f"nodestates/{NODE_NAME}")
    configmap_writes = cluster.writes_by(OPERATOR_USER, configmap_name(NODE_NAME))
    assert nodestate_writes and configmap_writes

    # a pod: the daemon picks the first free VF of enp12s0f1 (ours, not binDir's `sriov`)
    pod = cluster.run(
        client.create(
            "/api/v1/namespaces/default/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "vfpod",
                    "namespace": "default",
                    "annotations": {
                        "networks": json.dumps([{"name": "cluster-br"}, {"name": "sriov-conf"}])
                    },
                },
                "spec": {"nodeName": NODE_NAME, "containers": [{"name": "c", "image": "x"}]},
            },
        )
    )
    conf = {
        "cniVersion": "1.0.0",
        "name": "mnd-sriov",
        "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",
        "delegates": [
            {
                "type": "bridge",
                "name": "cluster",
                "masterplugin": True,
                "bridge": node.add_bridge("mndsr1"),
                "ipam": node.host_local("10.206.72.0/24"),
            }
        ],
    }
    netns = node.add_pod("mnd")
    cid = "mndsriovloop"
    args = pod_args(pod, cid)
    added = daemon.shim("c", "ADD", conf, container_id=cid, netns=netns, cni_args=args)
    assert added.rc == 0, added.stdout + added.stderr + daemon.log()[-3000:]
    assert node.pod_addresses(netns)["net0"] == ["10.56.217.171/24"]
    assert nic.host_link("enp12s0f1v0") is None  # VF 0 is in the pod
    records = sorted((node.cni_dir / "sriov" / "allocations").iterdir())
    assert [p.name for p in records] == [f"{nic.pfs[0].vfs[0].pci}.json"]

    # the same rule refuses what Ready said: enp2s0 is not ours to pick from
    other = cluster.run(
        client.create(
            "/api/v1/namespaces/default/pods",
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": "managedpod",
                    "namespace": "default",
                    "annotations": {
                        "networks": json.dumps([{"name": "cluster-br"}, {"name": "sriov-managed"}])
                    },
                },
                "spec": {"nodeName": NODE_NAME, "containers": [{"name": "c", "image": "x"}]},
            },
        )
    )
    netns2 = node.add_pod("mnd")
    refused = daemon.shim(
        "c",
        "ADD",
        conf,
        container_id="mndmanaged",
        netns=netns2,
        cni_args=pod_args(other, "mndmanaged"),
    )
    assert refused.rc == 1 and refused.doc["code"] == 7, refused.stdout
    assert "PF enp2s0 (0000:02:00.0) is externally managed" in refused.doc["msg"]
    assert node.pod_links(netns2) == {"lo"}
    gone = daemon.shim(
        "c",
        "DEL",
        conf,
        container_id="mndmanaged",
        netns=netns2,
        cni_args=pod_args(other, "mndmanaged"),
    )
    assert gone.rc == 0, gone.stdout

    deleted = daemon.shim("c", "DEL", conf, container_id=cid, netns=netns, cni_args=args)
    assert deleted.rc == 0, deleted.stdout + deleted.stderr
    assert nic.host_link("enp12s0f1v0") is not None
    assert list((node.cni_dir / "sriov" / "allocations").iterdir()) == []

    # ADD and DEL moved netdevs (link events, discovery passes) and wrote nothing
    wait(
        lambda: daemon.metric(
            "multus_node_sriov_discoveries_total", trigger="link", outcome="same"
        ),
        "no discovery pass on link events",
        daemon,
    )
    time.sleep(2.5)  # the debounce and a periodic pass after the last event
    assert cluster.writes_by(NODE_USER, f"nodestates/{NODE_NAME}") == nodestate_writes
    assert cluster.writes_by(OPERATOR_USER, configmap_name(NODE_NAME)) == configmap_writes

    # sysfs unreadable: said once, counted, and the last report stands
    away = nic.devices.with_name("devices.away")
    nic.devices.rename(away)
    try:
        wait(
            lambda: "SR-IOV discovery failed: cannot list the PCI devices in" in daemon.log(),
            "no log line for the unreadable sysfs",
            daemon,
        )
        assert daemon.metric(
            "multus_node_sriov_discoveries_total", trigger="periodic", outcome="failed"
        )
        time.sleep(1.5)
        assert cluster.writes_by(NODE_USER, f"nodestates/{NODE_NAME}") == nodestate_writes
        assert daemon.log().count("SR-IOV discovery failed") == 1
    finally:
        away.rename(nic.devices)
    wait(lambda: "SR-IOV discovery works again" in daemon.log(), "no recovery", daemon)
    assert cluster.writes_by(NODE_USER, f"nodestates/{NODE_NAME}") == nodestate_writes


def test_type_sriov_runs_ours_only_where_the_admin_asks(
    node: Node, tmp_path: Path, daemons: list[Daemon]
) -> None:
    """By default `"type": "sriov"` is whatever binDir holds (the SR-IOV network operator's
    sriov-cni); `--sriov-type multus-sriov` maps it to ours; `multus-sriov` is always ours."""
    nic = seed_nic(tmp_path / "nic", node)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sriov").write_text('#!/bin/sh\necho \'{"code": 7, "msg": "not ours"}\'; exit 1\n')
    (bin_dir / "sriov").chmod(0o755)
    sysfs = ("--sysfs-root", str(nic.root), "--sriov-sim-state", str(nic.sim_state))
    sysfs += ("--sriov-devinfo-dir", str(tmp_path / "devinfo"))

    def attach(daemon: Daemon, ptype: str, cid: str) -> Any:
        conf = {
            "cniVersion": "1.0.0",
            "name": "mnd-sriov-type",
            "delegates": [{"type": ptype, "name": "vf", "if0": "enp12s0f1", "vlan": 7}],
        }
        netns = node.add_pod("mnd")
        added = daemon.shim("c", "ADD", conf, container_id=cid, netns=netns)
        if added.rc == 0:
            assert nic.vf_state("enp12s0f1", 0)["vlan"] == 7
            assert daemon.shim("c", "DEL", conf, container_id=cid, netns=netns).rc == 0
        return added

    default = Daemon(node, tmp_path, None, extra=sysfs).start()
    daemons.append(default)
    theirs = attach(default, "sriov", "mndtheirs")
    assert theirs.rc == 1 and theirs.doc["msg"].endswith("ADD failed: not ours"), theirs.stdout
    ours = attach(default, "multus-sriov", "mndours")
    assert ours.rc == 0, ours.stdout + ours.stderr
    assert default.stop() == 0

    mapped = Daemon(node, tmp_path, None, extra=(*sysfs, "--sriov-type", "multus-sriov")).start()
    daemons.append(mapped)
    assert '"type": "sriov" runs ' in mapped.log()
    now_ours = attach(mapped, "sriov", "mndmapped")
    assert now_ours.rc == 0, now_ours.stdout + now_ours.stderr
    assert list((node.cni_dir / "sriov" / "allocations").iterdir()) == []


def test_device_plugin_vf_goes_to_our_delegate_through_the_daemon(
    node: Node,
    api: WatchApi,
    tmp_path: Path,
    daemons: list[Daemon],
    kubelet: str,  # noqa: F811
) -> None:
    """deviceID end to end in thick mode: kubelet's PodResources (a real gRPC server) says
    which VF the device plugin gave the pod; the daemon injects it; the real sriov
    delegate moves exactly that VF into the pod and gives it back on DEL."""
    nic = seed_nic(tmp_path / "nic", node)
    # the first of the pod's devices in Multus's order; VF 0 (the rig numbers VFs
    # backwards in PCI order, so index and address are never confused)
    taken = next(vf for vf in nic.pfs[0].vfs if vf.pci == "0000:0c:02.3")
    assert taken.index == 0
    api.put(
        "k8s.cni.cncf.io/v1/network-attachment-definitions",
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {
                "name": "vfnet",
                "namespace": "team",
                "annotations": {"k8s.v1.cni.cncf.io/resourceName": "intel.com/vf"},
            },
            "spec": {
                "config": json.dumps({"cniVersion": "1.0.0", "type": "multus-sriov", "vlan": 30})
            },
        },
    )
    daemon = Daemon(
        node,
        tmp_path,
        api,
        extra=(
            "--kubelet-pod-resources",
            kubelet,
            "--sysfs-root",
            str(nic.root),
            "--sriov-sim-state",
            str(nic.sim_state),
            "--sriov-devinfo-dir",
            str(tmp_path / "devinfo"),
        ),
    ).start()
    daemons.append(daemon)
    pod = vf_pod(api, "vfnet")
    conf = {
        "cniVersion": "1.0.0",
        "name": "mnd-devid",
        "kubeconfig": "/x",
        "delegates": [
            {
                "type": "bridge",
                "bridge": node.add_bridge("mndsr2"),
                "ipam": node.host_local("10.206.73.0/24"),
            }
        ],
    }
    netns = node.add_pod("mnd")
    cid = "mnddevid"
    added = daemon.shim(
        "c", "ADD", conf, container_id=cid, netns=netns, cni_args=pod_args(pod, cid)
    )
    assert added.rc == 0, added.stdout + added.stderr
    assert nic.host_link(str(taken.netdev)) is None  # VF 3 is in the pod, as net1
    assert "net1" in node.pod_links(netns)
    assert nic.vf_state("enp12s0f1", 0)["vlan"] == 30
    assert all(nic.host_link(str(vf.netdev)) for vf in nic.pfs[0].vfs[1:])
    deleted = daemon.shim(
        "c", "DEL", conf, container_id=cid, netns=netns, cni_args=pod_args(pod, cid)
    )
    assert deleted.rc == 0, deleted.stdout
    assert nic.host_link(str(taken.netdev)) is not None
    assert nic.vf_state("enp12s0f1", 0)["vlan"] == 0
