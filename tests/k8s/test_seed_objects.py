"""The seed's "Usage with Kubernetes CRD based network objects": three `Network`
objects and `pod-multi-network.yaml`, on real plugins in real netns (bridge stands in
for flannel, host-device on a veth end for sriov)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import yaml

from tests.k8s.conftest import Lab
from tests.k8s.emulator import POD
from tests.support.lab import Node

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FLANNEL = "10.204.10.0/24"
SRIOV = "10.204.11.0/24"


def seed_pod_annotations() -> dict[str, str]:
    """The annotations of the seed's pod-multi-network.yaml, unchanged."""
    doc = yaml.safe_load((EXAMPLES / "pod-multi-network.yaml").read_text())
    annotations: dict[str, str] = doc["metadata"]["annotations"]
    return annotations


def seed_networks(lab: Lab, namespace: str = "default") -> None:
    """The seed's three objects with their plugins swapped for local stand-ins (a bridge
    and two veths made here on the node); the shapes (top-level plugin, args as a string
    holding a one-object list) are the seed's. The seed's sriov route to 0.0.0.0/0 would
    fight the master's default route: left out."""
    bridge = lab.node.add_bridge("midcni0")
    vf1, _ = lab.node.add_veth("midvf1", "midvf1p")
    vf2, _ = lab.node.add_veth("midvf2", "midvf2p")
    flannel_args = {
        "bridge": bridge,
        "isDefaultGateway": True,
        "ipam": lab.node.host_local(FLANNEL),
    }
    sriov_args = {
        "if0": "enp12s0f1",
        "device": vf1,
        "ipam": lab.node.host_local(
            SRIOV,
            rangeStart="10.204.11.171",
            rangeEnd="10.204.11.181",
            gateway="10.204.11.1",
        ),
    }
    vlan_args = {"if0": "enp2s0", "device": vf2, "vlan": 210, "if0name": "north", "l2enable": True}
    lab.network("flannel-conf", "bridge", json.dumps([flannel_args]), namespace)
    lab.network("sriov-conf", "host-device", json.dumps([sriov_args]), namespace)
    lab.network("sriov-vlanid-l2enable-conf", "host-device", json.dumps([vlan_args]), namespace)


def test_seed_pod_multi_network(lab: Lab) -> None:
    node = lab.node
    seed_networks(lab)
    pod = lab.pod("multus-multi-net-poc", "mid-apps", seed_pod_annotations())
    # The seed's node conf: name, type and kubeconfig only (no delegates).
    conf = lab.conf()
    netns = node.add_pod("mid")

    added = lab.run("ADD", conf, pod, netns, container_id="midseed1")
    assert added.rc == 0, added.stdout + added.stderr
    result = added.doc
    # The master (first listed) network's result is returned: eth0 on the flannel stand-in.
    assert [i["name"] for i in result["interfaces"] if i.get("sandbox")] == ["eth0"]
    eth0 = ipaddress.ip_interface(result["ips"][0]["address"])
    assert eth0.ip in ipaddress.ip_network(FLANNEL)

    links = Node.pod_links(netns)
    assert {"eth0", "net0", "north"} <= links, links
    addresses = Node.pod_addresses(netns)
    assert ipaddress.ip_interface(addresses["net0"][0]).ip in ipaddress.ip_network(SRIOV)
    assert addresses.get("north", []) == []  # l2enable: no IPAM
    default = [r for r in Node.pod_routes(netns) if r["dst"] == "default"]
    assert [r["dev"] for r in default] == ["eth0"]

    # The objects were found in `default`, after the pod's own namespace (as the seed did).
    status = lab.status("multus-multi-net-poc", "mid-apps")
    assert [(s["name"], s["interface"], s.get("default", False)) for s in status] == [
        ("default/flannel-conf", "eth0", True),
        ("default/sriov-conf", "net0", False),
        ("default/sriov-vlanid-l2enable-conf", "north", False),
    ]
    events = lab.api.events("mid-apps")
    assert sorted(e["message"].split()[1] for e in events) == ["eth0", "net0", "north"]
    assert {e["reason"] for e in events} == {"AddedInterface"}

    lab.api.clear_log()
    checked = lab.run("CHECK", conf, pod, netns, container_id="midseed1")
    assert checked.rc == 0, checked.stdout + checked.stderr
    deleted = lab.run("DEL", conf, pod, netns, container_id="midseed1")
    assert deleted.rc == 0, deleted.stdout + deleted.stderr
    assert lab.api.requests() == [], "CHECK and DEL must not need the API"
    assert node.pod_links(netns) == {"lo"}


def test_seed_no_annotation_uses_conf_delegates(lab: Lab) -> None:
    """The seed's "weave as default network" conf: kubeconfig plus delegates; a pod
    without the annotation gets the delegates."""
    node = lab.node
    bridge = node.add_bridge("midcni0")
    conf = lab.conf(
        [
            {
                "type": "bridge",
                "bridge": bridge,
                "masterplugin": True,
                "isDefaultGateway": True,
                "ipam": node.host_local(FLANNEL),
            }
        ]
    )
    pod = lab.pod("plain")
    netns = node.add_pod("mid")
    added = lab.run("ADD", conf, pod, netns, container_id="midplain")
    assert added.rc == 0, added.stdout + added.stderr
    assert Node.pod_links(netns) == {"lo", "eth0"}
    status = lab.status("plain")
    assert [(s["name"], s["interface"], s["default"]) for s in status] == [
        ("mid-k8s-0", "eth0", True)
    ]
    assert lab.run("DEL", conf, pod, netns, container_id="midplain").rc == 0


def test_seed_missing_network_object(lab: Lab) -> None:
    node = lab.node
    seed_networks(lab)
    annotations = {"networks": '[{"name": "flannel-conf"}, {"name": "nowhere-conf"}]'}
    pod = lab.pod("lost", "mid-apps", annotations)
    netns = node.add_pod("mid")
    failed = lab.run("ADD", lab.conf(), pod, netns, container_id="midlost")
    assert failed.rc != 0
    error: dict[str, Any] = failed.doc
    assert error["code"] == 7
    assert "nowhere-conf" in error["msg"] and "mid-apps, default" in error["msg"]
    assert Node.pod_links(netns) == {"lo"}
    stored = lab.api.get(POD, "mid-apps", "lost")
    assert stored is not None and stored["metadata"]["annotations"] == annotations
