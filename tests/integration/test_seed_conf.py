"""The seed's "Using with Multus conf file" setup on real plugins, and how interfaces
are named (seed `masterplugin` style and Multus v4 style)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from tests.support.lab import Canary, Node, bridge_delegate, ptp_delegate

FLANNEL = "10.201.0.0/24"
SRIOV = "10.201.2.0/24"
PTP = "10.201.1.0/24"


def seed_conf(node: Node, bridge: str, vf: str) -> dict[str, Any]:
    """The seed's multus-cni.conf with stand-ins: host-device on a veth end for sriov,
    bridge for flannel. The seed gives sriov and ptp default routes too, which cannot
    coexist with the master's; here they get their own subnets' routes only. Like the
    seed, neither the conf nor its delegates carry `cniVersion` or `name`."""
    conf = node.conf(
        [
            {
                "type": "host-device",
                "device": vf,
                "ipam": node.host_local(SRIOV, rangeStart="10.201.2.131", rangeEnd="10.201.2.190"),
            },
            {
                "type": "ptp",
                "ipam": node.host_local(
                    PTP,
                    rangeStart="10.201.1.11",
                    rangeEnd="10.201.1.20",
                    routes=[{"dst": "10.201.101.0/24"}],
                ),
            },
            {
                "type": "bridge",
                "bridge": bridge,
                "masterplugin": True,
                "isDefaultGateway": True,
                "ipam": node.host_local(FLANNEL),
            },
        ],
        name="multus-demo-network",
    )
    return conf


def in_subnet(cidr: str, subnet: str) -> bool:
    return ipaddress.ip_interface(cidr).ip in ipaddress.ip_network(subnet)


def test_seed_three_delegates_add_then_del(node: Node) -> None:
    bridge = node.add_bridge("miacni0")
    vf, vf_peer = node.add_veth("miavf0", "miavf0p")
    node.ip("addr", "add", "10.201.2.1/24", "dev", vf_peer)
    node.ip("link", "set", vf_peer, "up")
    conf = seed_conf(node, bridge, vf)
    pod = node.add_pod("mia")

    add = node.run("ADD", conf, container_id="seedpod", netns=pod)
    assert add.rc == 0, add.stdout + add.stderr
    result = add.doc

    addrs = node.pod_addresses(pod)
    assert set(addrs) == {"eth0", "net0", "net1"}
    assert [in_subnet(a, FLANNEL) for a in addrs["eth0"]] == [True]
    assert [in_subnet(a, SRIOV) for a in addrs["net0"]] == [True]
    assert [in_subnet(a, PTP) for a in addrs["net1"]] == [True]
    first = ipaddress.IPv4Interface(addrs["net0"][0]).ip
    assert first >= ipaddress.IPv4Address("10.201.2.131"), "host-local ignored rangeStart"
    assert vf not in node.links(), "host-device did not take the VF stand-in"
    defaults = [r for r in node.pod_routes(pod) if r["dst"] == "default"]
    assert defaults == [{"dst": "default", "gateway": "10.201.0.1", "dev": "eth0", "flags": []}]

    # Each interface really carries traffic to its network's far end on the node.
    assert node.pod_reaches(pod, "10.201.0.1"), "eth0 (bridge) does not reach its gateway"
    assert node.pod_reaches(pod, "10.201.2.1"), "net0 (host-device) does not reach its peer"
    assert node.pod_reaches(pod, "10.201.1.1"), "net1 (ptp) does not reach the node side"

    # The result is the master's (flannel stand-in) alone, at the conf's (default) version.
    assert result["cniVersion"] == "0.3.1"
    assert [ip["address"] for ip in result["ips"]] == addrs["eth0"]
    assert all(ip["version"] == "4" for ip in result["ips"])
    sandboxed = [i["name"] for i in result["interfaces"] if i.get("sandbox") == pod]
    assert sandboxed == ["eth0"]

    delete = node.run("DEL", conf, container_id="seedpod", netns=pod)
    assert delete.rc == 0, delete.stdout + delete.stderr
    assert delete.stdout == ""
    assert node.pod_links(pod) == {"lo"}
    assert {vf, vf_peer} <= node.links(), "the VF stand-in did not come back to the node"
    assert node.problems() == []


def test_v4_naming_without_masterplugin(node: Node) -> None:
    bridge = node.add_bridge("miacni0")
    conf = node.conf(
        [
            bridge_delegate(node, bridge, FLANNEL, isDefaultGateway=True),
            ptp_delegate(node, PTP),
            ptp_delegate(node, "10.201.3.0/24", name="mia-second"),
        ]
    )
    pod = node.add_pod("mia")
    add = node.run("ADD", conf, container_id="v4pod", netns=pod)
    assert add.rc == 0, add.stdout + add.stderr
    addrs = node.pod_addresses(pod)
    assert set(addrs) == {"eth0", "net1", "net2"}
    assert in_subnet(addrs["eth0"][0], FLANNEL)
    assert in_subnet(addrs["net1"][0], PTP)
    assert in_subnet(addrs["net2"][0], "10.201.3.0/24")
    assert [ip["address"] for ip in add.doc["ips"]] == addrs["eth0"]
    assert node.run("DEL", conf, container_id="v4pod", netns=pod).rc == 0
    assert node.problems() == []


def test_requested_if0name_wins(node: Node) -> None:
    bridge = node.add_bridge("miacni0")
    conf = node.conf(
        [
            ptp_delegate(node, PTP, if0name="data0"),
            bridge_delegate(node, bridge, FLANNEL, masterplugin=True),
            ptp_delegate(node, "10.201.3.0/24", name="mia-second"),
        ]
    )
    pod = node.add_pod("mia")
    add = node.run("ADD", conf, container_id="if0pod", netns=pod)
    assert add.rc == 0, add.stdout + add.stderr
    addrs = node.pod_addresses(pod)
    # Seed style: the master is eth0, the named one keeps its name, the rest count on.
    assert set(addrs) == {"data0", "eth0", "net0"}
    assert in_subnet(addrs["data0"][0], PTP)
    assert in_subnet(addrs["net0"][0], "10.201.3.0/24")
    assert node.run("DEL", conf, container_id="if0pod", netns=pod).rc == 0
    assert node.problems() == []


def _assert_refused_before_anything_ran(
    node: Node, conf: dict[str, Any], canary: Canary, pod: str, words: tuple[str, ...]
) -> None:
    call = node.run("ADD", conf, container_id="badpod", netns=pod, cni_path=_path(node, canary))
    assert call.rc != 0
    error = call.doc
    assert error["code"] == 7, error
    for word in words:
        assert word in error["msg"], error
    assert not canary.ran, "a delegate ran although the conf was invalid"
    assert node.pod_links(pod) == {"lo"}
    assert not Path(node.cni_dir, "attachments").exists() or node.problems() == []


def _path(node: Node, canary: Canary) -> str:
    return f"{node.cni_path}:{canary.path.parent}"


def test_two_masterplugins_refused(node: Node, canary: Canary) -> None:
    bridge = node.add_bridge("miacni0")
    conf = node.conf(
        [
            {"type": "canary", "name": "mia-canary"},
            bridge_delegate(node, bridge, FLANNEL, masterplugin=True),
            ptp_delegate(node, PTP, masterplugin=True),
        ]
    )
    pod = node.add_pod("mia")
    _assert_refused_before_anything_ran(node, conf, canary, pod, ("masterplugin",))


def test_duplicate_interface_names_refused(node: Node, canary: Canary) -> None:
    bridge = node.add_bridge("miacni0")
    conf = node.conf(
        [
            bridge_delegate(node, bridge, FLANNEL),
            {"type": "canary", "name": "mia-canary"},
            ptp_delegate(node, PTP, if0name="net1"),
        ]
    )
    pod = node.add_pod("mia")
    _assert_refused_before_anything_ran(node, conf, canary, pod, ("net1",))


def test_macvlan_on_a_bridge_with_static_ipam(node: Node) -> None:
    bridge = node.add_bridge("miacni0")
    node.ip("addr", "add", "10.201.0.1/24", "dev", bridge)
    # The LAN: a bridge for macvlan to sit on, with a neighbour on one of its ports
    # (a macvlan never talks to its own lower device's addresses).
    lan = node.add_bridge("mialan0")
    port, neighbour = node.add_veth("mialanp", "mialann")
    node.ip("link", "set", port, "master", lan, "up")
    node.ip("addr", "add", "10.201.5.1/24", "dev", neighbour)
    node.ip("link", "set", neighbour, "up")
    conf = node.conf(
        [
            bridge_delegate(node, bridge, FLANNEL, isGateway=False),
            {
                "type": "macvlan",
                "master": lan,
                "mode": "bridge",
                "ipam": {"type": "static", "addresses": [{"address": "10.201.5.10/24"}]},
            },
        ],
        cniVersion="1.0.0",
    )
    pod = node.add_pod("mia")
    add = node.run("ADD", conf, container_id="macpod", netns=pod)
    assert add.rc == 0, add.stdout + add.stderr
    assert node.pod_addresses(pod)["net1"] == ["10.201.5.10/24"]
    details = json.loads(node.pod_ip(pod, "-d", "-j", "link", "show", "net1"))[0]
    assert details["linkinfo"]["info_kind"] == "macvlan"
    assert node.pod_reaches(pod, "10.201.5.1"), "net1 (macvlan) does not reach its LAN"
    delete = node.run("DEL", conf, container_id="macpod", netns=pod)
    assert delete.rc == 0, delete.stdout + delete.stderr
    assert node.pod_links(pod) == {"lo"}
    assert node.problems() == []
