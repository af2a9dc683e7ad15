"""Probes, metrics and logs of the node agent, and the netlink interface's two
implementations (the thin plugin's `ip` and the daemon's pyroute2) under the same
tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from multus_cni.errors import CniError
from multus_cni.k8s.routes import IpCommand
from multus_node.netlink import Pyroute2Netlink
from tests.node.conftest import Daemon
from tests.node.emulator import WatchApi
from tests.node.test_thick_e2e import wait_cached, world
from tests.support.cni import ip, netns, pod_args
from tests.support.lab import Node

if TYPE_CHECKING:
    from multus_cni.k8s.routes import Netlink


@pytest.mark.usefixtures("c_shim")
def test_probes_metrics_and_logs(node: Node, api: WatchApi, thick: Daemon) -> None:
    status, body = thick.http("/healthz")
    assert status == 200 and body.strip() == "ok"
    status, body = thick.http("/readyz")
    assert status == 200 and json.loads(body) == {"socket": True}
    conf, pod = world(node, api)
    wait_cached(api, thick)
    ns = node.add_pod("mnd")
    args = pod_args(pod, "mndobs0123456789")
    for command in ("ADD", "CHECK", "DEL"):
        assert (
            thick.shim(
                "c", command, conf, container_id="mndobs0123456789", netns=ns, cni_args=args
            ).rc
            == 0
        )
    failed = thick.shim(
        "c", "ADD", {**conf, "cniVersion": "7.0.0"}, container_id="mndobs2", netns=ns
    )
    assert failed.doc["code"] == 1
    _, metrics = thick.http("/metrics")
    assert thick.metric("multus_node_requests_total", command="ADD", code="0") == 1
    assert thick.metric("multus_node_requests_total", command="ADD", code="1") == 1
    assert thick.metric("multus_node_requests_total", command="DEL", code="0") == 1
    for phase in ("queue", "network_lookup", "status_write"):
        assert thick.metric("multus_node_phase_duration_seconds_count", phase=phase) >= 1, phase
    assert thick.metric("multus_node_delegate_duration_seconds_count", plugin="bridge") >= 3
    assert thick.metric("multus_node_delegate_duration_seconds_count", plugin="ptp") >= 4
    assert thick.metric("multus_node_cache_objects", resource="network-attachment-definitions") == 2
    labels = set(re.findall(r"[{,]([a-z_]+)=", metrics))
    assert not labels & {"pod", "container", "namespace", "container_id", "uid"}, labels
    # every line of a request names its pod, container and network
    lines = [line for line in thick.log().splitlines() if "mndobs0123456789"[:12] in line]
    assert len(lines) >= 6
    for line in lines:
        assert "pod=default/web container=mndobs012345 network=mnd-k8s:" in line, line
    assert any("'ptp' (net1" in line and "ADD rc=0" in line for line in lines)


# ---- netlink: one interface, two implementations ----


@pytest.fixture(params=["ip", "pyroute2"])
def netlink(request: pytest.FixtureRequest) -> Netlink:
    return IpCommand() if request.param == "ip" else Pyroute2Netlink()


@pytest.fixture
def pod_ns(_prerequisites: None) -> Iterator[str]:
    """A pod netns with two interfaces on two subnets, IPv4 and IPv6, and defaults."""
    with netns("mnd") as path:
        name = path.rsplit("/", 1)[1]
        ip("-n", name, "link", "add", "mnda", "type", "veth", "peer", "name", "mndb")
        for link, v4, v6 in (
            ("mnda", "10.207.1.2/24", "fd00:207:1::2/64"),
            ("mndb", "10.207.2.2/24", "fd00:207:2::2/64"),
        ):
            ip("-n", name, "addr", "add", v4, "dev", link)
            ip("-n", name, "-6", "addr", "add", v6, "dev", link, "nodad")
            ip("-n", name, "link", "set", link, "up")
        ip("-n", name, "route", "add", "default", "via", "10.207.1.1", "dev", "mnda")
        ip("-n", name, "-6", "route", "add", "default", "via", "fd00:207:1::1", "dev", "mnda")
        yield path


def test_default_route_moves_per_family(netlink: Netlink, pod_ns: str) -> None:
    assert netlink.default_routes(pod_ns, "4") == ["via 10.207.1.1 dev mnda"]
    netlink.set_default_route(pod_ns, "mndb", ["10.207.2.1"])
    assert netlink.default_routes(pod_ns, "4") == ["via 10.207.2.1 dev mndb"]
    assert netlink.default_routes(pod_ns, "6") == ["via fd00:207:1::1 dev mnda"], "v6 untouched"
    netlink.set_default_route(pod_ns, "mndb", ["fd00:207:2::1", "10.207.2.1"])
    assert netlink.default_routes(pod_ns, "6") == ["via fd00:207:2::1 dev mndb"]
    assert netlink.default_routes(pod_ns, "4") == ["via 10.207.2.1 dev mndb"]


@pytest.mark.parametrize(
    ("ifname", "gateway", "needle"),
    [
        ("mndb", "10.207.9.1", "10.207.9.1"),  # not on the interface's subnet
        ("mndgone", "10.207.2.1", "mndgone"),  # no such interface
    ],
)
def test_default_route_errors_name_the_problem(
    netlink: Netlink, pod_ns: str, ifname: str, gateway: str, needle: str
) -> None:
    with pytest.raises(CniError) as caught:
        netlink.set_default_route(pod_ns, ifname, [gateway])
    assert needle in caught.value.msg and "default-route" in caught.value.msg


def test_netns_gone(netlink: Netlink) -> None:
    with pytest.raises(CniError):
        netlink.set_default_route("/var/run/netns/mnd-never-was", "eth0", ["10.0.0.1"])


def test_pyroute2_through_the_host_root(pod_ns: str, tmp_path: Any) -> None:
    """Under --host-root the daemon reaches the pod's netns through the host's path."""
    via_root = Pyroute2Netlink(host_root="/")
    assert via_root.default_routes(pod_ns, "4") == ["via 10.207.1.1 dev mnda"]
