"""GC (CNI 1.1) against cached attachments, STATUS and the readiness indicator file."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cni import cache_records, leases
from tests.support.lab import Canary, Node, bridge_delegate, ptp_delegate

CLUSTER = "10.201.0.0/24"
SECOND = "10.201.1.0/24"


def networks(node: Node, **extra: Any) -> dict[str, Any]:
    bridge = node.add_bridge("miacni0")
    return node.conf(
        [bridge_delegate(node, bridge, CLUSTER, isDefaultGateway=True), ptp_delegate(node, SECOND)],
        cniVersion="1.1.0",
        **extra,
    )


def lease_owners(node: Node) -> list[str]:
    """Which container holds each lease (host-local writes `<cid>\\r\\n<ifname>`)."""
    return sorted(p.read_text().splitlines()[0] for p in leases(node.data_dir))


@pytest.mark.parametrize("key", ["cni.dev/valid-attachments", "cni.dev/attachments"])
def test_gc_deletes_only_attachments_not_named_valid(node: Node, key: str) -> None:
    conf = networks(node)
    pods = {cid: node.add_pod("mia") for cid in ("keeppod", "gonepod")}
    for cid, pod in pods.items():
        add = node.run("ADD", conf, container_id=cid, netns=pod)
        assert add.rc == 0, add.stdout + add.stderr
    assert lease_owners(node) == ["gonepod"] * 2 + ["keeppod"] * 2
    kept_addresses = node.pod_addresses(pods["keeppod"])
    (kept_record,) = [p for p in cache_records(node.cni_dir) if p.name.startswith("keeppod:")]
    kept_bytes = kept_record.read_bytes()

    gc = node.run("GC", {**conf, key: [{"containerID": "keeppod", "ifname": "eth0"}]}, ifname="")
    assert (gc.rc, gc.stdout) == (0, ""), gc.stderr

    assert lease_owners(node) == ["keeppod"] * 2
    assert cache_records(node.cni_dir) == [kept_record]
    assert kept_record.read_bytes() == kept_bytes
    assert node.pod_links(pods["gonepod"]) == {"lo"}
    assert node.pod_addresses(pods["keeppod"]) == kept_addresses
    check = node.run("CHECK", conf, container_id="keeppod", netns=pods["keeppod"])
    assert check.rc == 0, check.stdout + check.stderr

    delete = node.run("DEL", conf, container_id="keeppod", netns=pods["keeppod"])
    assert delete.rc == 0, delete.stdout + delete.stderr
    assert node.problems() == []


def test_gc_leaves_other_networks_alone(node: Node) -> None:
    """A GC names the valid attachments of its own network only."""
    conf = networks(node)
    pod = node.add_pod("mia")
    assert node.run("ADD", conf, container_id="otherpod", netns=pod).rc == 0
    gc = node.run("GC", {**conf, "name": "mia-other", "cni.dev/valid-attachments": []}, ifname="")
    assert gc.rc == 0, gc.stdout + gc.stderr
    assert lease_owners(node) == ["otherpod"] * 2
    assert len(cache_records(node.cni_dir)) == 1
    assert node.run("DEL", conf, container_id="otherpod", netns=pod).rc == 0


def test_status_ready(node: Node, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.touch()
    status = node.run("STATUS", networks(node, readinessindicatorfile=str(ready)), ifname="")
    assert (status.rc, status.stdout) == (0, ""), status.stderr


def test_status_without_the_readiness_file(node: Node, tmp_path: Path) -> None:
    conf = networks(node, readinessindicatorfile=str(tmp_path / "absent"))
    status = node.run("STATUS", conf, ifname="")
    assert status.rc != 0
    assert status.doc["code"] == 50
    assert str(tmp_path / "absent") in status.doc["msg"]


def test_add_waits_for_readiness_then_gives_up(node: Node, tmp_path: Path, canary: Canary) -> None:
    bridge = node.add_bridge("miacni0")
    conf = node.conf(
        [bridge_delegate(node, bridge, CLUSTER), {"type": "canary", "name": "mia-canary"}],
        cniVersion="1.0.0",
        readinessindicatorfile=str(tmp_path / "absent"),
        readinessTimeout=0.5,
    )
    pod = node.add_pod("mia")
    started = time.monotonic()
    add = node.run(
        "ADD",
        conf,
        container_id="waitpod",
        netns=pod,
        cni_path=f"{node.cni_path}:{canary.path.parent}",
    )
    waited = time.monotonic() - started
    assert add.rc != 0
    assert add.doc["code"] == 11, add.doc
    assert 0.5 <= waited < 10
    assert not canary.ran
    assert node.pod_links(pod) == {"lo"}
    assert not node.data_dir.exists()
    assert cache_records(node.cni_dir) == []
    # DEL does not wait for readiness: the runtime must be able to clean up anyway.
    started = time.monotonic()
    delete = node.run(
        "DEL",
        {**conf, "readinessTimeout": 30},
        container_id="waitpod",
        netns=pod,
        cni_path=f"{node.cni_path}:{canary.path.parent}",
    )
    assert delete.rc == 0, delete.stdout + delete.stderr
    assert time.monotonic() - started < 10


def test_gc_record_shape_is_per_attachment(node: Node) -> None:
    """GC works from the records ADD wrote: one per (container, CNI_IFNAME)."""
    conf = networks(node)
    pod = node.add_pod("mia")
    assert node.run("ADD", conf, container_id="shapepod", netns=pod).rc == 0
    (record,) = cache_records(node.cni_dir)
    doc = json.loads(record.read_text())
    assert (doc["containerId"], doc["ifName"], doc["networkName"]) == (
        "shapepod",
        "eth0",
        "mia-net",
    )
    gc = node.run("GC", {**conf, "cni.dev/valid-attachments": []}, ifname="")
    assert gc.rc == 0, gc.stdout + gc.stderr
    assert node.pod_links(pod) == {"lo"}
