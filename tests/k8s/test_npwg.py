"""NPWG NetworkAttachmentDefinitions on real plugins: the JSON and shorthand selection
forms, capabilities, default-route, namespace isolation, clusterNetwork/defaultNetworks
as NADs, and the network-status annotation checked field by field."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

import pytest

from tests.k8s.conftest import Lab
from tests.support.cni import CniCall
from tests.support.lab import Node

CLUSTER = "10.204.20.0/24"
BLUE = "10.204.21.0/24"
RED = "10.204.22.0/24"
GREEN = "10.204.23.0/24"
YELLOW = "10.204.24.0/24"
ALT = "10.204.25.0/24"


def cluster_conf(lab: Lab, bridge: str, **extra: Any) -> dict[str, Any]:
    return lab.conf(
        [
            {
                "name": "mid-cluster",
                "type": "bridge",
                "bridge": bridge,
                "isDefaultGateway": True,
                "ipam": lab.node.host_local(CLUSTER),
            }
        ],
        **extra,
    )


def ptp_nad(lab: Lab, subnet: str) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "type": "ptp", "ipam": lab.node.host_local(subnet)}


def pod_links(netns: str) -> dict[str, dict[str, Any]]:
    return {link["ifname"]: link for link in json.loads(Node.pod_ip(netns, "-j", "link", "show"))}


def assert_untouched(lab: Lab, failed: CniCall, netns: str, code: int) -> dict[str, Any]:
    """A refused ADD: the right code, nothing attached, nothing recorded."""
    assert failed.rc != 0
    error: dict[str, Any] = failed.doc
    assert error["code"] == code, error
    assert Node.pod_links(netns) == {"lo"}
    assert not list((lab.node.cni_dir / "attachments").glob("*.json"))
    return error


def test_json_selection_capabilities_default_route_and_status(lab: Lab) -> None:
    node = lab.node
    bridge = node.add_bridge("midcni0")
    blue_bridge = node.add_bridge("midblue")
    master, _ = node.add_veth("midmv0", "midmv0p")
    node.ip("link", "set", master, "up")
    lab.nad(
        "blue",
        {
            "cniVersion": "1.0.0",
            "type": "bridge",
            "bridge": blue_bridge,
            "ipam": node.host_local(BLUE, gateway="10.204.21.1"),
        },
        "mid-a",
    )
    lab.nad(
        "red",
        {
            "cniVersion": "1.0.0",
            "plugins": [
                {
                    "type": "macvlan",
                    "master": master,
                    "mode": "bridge",
                    "capabilities": {"ips": True},
                    "ipam": {"type": "static"},
                },
                {"type": "tuning", "capabilities": {"mac": True}},
            ],
        },
        "mid-a",
    )
    selection = [
        {"name": "blue", "interface": "blue0", "default-route": ["10.204.21.1"]},
        {"name": "red", "ips": ["10.204.22.7/24"], "mac": "0a:58:0a:cc:16:07"},
    ]
    pod = lab.pod("web", "mid-a", {"k8s.v1.cni.cncf.io/networks": json.dumps(selection)})
    conf = cluster_conf(lab, bridge)
    netns = node.add_pod("mid")
    # An IPv6 default route the IPv4 default-route request must leave alone.
    Node.pod_ip(netns, "link", "set", "lo", "up")
    Node.pod_ip(netns, "-6", "route", "add", "default", "dev", "lo")

    added = lab.run("ADD", conf, pod, netns, container_id="midweb")
    assert added.rc == 0, added.stdout + added.stderr

    links = pod_links(netns)
    assert set(links) == {"lo", "eth0", "blue0", "net2"}
    assert links["net2"]["address"] == "0a:58:0a:cc:16:07"
    addresses = Node.pod_addresses(netns)
    assert addresses["net2"] == ["10.204.22.7/24"]
    defaults = [r for r in Node.pod_routes(netns) if r["dst"] == "default"]
    assert [(r["dev"], r["gateway"]) for r in defaults] == [("blue0", "10.204.21.1")]
    v6 = Node.pod_ip(netns, "-6", "route", "show", "default")
    assert "dev lo" in v6

    status = lab.status("web", "mid-a")
    assert [s["name"] for s in status] == ["mid-cluster", "mid-a/blue", "mid-a/red"]
    cluster, blue, red = status
    eth0 = addresses["eth0"][0]
    assert cluster == {
        "name": "mid-cluster",
        "interface": "eth0",
        "ips": [eth0.split("/")[0]],
        "ips-with-prefix": [eth0],
        "mac": links["eth0"]["address"],
        "default": True,
    }
    blue0 = addresses["blue0"][0]
    assert ipaddress.ip_interface(blue0).ip in ipaddress.ip_network(BLUE)
    assert blue == {
        "name": "mid-a/blue",
        "interface": "blue0",
        "ips": [blue0.split("/")[0]],
        "ips-with-prefix": [blue0],
        "mac": links["blue0"]["address"],
        "gateway": ["10.204.21.1"],
    }
    assert red == {
        "name": "mid-a/red",
        "interface": "net2",
        "ips": ["10.204.22.7"],
        "ips-with-prefix": ["10.204.22.7/24"],
        "mac": "0a:58:0a:cc:16:07",
    }
    events = sorted(lab.api.events("mid-a"), key=lambda e: e["message"])
    assert [e["message"] for e in events] == [
        f"Add blue0 ['{blue0}'] from mid-a/blue",
        f"Add eth0 ['{eth0}'] from mid-cluster",
        "Add net2 ['10.204.22.7/24'] from mid-a/red",
    ]
    assert all(e["involvedObject"]["uid"] == pod["metadata"]["uid"] for e in events)

    assert lab.run("DEL", conf, pod, netns, container_id="midweb").rc == 0
    assert Node.pod_links(netns) == {"lo"}


def test_shorthand_selection_across_namespaces(lab: Lab) -> None:
    node = lab.node
    bridge = node.add_bridge("midcni0")
    lab.nad("green", ptp_nad(lab, GREEN), "mid-b")
    lab.nad("yellow", ptp_nad(lab, YELLOW), "mid-a")
    pod = lab.pod("short", "mid-a", {"k8s.v1.cni.cncf.io/networks": "mid-b/green@gr0, yellow"})
    conf = cluster_conf(lab, bridge)
    netns = node.add_pod("mid")
    added = lab.run("ADD", conf, pod, netns, container_id="midshort")
    assert added.rc == 0, added.stdout + added.stderr
    addresses = Node.pod_addresses(netns)
    assert set(addresses) == {"eth0", "gr0", "net2"}
    assert ipaddress.ip_interface(addresses["gr0"][0]).ip in ipaddress.ip_network(GREEN)
    assert ipaddress.ip_interface(addresses["net2"][0]).ip in ipaddress.ip_network(YELLOW)
    status = lab.status("short", "mid-a")
    assert [(s["name"], s["interface"]) for s in status] == [
        ("mid-cluster", "eth0"),
        ("mid-b/green", "gr0"),
        ("mid-a/yellow", "net2"),
    ]
    assert lab.run("DEL", conf, pod, netns, container_id="midshort").rc == 0


def test_namespace_isolation_denied(lab: Lab) -> None:
    node = lab.node
    lab.nad("cluster-net", ptp_nad(lab, CLUSTER), "kube-system")
    lab.nad("green", ptp_nad(lab, GREEN), "mid-b")
    pod = lab.pod("nosy", "mid-a", {"k8s.v1.cni.cncf.io/networks": "mid-b/green"})
    netns = node.add_pod("mid")
    lab.api.clear_log()
    conf = lab.conf(clusterNetwork="cluster-net", namespaceIsolation=True)
    failed = lab.run("ADD", conf, pod, netns, container_id="midno")
    error = assert_untouched(lab, failed, netns, 7)
    assert "namespace isolation" in error["msg"]
    assert "'mid-a'" in error["msg"] and "'mid-b'" in error["msg"]
    # Refused before any object (not even the cluster network's) was read.
    assert all("network-attachment-definitions" not in p for _, p in lab.api.requests())


def test_namespace_isolation_allowed(lab: Lab) -> None:
    """Own namespace and `default` (the global namespace by default) are reachable; so
    is a namespace listed in globalNamespaces."""
    node = lab.node
    bridge = node.add_bridge("midcni0")
    lab.nad("yellow", ptp_nad(lab, YELLOW), "mid-a")
    lab.nad("green", ptp_nad(lab, GREEN), "default")
    lab.nad("alt", ptp_nad(lab, ALT), "mid-b")
    pod = lab.pod(
        "polite", "mid-a", {"k8s.v1.cni.cncf.io/networks": "yellow, default/green, mid-b/alt"}
    )
    netns = node.add_pod("mid")
    conf = cluster_conf(lab, bridge, namespaceIsolation=True, globalNamespaces="default, mid-b")
    added = lab.run("ADD", conf, pod, netns, container_id="midok")
    assert added.rc == 0, added.stdout + added.stderr
    assert set(Node.pod_addresses(netns)) == {"eth0", "net1", "net2", "net3"}
    assert lab.run("DEL", conf, pod, netns, container_id="midok").rc == 0


def test_cluster_and_default_networks_from_nads(lab: Lab) -> None:
    """clusterNetwork/defaultNetworks naming NADs in multusNamespace; defaultNetworks
    skipped in systemNamespaces; v1.multus-cni.io/default-network replaces the cluster
    network for one pod."""
    node = lab.node
    lab.nad("cluster-net", ptp_nad(lab, CLUSTER), "kube-system")
    lab.nad("sidecar", ptp_nad(lab, GREEN), "kube-system")
    lab.nad("alt-cluster", ptp_nad(lab, ALT), "mid-a")
    conf = lab.conf(clusterNetwork="cluster-net", defaultNetworks=["sidecar"])
    cases = [
        (lab.pod("app", "mid-a"), {"eth0": CLUSTER, "net1": GREEN}),
        (lab.pod("dns", "kube-system"), {"eth0": CLUSTER}),
        (
            lab.pod("alt", "mid-a", {"v1.multus-cni.io/default-network": "mid-a/alt-cluster"}),
            {"eth0": ALT, "net1": GREEN},
        ),
    ]
    for index, (pod, expected) in enumerate(cases):
        netns = node.add_pod("mid")
        cid = f"midcl{index}"
        added = lab.run("ADD", conf, pod, netns, container_id=cid)
        assert added.rc == 0, added.stdout + added.stderr
        addresses = Node.pod_addresses(netns)
        got = {k: v for k, v in addresses.items() if k != "lo"}
        assert set(got) == set(expected), got
        for ifname, subnet in expected.items():
            assert ipaddress.ip_interface(got[ifname][0]).ip in ipaddress.ip_network(subnet)
        meta = pod["metadata"]
        status = lab.status(meta["name"], meta["namespace"])
        assert status[0]["default"] is True and status[0]["interface"] == "eth0"
        assert lab.run("DEL", conf, pod, netns, container_id=cid).rc == 0


def test_capability_not_declared_fails(lab: Lab) -> None:
    """NPWG over Multus: `ips`/`mac` for a network whose plugins cannot take them fail
    the attachment instead of being silently dropped."""
    node = lab.node
    bridge = node.add_bridge("midcni0")
    lab.nad("yellow", ptp_nad(lab, YELLOW), "mid-a")
    elements: list[dict[str, Any]] = [
        {"name": "yellow", "ips": ["10.204.24.9/24"]},
        {"name": "yellow", "mac": "0a:58:0a:cc:18:09"},
        {"name": "yellow", "portMappings": [{"hostPort": 8080, "containerPort": 80}]},
        {"name": "yellow", "bandwidth": {"ingressRate": 1000}},
    ]
    for index, element in enumerate(elements):
        pod = lab.pod(
            f"cap{index}", "mid-a", {"k8s.v1.cni.cncf.io/networks": json.dumps([element])}
        )
        netns = node.add_pod("mid")
        failed = lab.run(
            "ADD", cluster_conf(lab, bridge), pod, netns, container_id=f"midcap{index}"
        )
        error = assert_untouched(lab, failed, netns, 7)
        key = next(k for k in element if k != "name")
        assert f"requests {key!r}" in error["msg"] and "mid-a/yellow" in error["msg"]


@pytest.mark.parametrize(
    ("annotation", "needle"),
    [
        (
            '[{"name": "yellow", "interface": "net5"}, {"name": "yellow", "interface": "net5"}]',
            "'net5' is already used",
        ),
        ('[{"name": "yellow", "interface": "eth0"}]', "'eth0' is already used"),
    ],
)
def test_duplicate_interface_names_fail_before_anything_runs(
    lab: Lab, annotation: str, needle: str
) -> None:
    node = lab.node
    bridge = node.add_bridge("midcni0")
    lab.nad("yellow", ptp_nad(lab, YELLOW), "mid-a")
    pod = lab.pod("dup", "mid-a", {"k8s.v1.cni.cncf.io/networks": annotation})
    netns = node.add_pod("mid")
    failed = lab.run("ADD", cluster_conf(lab, bridge), pod, netns, container_id="middup")
    error = assert_untouched(lab, failed, netns, 7)
    assert needle in error["msg"]


def test_seed_and_npwg_annotations_together_fail(lab: Lab) -> None:
    node = lab.node
    bridge = node.add_bridge("midcni0")
    pod = lab.pod(
        "both",
        "mid-a",
        {"networks": '[{"name": "flannel-conf"}]', "k8s.v1.cni.cncf.io/networks": "yellow"},
    )
    netns = node.add_pod("mid")
    failed = lab.run("ADD", cluster_conf(lab, bridge), pod, netns, container_id="midboth")
    error = assert_untouched(lab, failed, netns, 7)
    assert "both" in error["msg"] and "networks" in error["msg"]


@pytest.mark.parametrize(
    ("config", "element", "needle"),
    [
        # A bridge without IPAM declares `ips` but can give none.
        (
            {
                "cniVersion": "1.0.0",
                "type": "bridge",
                "bridge": "midnoip",
                "capabilities": {"ips": True},
            },
            {"name": "noip", "ips": ["10.204.26.5/24"]},
            "requested IP 10.204.26.5/24 is not in the result",
        ),
        # ptp declares `mac` but does not set it.
        (
            {
                "cniVersion": "1.0.0",
                "type": "ptp",
                "capabilities": {"mac": True},
                "ipam": {"type": "host-local", "subnet": "10.204.27.0/24"},
            },
            {"name": "noip", "mac": "0a:58:0a:cc:1b:05"},
            "requested MAC 0a:58:0a:cc:1b:05 is not in the result",
        ),
    ],
)
def test_requested_ips_mac_missing_from_result_roll_back(
    lab: Lab, config: dict[str, Any], element: dict[str, Any], needle: str
) -> None:
    """NPWG §4.1.2.1.3.2/.4.2: declared but not honoured is caught on the result, and
    every delegate (the cluster network's too) is undone."""
    node = lab.node
    bridge = node.add_bridge("midcni0")
    node.add_bridge("midnoip")
    if "ipam" in config:
        config["ipam"]["dataDir"] = str(node.data_dir)
    lab.nad("noip", config, "mid-a")
    pod = lab.pod("liar", "mid-a", {"k8s.v1.cni.cncf.io/networks": json.dumps([element])})
    netns = node.add_pod("mid")
    failed = lab.run("ADD", cluster_conf(lab, bridge), pod, netns, container_id="midliar")
    error = assert_untouched(lab, failed, netns, 7)
    assert needle in error["msg"]
    assert node.problems(settle=5) == []


def test_ipv6_default_route_leaves_ipv4_alone(lab: Lab) -> None:
    """default-route with an IPv6 gateway moves only the IPv6 default route."""
    node = lab.node
    bridge = node.add_bridge("midcni0")
    v6_bridge = node.add_bridge("midsix")
    lab.nad(
        "six",
        {
            "cniVersion": "1.0.0",
            "type": "bridge",
            "bridge": v6_bridge,
            "ipam": node.host_local("fd00:204:28::/64", gateway="fd00:204:28::1"),
        },
        "mid-a",
    )
    selection = [{"name": "six", "interface": "six0", "default-route": ["fd00:204:28::1"]}]
    pod = lab.pod("v6", "mid-a", {"k8s.v1.cni.cncf.io/networks": json.dumps(selection)})
    conf = cluster_conf(lab, bridge)
    netns = node.add_pod("mid")
    added = lab.run("ADD", conf, pod, netns, container_id="midsix")
    assert added.rc == 0, added.stdout + added.stderr
    v4 = [r for r in Node.pod_routes(netns) if r["dst"] == "default"]
    assert [(r["dev"], r["gateway"]) for r in v4] == [("eth0", "10.204.20.1")]
    v6 = json.loads(Node.pod_ip(netns, "-j", "-6", "route", "show", "default"))
    assert [(r["dev"], r["gateway"]) for r in v6] == [("six0", "fd00:204:28::1")]
    cluster, six = lab.status("v6", "mid-a")
    assert cluster["gateway"] == ["10.204.20.1"] and six["gateway"] == ["fd00:204:28::1"]
    assert lab.run("CHECK", conf, pod, netns, container_id="midsix").rc == 0
    assert lab.run("DEL", conf, pod, netns, container_id="midsix").rc == 0
