"""CHECK, and DEL/ADD in every order a runtime (or a crash) can produce them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cni import cache_records, leases
from tests.support.lab import Node, bridge_delegate, ptp_delegate

CLUSTER = "10.201.0.0/24"
SECOND = "10.201.1.0/24"


def two_networks(node: Node, version: str = "1.0.0") -> dict[str, Any]:
    bridge = node.add_bridge("miacni0")
    return node.conf(
        [bridge_delegate(node, bridge, CLUSTER, isDefaultGateway=True), ptp_delegate(node, SECOND)],
        cniVersion=version,
    )


def added(node: Node, conf: dict[str, Any], cid: str = "lifepod") -> str:
    pod = node.add_pod("mia")
    add = node.run("ADD", conf, container_id=cid, netns=pod)
    assert add.rc == 0, add.stdout + add.stderr
    assert len(leases(node.data_dir)) == 2
    return pod


def test_check_after_add_and_after_an_interface_is_removed(node: Node) -> None:
    conf = two_networks(node, "1.1.0")
    pod = added(node, conf)
    check = node.run("CHECK", conf, container_id="lifepod", netns=pod)
    assert (check.rc, check.stdout) == (0, ""), check.stderr

    node.pod_ip(pod, "link", "del", "net1")
    check = node.run("CHECK", conf, container_id="lifepod", netns=pod)
    assert check.rc != 0
    error = check.doc
    assert error["code"] != 0
    assert error["cniVersion"] == "1.1.0"
    assert "'ptp' (net1," in error["msg"], error
    assert "delegates[1]" in error["msg"], error
    # disableCheck: the runtime asked for no CHECK, so no delegate is asked either.
    check = node.run("CHECK", {**conf, "disableCheck": True}, container_id="lifepod", netns=pod)
    assert (check.rc, check.stdout) == (0, ""), check.stderr

    delete = node.run("DEL", conf, container_id="lifepod", netns=pod)
    assert delete.rc == 0, delete.stdout + delete.stderr
    assert node.problems() == []


def test_check_with_an_old_conf_is_incompatible(node: Node) -> None:
    conf = two_networks(node, "0.3.1")
    pod = added(node, conf)
    check = node.run("CHECK", conf, container_id="lifepod", netns=pod)
    assert check.rc != 0
    assert check.doc["code"] == 1
    assert node.run("DEL", conf, container_id="lifepod", netns=pod).rc == 0
    assert node.problems() == []


def test_del_twice(node: Node) -> None:
    conf = two_networks(node)
    pod = added(node, conf)
    for _ in range(2):
        delete = node.run("DEL", conf, container_id="lifepod", netns=pod)
        assert (delete.rc, delete.stdout) == (0, ""), delete.stderr
        assert node.pod_links(pod) == {"lo"}
        assert node.problems() == []


def test_del_of_a_container_never_added(node: Node) -> None:
    conf = two_networks(node)
    pod = node.add_pod("mia")
    delete = node.run("DEL", conf, container_id="neverpod", netns=pod)
    assert (delete.rc, delete.stdout) == (0, ""), delete.stderr
    assert node.problems() == []


def test_del_without_cni_netns_frees_the_addresses(node: Node) -> None:
    conf = two_networks(node)
    pod = added(node, conf)
    delete = node.run("DEL", conf, container_id="lifepod")
    assert (delete.rc, delete.stdout) == (0, ""), delete.stderr
    assert leases(node.data_dir) == []
    assert cache_records(node.cni_dir) == []
    # Interfaces inside a netns nobody named can only go with the netns itself.
    node.delete_pod(pod)
    assert node.problems(settle=5) == []


def test_del_after_the_netns_was_deleted(node: Node) -> None:
    conf = two_networks(node)
    pod = added(node, conf)
    node.delete_pod(pod)
    delete = node.run("DEL", conf, container_id="lifepod", netns=pod)
    assert (delete.rc, delete.stdout) == (0, ""), delete.stderr
    assert node.problems(settle=5) == []


def test_add_twice_without_del(node: Node) -> None:
    conf = two_networks(node)
    pod = added(node, conf)
    before = node.pod_addresses(pod)
    first_leases = leases(node.data_dir)
    (record,) = cache_records(node.cni_dir)
    first_record = record.read_bytes()

    again = node.run("ADD", conf, container_id="lifepod", netns=pod)
    assert again.rc != 0
    assert "eth0" in again.doc["msg"], again.doc
    assert leases(node.data_dir) == first_leases, "the second ADD took another address"
    assert node.pod_addresses(pod) == before
    assert record.read_bytes() == first_record

    check = node.run("CHECK", conf, container_id="lifepod", netns=pod)
    assert check.rc == 0, check.stdout + check.stderr
    assert node.run("DEL", conf, container_id="lifepod", netns=pod).rc == 0
    assert node.problems() == []


def test_del_rebuilds_a_deleted_record_from_the_conf(node: Node) -> None:
    conf = two_networks(node)
    pod = added(node, conf)
    (record,) = cache_records(node.cni_dir)
    record.unlink()
    delete = node.run("DEL", conf, container_id="lifepod", netns=pod)
    assert (delete.rc, delete.stdout) == (0, ""), delete.stderr
    assert node.pod_links(pod) == {"lo"}
    assert node.problems() == []


@pytest.mark.parametrize("damage", ["empty", "half"])
def test_del_quarantines_a_damaged_record(node: Node, damage: str) -> None:
    conf = two_networks(node)
    pod = added(node, conf)
    (record,) = cache_records(node.cni_dir)
    data = record.read_bytes()
    record.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    delete = node.run("DEL", conf, container_id="lifepod", netns=pod)
    assert (delete.rc, delete.stdout) == (0, ""), delete.stderr
    assert node.pod_links(pod) == {"lo"}
    quarantined = list(Path(node.cni_dir, "quarantine").iterdir())
    assert [p.name.startswith("lifepod:eth0.") for p in quarantined] == [True]
    assert quarantined[0].read_bytes() == (b"" if damage == "empty" else data[: len(data) // 2])
    assert node.problems() == []


def test_record_is_json_with_the_plan(node: Node) -> None:
    """The cache record names every delegate with its interface (what DEL relies on)."""
    conf = two_networks(node)
    pod = added(node, conf)
    (record,) = cache_records(node.cni_dir)
    doc = json.loads(record.read_text())
    assert doc["state"] == "added"
    assert [d["ifName"] for d in doc["delegates"]] == ["eth0", "net1"]
    assert node.run("DEL", conf, container_id="lifepod", netns=pod).rc == 0


def test_failing_ipam_rolls_back_every_delegate(node: Node, tmp_path: Path) -> None:
    """bridge reports an IPAM plugin that failed silently as error code 0; the ADD must
    still fail with a real code, and the delegates before it must be undone."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    ipam = bindir / "miafalse"  # fails ADD without a word, succeeds at anything else
    ipam.write_text('#!/bin/sh\n[ "$CNI_COMMAND" = ADD ] && exit 1\nexit 0\n')
    ipam.chmod(0o755)
    bridge = node.add_bridge("miacni0")
    failing = bridge_delegate(node, "miacni1", SECOND, name="mia-failing")
    failing["ipam"] = {"type": "miafalse"}
    conf = node.conf(
        [bridge_delegate(node, bridge, CLUSTER, isDefaultGateway=True), failing],
        cniVersion="1.0.0",
    )
    node.expected_links.add("miacni1")  # bridge creates its bridge before IPAM runs
    pod = node.add_pod("mia")
    add = node.run(
        "ADD", conf, container_id="failpod", netns=pod, cni_path=f"{node.cni_path}:{bindir}"
    )
    assert add.rc != 0
    error = add.doc
    assert error["code"] == 999, error
    assert "'bridge' (net1, delegates[1])" in error["msg"], error
    assert node.pod_links(pod) == {"lo"}
    assert node.problems() == []
