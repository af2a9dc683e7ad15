"""Review findings in Kubernetes mode, each pinned by a test that failed before its fix,
plus a few guards that the fixes keep what must stay refused or rolled back.

Resources here carry the prefix `mre` (netns, links) and addresses in 10.205.0.0/16."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.conftest import Lab
from tests.k8s.emulator import Api
from tests.support.lab import Node, checked_node

PREFIX = "mre"
NPWG = "k8s.v1.cni.cncf.io/networks"
CLUSTER = "10.205.1.0/24"
SIDECAR = "10.205.3.0/24"
ALT = "10.205.8.0/24"


@pytest.fixture
def lab(request: pytest.FixtureRequest, tmp_path: Path, _prerequisites: None) -> Iterator[Lab]:
    """The Kubernetes-mode lab of conftest, under this file's own prefix."""
    with checked_node(PREFIX, tmp_path, request) as node:
        api = Api(f"/var/run/netns/{node.name}")
        try:
            yield Lab(node, api, tmp_path)
        finally:
            api.close()


def ptp(lab: Lab, subnet: str, **extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "type": "ptp", "ipam": lab.node.host_local(subnet), **extra}


def test_static_pod_mirror_uid_is_not_a_mismatch(lab: Lab) -> None:
    """kubelet names a static pod by its own UID; the API holds its mirror pod, whose UID
    differs. Multus (getPod/IsStaticPod) accepts that: a static pod must come up."""
    bridge = lab.node.add_bridge("mrecni0")
    conf = lab.conf(
        [
            {
                "name": "mre-cluster",
                "type": "bridge",
                "bridge": bridge,
                "ipam": lab.node.host_local(CLUSTER),
            }
        ]
    )
    pod = lab.pod(
        "etcd-node1",
        "mre-sys",
        {"kubernetes.io/config.source": "file", "kubernetes.io/config.mirror": "0f1e2d3c"},
    )
    static = json.loads(json.dumps(pod))
    static["metadata"]["uid"] = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    netns = lab.node.add_pod(PREFIX)
    added = lab.run("ADD", conf, static, netns, container_id="mrestatic")
    assert added.rc == 0, added.stdout + added.stderr
    assert Node.pod_links(netns) == {"lo", "eth0"}
    assert [s["interface"] for s in lab.status("etcd-node1", "mre-sys")] == ["eth0"]
    assert lab.run("DEL", conf, static, netns, container_id="mrestatic").rc == 0


