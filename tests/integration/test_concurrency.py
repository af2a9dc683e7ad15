"""Many pods at once, as kubelet does on a busy node: distinct addresses, no lost or
doubled state, and clean failures when the address pool runs out."""

from __future__ import annotations

import ipaddress
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.support.cni import CniCall, cache_records, leases
from tests.support.lab import Node, bridge_delegate

PODS = 50


def run_all(
    node: Node, command: str, conf: dict[str, Any], pods: dict[str, str]
) -> dict[str, CniCall]:
    """`command` for every pod at once, as a runtime starting (or stopping) many pods."""
    with ThreadPoolExecutor(max_workers=len(pods)) as pool:
        futures = {
            cid: pool.submit(node.run, command, conf, container_id=cid, netns=netns)
            for cid, netns in pods.items()
        }
        return {cid: future.result() for cid, future in futures.items()}


def test_fifty_pods_added_then_deleted_concurrently(node: Node) -> None:
    bridge = node.add_bridge("miacni0")
    conf = node.conf(
        [bridge_delegate(node, bridge, "10.201.20.0/24", isDefaultGateway=True)],
        cniVersion="1.0.0",
    )
    pods = {f"crowd{i:02d}": node.add_pod("mia") for i in range(PODS)}

    adds = run_all(node, "ADD", conf, pods)
    failed = {cid: call.stdout for cid, call in adds.items() if call.rc != 0}
    assert not failed, failed
    addresses = {cid: call.doc["ips"][0]["address"] for cid, call in adds.items()}
    assert len(set(addresses.values())) == PODS
    for cid, netns in pods.items():
        assert node.pod_addresses(netns)["eth0"] == [addresses[cid]]
    assert len(leases(node.data_dir)) == PODS
    assert len(cache_records(node.cni_dir)) == PODS
    ports = json.loads(node.ip("-j", "link", "show", "master", bridge))
    assert len(ports) == PODS

    dels = run_all(node, "DEL", conf, pods)
    failed = {cid: call.stdout for cid, call in dels.items() if (call.rc, call.stdout) != (0, "")}
    assert not failed, failed
    assert all(node.pod_links(netns) == {"lo"} for netns in pods.values())
    assert node.problems() == []


def test_pool_exhaustion_fails_the_excess_cleanly(node: Node) -> None:
    """8 addresses, 14 pods at once: 8 get one each, 6 fail and leave nothing behind."""
    bridge = node.add_bridge("miacni0")
    ipam = node.host_local("10.201.30.0/28", rangeStart="10.201.30.2", rangeEnd="10.201.30.9")
    conf = node.conf(
        [{"type": "bridge", "bridge": bridge, "isDefaultGateway": True, "ipam": ipam}],
        cniVersion="1.0.0",
    )
    pods = {f"pool{i:02d}": node.add_pod("mia") for i in range(14)}

    adds = run_all(node, "ADD", conf, pods)
    won = {cid for cid, call in adds.items() if call.rc == 0}
    lost = set(pods) - won
    assert len(won) == 8, {cid: call.stdout for cid, call in adds.items()}
    addresses = {adds[cid].doc["ips"][0]["address"] for cid in won}
    pool = {f"10.201.30.{i}/28" for i in range(2, 10)}
    assert addresses == pool
    for cid in lost:
        error = adds[cid].doc
        assert error["code"] != 0
        assert "'bridge' (eth0, delegates[0])" in error["msg"], error
        assert node.pod_links(pods[cid]) == {"lo"}, f"{cid} kept interfaces after rollback"
    assert sorted(ipaddress.ip_address(p.name) for p in leases(node.data_dir)) == sorted(
        ipaddress.ip_interface(a).ip for a in addresses
    )
    assert sorted(p.name for p in cache_records(node.cni_dir)) == sorted(
        f"{cid}:eth0.json" for cid in won
    )

    # The runtime DELs every pod, failed ADD or not.
    dels = run_all(node, "DEL", conf, pods)
    failed = {cid: call.stdout for cid, call in dels.items() if (call.rc, call.stdout) != (0, "")}
    assert not failed, failed
    assert node.problems() == []


def test_add_and_del_racing_on_one_container_stay_coherent(node: Node) -> None:
    """The runtime may not, but a restarted kubelet can: ADD and DEL of one container at
    the same time. The per-container lock serialises them, so after each race the pod
    is either fully attached (record, lease, eth0) or not at all."""
    bridge = node.add_bridge("miacni0")
    conf = node.conf(
        [bridge_delegate(node, bridge, "10.201.40.0/24", isDefaultGateway=True)],
        cniVersion="1.0.0",
    )
    pod = node.add_pod("mia")
    for _ in range(8):
        with ThreadPoolExecutor(max_workers=2) as pool:
            add = pool.submit(node.run, "ADD", conf, container_id="racepod", netns=pod)
            delete = pool.submit(node.run, "DEL", conf, container_id="racepod", netns=pod)
            assert delete.result().rc == 0, delete.result().stdout
            added = add.result().rc == 0
        attached = bool(cache_records(node.cni_dir))
        assert added or not attached, "a failed ADD left a record"
        assert len(leases(node.data_dir)) == int(attached)
        assert node.pod_links(pod) == ({"lo", "eth0"} if attached else {"lo"})
        cleanup = node.run("DEL", conf, container_id="racepod", netns=pod)
        assert cleanup.rc == 0, cleanup.stdout
        assert node.problems() == []
