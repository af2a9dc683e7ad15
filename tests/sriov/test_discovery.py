"""Discovery on the simulated NIC, field by field, and `multusctl inventory` printing the
same document (valid against the NodeState schema) offline."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from multus_api.inventory import SriovInventory
from multus_sriov.discovery import discover
from multus_sriov.vfsettings import SimVfSettings
from tests.sriov.rig import FakeNic
from tests.sriov.test_faults import sriov
from tests.support.cni import VENV_BIN
from tests.support.lab import Node


def test_discovery_field_by_field(node: Node, nic: FakeNic) -> None:
    SimVfSettings(str(nic.sim_state)).apply("enp2s0", 1, {"vlan": 210, "trust": True})
    SimVfSettings(str(nic.sim_state)).apply("enp2s0", 2, {"mac": "02:00:00:00:00:22"})
    doc = discover(str(nic.root), SimVfSettings(str(nic.sim_state)))
    SriovInventory.model_validate(doc)
    by_name = {pf["name"]: pf for pf in doc["pfs"]}
    assert [pf["pciAddress"] for pf in doc["pfs"]] == ["0000:02:00.0", "0000:0c:00.1"]
    pf = by_name["enp12s0f1"]
    link = nic.host_link("enp12s0f1")
    assert link is not None
    assert {k: v for k, v in pf.items() if k != "vfs"} == {
        "name": "enp12s0f1",
        "pciAddress": "0000:0c:00.1",
        "vendor": "8086",
        "device": "1572",
        "driver": "i40e",
        "totalVfs": 64,
        "numVfs": 4,
        "mtu": link["mtu"],
        "mac": link["address"],
        "linkSpeed": 10000,
        "linkType": "ether",
    }
    # VF index comes from virtfnN, not from PCI order (the rig numbers PCI backwards)
    assert [(vf["index"], vf["pciAddress"]) for vf in pf["vfs"]] == [
        (0, "0000:0c:02.3"),
        (1, "0000:0c:02.2"),
        (2, "0000:0c:02.1"),
        (3, "0000:0c:02.0"),
    ]
    vf0 = pf["vfs"][0]
    vf0_link = nic.host_link("enp12s0f1v0")
    assert vf0_link is not None
    assert vf0 == {
        "index": 0,
        "pciAddress": "0000:0c:02.3",
        "driver": "iavf",
        "netdev": "enp12s0f1v0",
        "mac": vf0_link["address"],
        "mtu": vf0_link["mtu"],
        # an unconfigured VF as the PF reports it (no MAC of its own set through the PF)
        "vlan": 0,
        "spoofchk": True,
        "trust": False,
        "linkState": "auto",
    }
    seed = by_name["enp2s0"]
    assert (seed["device"], seed["driver"], seed["totalVfs"], seed["numVfs"]) == (
        "10fb",
        "ixgbe",
        63,
        3,
    )
    assert "linkSpeed" not in seed  # a link that is down has no speed: left out, not guessed
    assert seed["vfs"][1]["vlan"] == 210 and seed["vfs"][1]["trust"] is True
    assert seed["vfs"][1]["spoofchk"] is True and seed["vfs"][1]["linkState"] == "auto"
    dpdk = seed["vfs"][2]
    assert dpdk["driver"] == "vfio-pci" and "netdev" not in dpdk and "mtu" not in dpdk
    assert dpdk["mac"] == "02:00:00:00:00:22"  # no netdev: the MAC the PF reports for it


def node_links(node: Node) -> dict[str, str]:
    """The node netns's links as discovery sees the host's (veths have no parent)."""
    return {link["ifname"]: "" for link in json.loads(node.ip("-j", "link", "show"))}


def node_report(node: Node, nic: FakeNic, *args: str) -> dict[str, Any]:
    """What multus-node on this node reports: `multusctl inventory` run in the node."""
    out = subprocess.run(
        ["ip", "netns", "exec", node.name, str(VENV_BIN / "multusctl"), "inventory", *args],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **nic.env()},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    doc: dict[str, Any] = json.loads(out)
    return doc


def test_multusctl_inventory_prints_the_same_document(node: Node, nic: FakeNic) -> None:
    doc = node_report(node, nic, "--node", "n1")
    assert doc["kind"] == "NodeState" and doc["metadata"] == {"name": "n1"}
    sim = SimVfSettings(str(nic.sim_state))
    assert doc["status"] == discover(str(nic.root), sim, links=node_links(node))
    assert doc["status"] == discover(str(nic.root), sim)  # every VF netdev is on the node


def test_pods_of_ours_never_change_the_document(node: Node, nic: FakeNic) -> None:
    """A VF one of our pods holds is reported as it was before the pod took it (name,
    MAC, MTU, VLAN, spoof check, trust, link state): pod churn is no NodeState write."""
    before = node_report(node, nic)
    conf = {
        "if0": "enp2s0",
        "vlan": 210,
        "mac": "02:00:00:00:02:10",
        "spoofchk": "off",
        "trust": "on",
        "link_state": "enable",
        "ipam": node.host_local("10.57.9.0/24"),
    }
    pods = [node.add_pod("msrpod") for _ in range(2)]
    for i, pod in enumerate(pods):
        assert sriov(node, nic, "ADD", conf, f"disc{i}", pod).rc == 0
    assert nic.vf_state("enp2s0", 0)["vlan"] == 210 and nic.host_link("enp2s0v0") is None
    assert node_report(node, nic) == before
    assert sriov(node, nic, "DEL", conf, "disc0", pods[0]).rc == 0
    assert node_report(node, nic) == before
    # a pod that died without a DEL: its record holds the VF until the VF is reclaimed
    node.delete_pod(pods[1])
    node.expected_links -= {"enp2s0v1", "enp2s0p1"}  # a veth dies with its netns (a VF not)
    nic.wait_gone("enp2s0p1")
    assert node_report(node, nic) == before
    assert sriov(node, nic, "DEL", conf, "disc1", "").rc == 0


def test_a_vf_held_elsewhere_is_reported_without_its_netdev(node: Node, nic: FakeNic) -> None:
    """Another plugin moved a VF's netdev into its pod: the VF is on a kernel driver
    with no netdev on the host (the operator counts it as not free)."""
    pod = node.add_pod("msrpod")
    node.ip("link", "set", "enp12s0f1v1", "netns", os.path.basename(pod))
    vfs = {vf["index"]: vf for vf in node_report(node, nic)["pfs"][1]["vfs"]}
    held = {k: v for k, v in vfs[1].items() if k not in ("vlan", "spoofchk", "trust", "linkState")}
    assert held == {"index": 1, "pciAddress": "0000:0c:02.2", "driver": "iavf"}
    assert vfs[0]["netdev"] == "enp12s0f1v0"
    node.pod_ip(pod, "link", "set", "enp12s0f1v1", "netns", node.name)


def test_externally_managed_pfs_are_reported_by_pci_facts_only(node: Node, nic: FakeNic) -> None:
    """A device plugin's pods take and give back its PF's VFs all the time: reporting
    their netdevs or VF settings would write the NodeState per pod."""
    SimVfSettings(str(nic.sim_state)).apply("enp2s0", 0, {"vlan": 7})
    nic.inventory.parent.mkdir(parents=True)
    nic.inventory.write_text(json.dumps({"pfs": [], "externallyManaged": ["0000:02:00.0"]}))
    doc = node_report(node, nic)
    by_name = {pf["name"]: pf for pf in doc["pfs"]}
    assert by_name["enp2s0"]["vfs"] == [
        {"index": 0, "pciAddress": "0000:02:02.2", "driver": "iavf"},
        {"index": 1, "pciAddress": "0000:02:02.1", "driver": "iavf"},
        {"index": 2, "pciAddress": "0000:02:02.0", "driver": "vfio-pci"},
    ]
    assert by_name["enp2s0"]["numVfs"] == 3 and by_name["enp2s0"]["driver"] == "ixgbe"
    assert by_name["enp12s0f1"]["vfs"][0]["netdev"] == "enp12s0f1v0"


def test_discovery_of_4_pfs_with_64_vfs_each(tmp_path: object) -> None:
    """No netdevs needed for the PCI walk: a tree of 256 DPDK VFs discovers completely."""
    from pathlib import Path

    root = Path(str(tmp_path))
    devices = root / "sys" / "bus" / "pci" / "devices"
    make_tree(devices, pfs=4, vfs=64)
    doc = discover(str(root), None)
    assert [len(pf["vfs"]) for pf in doc["pfs"]] == [64] * 4
    SriovInventory.model_validate(doc)


def make_tree(devices: object, pfs: int, vfs: int) -> None:
    """PF netdev dirs and DPDK-bound VFs only (shared with the discovery benchmark)."""
    from pathlib import Path

    devices = Path(str(devices))
    drivers = devices.parent / "drivers"
    for name in ("ice", "vfio-pci"):
        (drivers / name).mkdir(parents=True, exist_ok=True)
    for p in range(pfs):
        pci = f"0000:{0x10 + p:02x}:00.0"
        pf = devices / pci
        (pf / "net" / f"ens{p}f0").mkdir(parents=True)
        (pf / "net" / f"ens{p}f0" / "mtu").write_text("9000\n")
        (pf / "net" / f"ens{p}f0" / "address").write_text(f"b4:96:91:00:00:{p:02x}\n")
        (pf / "class").write_text("0x020000\n")
        (pf / "vendor").write_text("0x8086\n")
        (pf / "device").write_text("0x1593\n")
        (pf / "sriov_totalvfs").write_text(f"{vfs}\n")
        (pf / "sriov_numvfs").write_text(f"{vfs}\n")
        (pf / "driver").symlink_to(drivers / "ice")
        for i in range(vfs):
            vf_pci = f"0000:{0x10 + p:02x}:{1 + i // 8:02x}.{i % 8}"
            vf = devices / vf_pci
            vf.mkdir()
            (vf / "class").write_text("0x020000\n")
            (vf / "physfn").symlink_to(f"../{pci}")
            (vf / "driver").symlink_to(drivers / "vfio-pci")
            (pf / f"virtfn{i}").symlink_to(f"../{vf_pci}")