def test_api_pod_uid_mismatch_still_refused(lab: Lab) -> None:
    """Only static pods are excepted: an API pod re-created under the same name is not."""
    conf = lab.conf([ptp(lab, CLUSTER)])
    pod = lab.pod("app", "mre-a", {"kubernetes.io/config.source": "api"})
    stale = json.loads(json.dumps(pod))
    stale["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
    netns = lab.node.add_pod(PREFIX)
    failed = lab.run("ADD", conf, stale, netns, container_id="mrestale")
    assert failed.rc != 0 and failed.doc["code"] == 3, failed.stdout
    assert Node.pod_links(netns) == {"lo"}


@pytest.mark.parametrize("cluster_name", ["mre-pods", "mre_Pods"])
def test_cluster_and_default_networks_by_conf_name(lab: Lab, cluster_name: str) -> None:
    """Multus's selection flow for clusterNetwork/defaultNetworks: a NAD of that name in
    multusNamespace, else the conf file in confDir whose `name` it is (docs/configuration.md:
    "defaultNetworks": ["sidecarCRD", "flannel"])."""
    node = lab.node
    node.write_conf(
        "10-cluster.conflist",
        {"cniVersion": "1.0.0", "name": cluster_name, "plugins": [ptp(lab, CLUSTER)]},
    )
    node.write_conf("20-sidecar.conf", {**ptp(lab, SIDECAR), "name": "mre-sidecar"})
    conf = lab.conf(clusterNetwork=cluster_name, defaultNetworks=["mre-sidecar"])
    pod = lab.pod("app", "mre-a")
    netns = node.add_pod(PREFIX)
    added = lab.run("ADD", conf, pod, netns, container_id="mrename")
    assert added.rc == 0, added.stdout + added.stderr
    assert set(Node.pod_addresses(netns)) - {"lo"} == {"eth0", "net1"}
    status = lab.status("app", "mre-a")
    assert [(s["name"], s["interface"]) for s in status] == [
        (cluster_name, "eth0"),
        ("mre-sidecar", "net1"),
    ]
    assert lab.run("DEL", conf, pod, netns, container_id="mrename").rc == 0


def test_cluster_network_name_found_nowhere(lab: Lab) -> None:
    """Neither a NAD nor a conf file: code 7 naming both places looked in."""
    conf = lab.conf(clusterNetwork="mre-nowhere")
    pod = lab.pod("app", "mre-a")
    netns = lab.node.add_pod(PREFIX)
    failed = lab.run("ADD", conf, pod, netns, container_id="mrenone")
    assert failed.rc != 0 and failed.doc["code"] == 7, failed.stdout
    msg = failed.doc["msg"]
    assert "kube-system/mre-nowhere" in msg and "no conf file" in msg, msg


def test_requested_ipv6_in_another_spelling_is_found_in_the_result(lab: Lab) -> None:
    """NPWG's "requested ips must be in the result" compares addresses, not strings:
    `FD00:205:4:0::07/64` is the `fd00:205:4::7/64` static IPAM reports."""
    node = lab.node
    master, _ = node.add_veth("mremv0", "mremv0p")
    node.ip("link", "set", master, "up")
    conf = lab.conf([ptp(lab, CLUSTER)])
    lab.nad(
        "six",
        {
            "cniVersion": "1.0.0",
            "type": "macvlan",
            "master": master,
            "mode": "bridge",
            "capabilities": {"ips": True},
            "ipam": {"type": "static"},
        },
        "mre-a",
    )
    selection = [{"name": "six", "ips": ["FD00:205:4:0::07/64", "10.205.4.7/24"]}]
    pod = lab.pod("six", "mre-a", {NPWG: json.dumps(selection)})
    netns = node.add_pod(PREFIX)
    added = lab.run("ADD", conf, pod, netns, container_id="mresix")
    assert added.rc == 0, added.stdout + added.stderr
    six = lab.status("six", "mre-a")[1]
    assert sorted(six["ips-with-prefix"]) == ["10.205.4.7/24", "fd00:205:4::7/64"]
    assert lab.run("DEL", conf, pod, netns, container_id="mresix").rc == 0


@pytest.mark.parametrize(
    ("element", "field"),
    [
        ({"ips": ["10.205.5.9/24"]}, "ips"),
        ({"mac": "0a:58:0a:cd:05:09"}, "mac"),
        ({"interface": "pod0"}, "interface"),
        ({"default-route": ["10.205.5.1"]}, "default-route"),
        ({"portMappings": [{"hostPort": 8080, "containerPort": 80}]}, "portMappings"),
    ],
)
def test_default_network_annotation_refuses_what_it_cannot_honour(
    lab: Lab, element: dict[str, Any], field: str
) -> None:
    """`v1.multus-cni.io/default-network` selects the cluster network; a request it
    would silently drop (the pod asked for an address it will not get) fails instead,
    naming the annotation and the field, before anything runs."""
    lab.nad("alt", ptp(lab, CLUSTER, capabilities={"ips": True, "mac": True}), "mre-a")
    conf = lab.conf([ptp(lab, SIDECAR)])
    annotation = json.dumps([{"name": "alt", "namespace": "mre-a", **element}])
    pod = lab.pod("alt", "mre-a", {"v1.multus-cni.io/default-network": annotation})
    netns = lab.node.add_pod(PREFIX)
    failed = lab.run("ADD", conf, pod, netns, container_id="mrealt")
    assert failed.rc != 0 and failed.doc["code"] == 7, failed.stdout
    msg = failed.doc["msg"]
    assert "v1.multus-cni.io/default-network" in msg and repr(field) in msg, msg
    assert Node.pod_links(netns) == {"lo"}


def test_default_network_annotation_passes_cni_args(lab: Lab) -> None:
    """`cni-args` do reach the replacing cluster network (as Multus's LoadDelegateNetConf
    does for any selection): seen here in the attachment record's network."""
    lab.nad("alt", ptp(lab, CLUSTER), "mre-a")
    conf = lab.conf([ptp(lab, SIDECAR)])
    annotation = json.dumps([{"name": "alt", "namespace": "mre-a", "cni-args": {"tier": "gold"}}])
    pod = lab.pod("alt", "mre-a", {"v1.multus-cni.io/default-network": annotation})
    netns = lab.node.add_pod(PREFIX)
    added = lab.run("ADD", conf, pod, netns, container_id="mrealt")
    assert added.rc == 0, added.stdout + added.stderr
    record = json.loads((lab.node.cni_dir / "attachments" / "mrealt:eth0.json").read_text())
    assert record["delegates"][0]["network"]["args"] == {"cni": {"tier": "gold"}}
    assert lab.run("DEL", conf, pod, netns, container_id="mrealt").rc == 0


def test_default_route_with_two_gateways_of_one_family_is_refused() -> None:
    """One default route per family moves: two IPv4 gateways would leave only the last
    one routed while network-status listed both. Refused when parsed; one of each
    family stays valid."""
    from multus_cni.errors import InvalidConfig
    from multus_cni.k8s import selection

    text = json.dumps([{"name": "blue", "default-route": ["10.205.6.1", "10.205.6.2"]}])
    with pytest.raises(InvalidConfig, match=r"networks\[0\]\.default-route: .*one gateway per"):
        selection.parse_npwg(text, "mre-a")
    both = json.dumps([{"name": "blue", "default-route": ["10.205.6.1", "fd00:205:6::1"]}])
    assert selection.parse_npwg(both, "mre-a")[0].default_route == ["10.205.6.1", "fd00:205:6::1"]


def test_unreachable_default_route_gateway_rolls_back(lab: Lab) -> None:
    """A default-route gateway off the interface's subnet cannot be routed: the ADD
    fails naming it, and every delegate (leases, veths) is undone."""
    node = lab.node
    blue = node.add_bridge("mreblue")
    lab.nad(
        "blue",
        {"cniVersion": "1.0.0", "type": "bridge", "bridge": blue, "ipam": node.host_local(SIDECAR)},
        "mre-a",
    )
    conf = lab.conf([ptp(lab, CLUSTER)])
    selection = [{"name": "blue", "default-route": ["10.205.77.1"]}]
    pod = lab.pod("lost", "mre-a", {NPWG: json.dumps(selection)})
    netns = node.add_pod(PREFIX)
    failed = lab.run("ADD", conf, pod, netns, container_id="mrelost")
    assert failed.rc != 0, failed.stdout
    assert "10.205.77.1" in failed.doc["msg"], failed.doc
    assert Node.pod_links(netns) == {"lo"}
    assert node.problems(settle=5) == []
    assert "k8s.v1.cni.cncf.io/network-status" not in lab.api.get("v1/pods", "mre-a", "lost")[
        "metadata"
    ].get("annotations", {})


def test_default_network_annotation_replaces_only_the_cluster_network(lab: Lab) -> None:
    """With inline `delegates`, the annotation replaces the cluster network (the master,
    delegates[0]); the conf's other delegates stay, as Multus does (Delegates[0] = ...)."""
    lab.nad("alt", ptp(lab, ALT), "mre-a")
    conf = lab.conf([ptp(lab, CLUSTER), ptp(lab, SIDECAR)])
    pod = lab.pod("alt", "mre-a", {"v1.multus-cni.io/default-network": "mre-a/alt"})
    netns = lab.node.add_pod(PREFIX)
    added = lab.run("ADD", conf, pod, netns, container_id="mrealt")
    assert added.rc == 0, added.stdout + added.stderr
    addresses = Node.pod_addresses(netns)
    assert addresses["eth0"][0].startswith("10.205.8.") and "net1" in addresses, addresses
    assert addresses["net1"][0].startswith("10.205.3."), addresses
    status = lab.status("alt", "mre-a")
    assert [(s["name"], s["interface"], s.get("default", False)) for s in status] == [
        ("mre-a/alt", "eth0", True),
        ("mid-k8s-1", "net1", False),
    ]
    assert lab.run("DEL", conf, pod, netns, container_id="mrealt").rc == 0


def test_no_pod_in_cni_args_with_the_cluster_network_in_a_nad(lab: Lab) -> None:
    """Without K8S_POD_* in CNI_ARGS the API cannot be asked: when clusterNetwork names a
    NAD, the ADD fails naming it, rather than attaching a defaultNetworks file as eth0
    in the cluster network's place."""
    lab.nad("cluster-net", ptp(lab, CLUSTER), "kube-system")
    lab.node.write_conf("20-sidecar.conf", {**ptp(lab, SIDECAR), "name": "mre-sidecar"})
    conf = lab.conf(clusterNetwork="cluster-net", defaultNetworks=["20-sidecar.conf"])
    netns = lab.node.add_pod(PREFIX)
    failed = lab.run("ADD", conf, None, netns, container_id="mrenopod", cni_args="")
    assert failed.rc != 0, failed.stdout
    assert failed.doc["code"] == 7 and "cluster-net" in failed.doc["msg"], failed.doc
    assert Node.pod_links(netns) == {"lo"}


def test_nul_in_an_interface_name_is_refused_up_front(lab: Lab) -> None:
    """An interface name with a NUL cannot reach a delegate (execve refuses it): code 7
    naming the element, before anything runs, not an internal error after the cluster
    network was attached and rolled back."""
    ifname = "a\u0000b"
    lab.nad("yellow", ptp(lab, SIDECAR), "mre-a")
    conf = lab.conf([ptp(lab, CLUSTER)])
    pod = lab.pod("nul", "mre-a", {NPWG: json.dumps([{"name": "yellow", "interface": ifname}])})
    netns = lab.node.add_pod(PREFIX)
    lab.api.clear_log()
    failed = lab.run("ADD", conf, pod, netns, container_id="mrenul")
    assert failed.rc != 0 and failed.doc["code"] == 7, failed.stdout
    assert "networks[0].interface" in failed.doc["msg"], failed.doc
    assert all("network-attachment" not in p for _, p in lab.api.requests())
