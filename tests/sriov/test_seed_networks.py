"""The seed's SR-IOV networks through the real `multus` executable, in real netns, on the
simulated NIC: `sriov-conf` gives the pod net0 with an address from host-local,
`sriov-vlanid-l2enable-conf` gives it `north` with no IP and VLAN 210 on its VF; DEL gives
every VF back with its name, MAC, MTU and VF settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from multus_sriov.vfsettings import FRESH
from tests.sriov.rig import FakeNic
from tests.support.cni import REPO
from tests.support.lab import Node


def seed_args(name: str) -> dict[str, Any]:
    """The `args` object of a seed Network object in examples/ (one JSON list item)."""
    import yaml

    doc = yaml.safe_load((REPO / "examples" / f"{name}.yaml").read_text())
    args: list[dict[str, Any]] = json.loads(doc["args"])
    return {"type": doc["plugin"], "name": doc["metadata"]["name"], **args[0]}


def seed_conf(node: Node, nic: FakeNic) -> dict[str, Any]:
    sriov = seed_args("sriov-conf")
    sriov["ipam"]["dataDir"] = str(node.data_dir)
    north = seed_args("sriov-vlanid-l2enable-conf")
    master = {
        "type": "bridge",
        "name": "cluster",
        "masterplugin": True,
        "bridge": node.add_bridge("msrbr0"),
        "ipam": node.host_local("192.168.42.0/24"),
    }
    return node.conf([master, sriov, north], cniVersion="1.0.0", name="msr-seed")


def test_seed_sriov_networks_add_check_del(node: Node, nic: FakeNic) -> None:
    conf = seed_conf(node, nic)
    pod = node.add_pod("msrpod")
    before = {name: nic.host_link(name) for name in ("enp12s0f1v0", "enp2s0v0")}
    add = node.run("ADD", conf, container_id="seedpod", netns=pod, extra_env=nic.env())
    assert add.rc == 0, add.stdout + add.stderr
    links = node.pod_links(pod)
    assert {"eth0", "net0", "north"} <= links
    addresses = node.pod_addresses(pod)
    assert addresses["net0"] == ["10.56.217.171/24"]
    assert addresses.get("north", []) == []
    # the seed's route (0.0.0.0/0 via the sriov-conf gateway) is on net0
    routes = node.pod_routes(pod)
    assert any(r["dst"] == "default" and r.get("dev") == "net0" for r in routes), routes
    # the VFs taken are the first free ones; VLAN 210 is recorded on enp2s0's VF 0
    assert nic.host_link("enp12s0f1v0") is None and nic.host_link("enp2s0v0") is None
    assert nic.vf_state("enp2s0", 0)["vlan"] == 210
    assert nic.vf_state("enp12s0f1", 0) == FRESH  # sriov-conf sets no VF property
    # the pod-side interfaces keep the VF's own MAC (none requested)
    inside = json.loads(node.pod_ip(pod, "-j", "link", "show", "net0"))[0]
    assert inside["address"] == before["enp12s0f1v0"]["address"]  # type: ignore[index]
    assert "UP" in inside["flags"]

    check = node.run("CHECK", conf, container_id="seedpod", netns=pod, extra_env=nic.env())
    assert check.rc == 0, check.stdout + check.stderr

    delete = node.run("DEL", conf, container_id="seedpod", netns=pod, extra_env=nic.env())
    assert delete.rc == 0, delete.stdout + delete.stderr
    for name, link in before.items():
        back = nic.host_link(name)
        assert back is not None, f"{name} did not come back"
        assert back["address"] == link["address"] and back["mtu"] == link["mtu"]  # type: ignore[index]
    assert nic.vf_state("enp2s0", 0)["vlan"] == 0  # the VF's VLAN as it was before
    assert node.pod_links(pod) == {"lo"}
    again = node.run("DEL", conf, container_id="seedpod", netns=pod, extra_env=nic.env())
    assert again.rc == 0, again.stdout


def test_del_restores_mac_mtu_and_vf_settings(node: Node, nic: FakeNic) -> None:
    """sriov-cni fields: VF MAC/VLAN/QoS/spoofchk/trust/link state/rates set through the
    PF, the netdev MAC set in the pod; the pod changes the MTU; DEL puts all of it back."""
    vf_conf = {
        "type": "sriov",
        "name": "msr-full",
        "deviceID": nic.pfs[0].vfs[2].pci,
        "vlan": 100,
        "vlanQoS": 3,
        "mac": "02:aa:bb:cc:dd:01",
        "spoofchk": "off",
        "trust": "on",
        "link_state": "enable",
        "min_tx_rate": 10,
        "max_tx_rate": 100,
        "ipam": node.host_local("10.77.0.0/24"),
    }
    master = {
        "type": "bridge",
        "bridge": node.add_bridge("msrbr1"),
        "ipam": node.host_local("10.78.0.0/24"),
    }
    conf = node.conf([master, vf_conf], cniVersion="1.1.0", name="msr-full")
    pod = node.add_pod("msrpod")
    name = nic.pfs[0].vfs[2].netdev
    assert name is not None
    before = nic.host_link(name)
    add = node.run("ADD", conf, container_id="fullpod", netns=pod, extra_env=nic.env())
    assert add.rc == 0, add.stdout + add.stderr
    state = nic.vf_state("enp12s0f1", 2)
    assert state == {
        "mac": "02:aa:bb:cc:dd:01",
        "vlan": 100,
        "vlanQoS": 3,
        "vlanProto": "802.1Q",
        "spoofchk": False,
        "trust": True,
        "linkState": "enable",
        "minTxRate": 10,
        "maxTxRate": 100,
    }
    inside = json.loads(node.pod_ip(pod, "-j", "link", "show", "net1"))[0]
    assert inside["address"] == "02:aa:bb:cc:dd:01"
    node.pod_ip(pod, "link", "set", "net1", "mtu", "1400")
    delete = node.run("DEL", conf, container_id="fullpod", netns=pod, extra_env=nic.env())
    assert delete.rc == 0, delete.stdout + delete.stderr
    back = nic.host_link(name)
    assert back is not None and before is not None
    assert (back["address"], back["mtu"]) == (before["address"], before["mtu"])
    state = nic.vf_state("enp12s0f1", 2)
    assert (state["mac"], state["vlan"], state["spoofchk"], state["trust"]) == (
        "00:00:00:00:00:00",
        0,
        True,
        False,
    )
    assert (state["linkState"], state["minTxRate"], state["maxTxRate"]) == ("auto", 0, 0)


def test_type_multus_sriov_is_ours_whatever_sriov_binDir_holds(
    node: Node, nic: FakeNic, tmp_path: Path
) -> None:
    """With the SR-IOV network operator's own `sriov` first in binDir, `multus-sriov`
    still runs ours."""
    theirs = tmp_path / "opt-cni-bin"
    theirs.mkdir()
    (theirs / "sriov").write_text('#!/bin/sh\necho \'{"code": 7, "msg": "not ours"}\'; exit 1\n')
    (theirs / "sriov").chmod(0o755)
    vf = {"type": "multus-sriov", "if0": "enp12s0f1", "vlan": 9}
    master = {
        "type": "bridge",
        "bridge": node.add_bridge("msrbr3"),
        "ipam": node.host_local("10.80.0.0/24"),
    }
    conf = node.conf([master, vf], cniVersion="1.0.0", name="msr-ours", binDir=str(theirs))
    pod = node.add_pod("msrpod")
    add = node.run("ADD", conf, container_id="ours", netns=pod, extra_env=nic.env())
    assert add.rc == 0, add.stdout + add.stderr
    assert nic.vf_state("enp12s0f1", 0)["vlan"] == 9
    assert node.run("DEL", conf, container_id="ours", netns=pod, extra_env=nic.env()).rc == 0
    conf["delegates"][1]["type"] = "sriov"
    theirs_run = node.run("ADD", conf, container_id="theirs", netns=pod, extra_env=nic.env())
    assert theirs_run.rc == 1 and "not ours" in theirs_run.doc["msg"]
