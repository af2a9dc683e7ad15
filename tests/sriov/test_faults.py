"""The sriov delegate under faults: concurrency, exhaustion, kill -9 mid-ADD, gone netns,
taken names, stale records, VFs held elsewhere, bad confs, DPDK VFs, the real NIC path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from multus_sriov.vfsettings import FRESH
from tests.sriov.conftest import CNI_PATH
from tests.sriov.rig import FakeNic
from tests.support.cni import VENV_BIN, CniCall, run_multus
from tests.support.lab import Node

SRIOV = str(VENV_BIN / "sriov")


def sriov(
    node: Node,
    nic: FakeNic,
    command: str,
    conf: dict[str, Any],
    cid: str,
    netns: str = "",
    ifname: str = "net1",
    env: dict[str, str] | None = None,
) -> CniCall:
    """The delegate called directly, as multus (or any runtime) calls it."""
    base = {"cniVersion": "1.1.0", "name": "msr-direct", "type": "sriov"}
    return run_multus(
        command,
        {**base, **conf},
        container_id=cid,
        netns=netns,
        ifname=ifname,
        cni_path=CNI_PATH,
        executable=SRIOV,
        node=node.name,
        extra_env={**nic.env(), **(env or {})},
    )


def test_two_concurrent_pods_on_one_pf_get_different_vfs(node: Node, nic: FakeNic) -> None:
    conf = {"if0": "enp12s0f1", "ipam": node.host_local("10.56.0.0/24")}
    pods = [node.add_pod("msrpod") for _ in range(4)]
    calls: dict[int, CniCall] = {}

    def add(i: int) -> None:
        calls[i] = sriov(node, nic, "ADD", conf, f"conc{i}", pods[i])

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c.rc == 0 for c in calls.values()), [c.stdout for c in calls.values()]
    pcis = {c.doc["interfaces"][0]["pciID"] for c in calls.values()}
    assert len(pcis) == 4
    assert {a for c in calls.values() for a in [c.doc["ips"][0]["address"]]}.__len__() == 4
    for i in range(4):
        assert sriov(node, nic, "DEL", conf, f"conc{i}", pods[i]).rc == 0
    assert all(nic.host_link(f"enp12s0f1v{i}") is not None for i in range(4))


def test_exhaustion_is_a_clear_error_and_leaks_nothing(node: Node, nic: FakeNic) -> None:
    conf = {"if0": "enp2s0", "ipam": node.host_local("10.57.0.0/24")}
    pods = [node.add_pod("msrpod") for _ in range(3)]
    assert sriov(node, nic, "ADD", conf, "ex0", pods[0]).rc == 0
    assert sriov(node, nic, "ADD", conf, "ex1", pods[1]).rc == 0
    third = sriov(node, nic, "ADD", conf, "ex2", pods[2])
    assert third.rc == 1
    doc = third.doc
    assert doc["code"] == 11
    assert (
        "no free VF on PF enp2s0 (3 VFs: 2 attached to pods; 1 on a DPDK driver (vfio-pci))"
        in doc["msg"]
    )
    assert node.pod_links(pods[2]) == {"lo"}
    assert len(nic.records()) == 2
    leases = [p.name for p in (node.data_dir / "msr-direct").iterdir() if p.name[0].isdigit()]
    assert len(leases) == 2
    for i in range(2):
        assert sriov(node, nic, "DEL", conf, f"ex{i}", pods[i]).rc == 0


SLOW_IPAM = """#!/bin/sh
case "$CNI_COMMAND" in
  ADD) echo "$PPID $$" > {marker}; exec sleep 60 ;;
  VERSION) echo '{{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}}' ;;
esac
exit 0
"""


def test_kill_9_mid_add_then_del_restores_everything(
    node: Node, nic: FakeNic, tmp_path: Path
) -> None:
    """The delegate and multus are both killed while IPAM runs (the VF is already in the
    pod with its VLAN set); the runtime's DEL then gives everything back."""
    bindir = tmp_path / "slowbin"
    bindir.mkdir()
    marker = tmp_path / "ipam-started"
    script = bindir / "msrslowipam"
    script.write_text(SLOW_IPAM.format(marker=marker))
    script.chmod(0o755)
    vf = {"type": "sriov", "if0": "enp2s0", "vlan": 300, "ipam": {"type": "msrslowipam"}}
    master = {
        "type": "bridge",
        "bridge": node.add_bridge("msrbr2"),
        "ipam": node.host_local("10.79.0.0/24"),
    }
    conf = node.conf([master, vf], cniVersion="1.0.0", name="msr-kill")
    pod = node.add_pod("msrpod")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env |= nic.env() | {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "killpod",
        "CNI_NETNS": pod,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": f"{CNI_PATH}:{bindir}",
    }
    proc = subprocess.Popen(
        ["ip", "netns", "exec", node.name, str(VENV_BIN / "multus")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(conf).encode())
    proc.stdin.close()
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "IPAM never started"
    delegate_pid, ipam_pid = (int(p) for p in marker.read_text().split())
    assert "net1" in node.pod_links(pod)
    assert nic.vf_state("enp2s0", 0)["vlan"] == 300
    os.kill(delegate_pid, signal.SIGKILL)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()  # type: ignore[union-attr]
    os.kill(ipam_pid, signal.SIGKILL)  # the IPAM's sleep, orphaned by the kill
    delete = node.run(
        "DEL",
        conf,
        container_id="killpod",
        netns=pod,
        extra_env=nic.env(),
        cni_path=f"{CNI_PATH}:{bindir}",
    )
    assert delete.rc == 0, delete.stdout + delete.stderr
    assert node.pod_links(pod) == {"lo"}
    assert nic.host_link("enp2s0v0") is not None
    assert nic.vf_state("enp2s0", 0)["vlan"] == 0


def test_netns_gone_before_del_succeeds_and_restores_vf_settings(node: Node, nic: FakeNic) -> None:
    """A veth VF dies with its pod's netns (a real VF would come back to the host, found
    by its PCI address); DEL still succeeds, frees the lease, restores the VF settings."""
    conf = {"if0": "enp12s0f1", "vlan": 7, "ipam": node.host_local("10.58.0.0/24")}
    pod = node.add_pod("msrpod")
    assert sriov(node, nic, "ADD", conf, "gone", pod).rc == 0
    node.delete_pod(pod)
    node.expected_links -= {"enp12s0f1v0", "enp12s0f1p0"}  # the veth pair died with the pod
    delete = sriov(node, nic, "DEL", conf, "gone", pod)
    assert delete.rc == 0, delete.stdout + delete.stderr
    assert nic.vf_state("enp12s0f1", 0)["vlan"] == 0
    assert nic.records() == []
    assert sriov(node, nic, "DEL", conf, "gone", pod).rc == 0


def test_original_name_taken_keeps_the_vf_under_a_derived_name(node: Node, nic: FakeNic) -> None:
    conf = {"deviceID": nic.pfs[0].vfs[1].pci}
    pod = node.add_pod("msrpod")
    assert sriov(node, nic, "ADD", conf, "taken", pod).rc == 0
    node.ip("link", "add", "enp12s0f1v1", "type", "bridge")  # someone took the name
    delete = sriov(node, nic, "DEL", conf, "taken", pod)
    assert delete.rc == 0, delete.stdout
    assert (
        "original name enp12s0f1v1 is taken on the host; keeping it as sriov0c022" in delete.stderr
    )
    assert nic.host_link("sriov0c022") is not None
    node.ip("link", "del", "enp12s0f1v1")
    node.ip("link", "set", "sriov0c022", "name", "enp12s0f1v1")


def test_stale_record_of_a_dead_pod_is_reclaimed(node: Node, nic: FakeNic) -> None:
    """The pod died and its DEL never came: the next pod gets the VF, the dead pod's
    lease is freed and its VF settings restored."""
    conf = {"deviceID": nic.pfs[1].vfs[1].pci, "vlan": 42, "ipam": node.host_local("10.59.0.0/24")}
    first = node.add_pod("msrpod")
    assert sriov(node, nic, "ADD", conf, "dead", first).rc == 0
    node.delete_pod(first)
    node.expected_links -= {"enp2s0v1", "enp2s0p1"}
    nic.wait_gone("enp2s0p1")
    node.add_veth("enp2s0v1", "enp2s0p1")  # a real VF comes back to the host; a veth does not
    second = node.add_pod("msrpod")
    add = sriov(node, nic, "ADD", conf, "alive", second)
    assert add.rc == 0, add.stdout
    assert "is gone without a DEL; reclaiming it" in add.stderr
    leases = [p.name for p in (node.data_dir / "msr-direct").iterdir() if p.name[0].isdigit()]
    assert len(leases) == 1
    assert sriov(node, nic, "DEL", conf, "alive", second).rc == 0
    assert nic.vf_state("enp2s0", 1)["vlan"] == 0


def test_vf_still_attached_to_another_pod_is_refused_with_code_11(node: Node, nic: FakeNic) -> None:
    conf = {"deviceID": nic.pfs[0].vfs[3].pci}
    a, b = node.add_pod("msrpod"), node.add_pod("msrpod")
    assert sriov(node, nic, "ADD", conf, "holder", a).rc == 0
    second = sriov(node, nic, "ADD", conf, "taker", b)
    assert second.rc == 1 and second.doc["code"] == 11
    assert "still attached to container holder as net1" in second.doc["msg"]
    assert node.pod_links(b) == {"lo"}
    assert sriov(node, nic, "DEL", conf, "taker", b).rc == 0  # the runtime's DEL: harmless
    assert "net1" in node.pod_links(a)
    assert sriov(node, nic, "DEL", conf, "holder", a).rc == 0


def test_vf_held_outside_our_records_is_refused_with_code_11(node: Node, nic: FakeNic) -> None:
    other = node.add_pod("msrpod")
    node.ip("link", "set", "enp12s0f1v0", "netns", os.path.basename(other))
    node.expected_links -= {"enp12s0f1v0"}
    pod = node.add_pod("msrpod")
    call = sriov(node, nic, "ADD", {"deviceID": nic.pfs[0].vfs[0].pci}, "late", pod)
    assert call.rc == 1 and call.doc["code"] == 11
    assert "no netdev in the host network namespace" in call.doc["msg"]
    picked = sriov(node, nic, "ADD", {"if0": "enp12s0f1"}, "pick", pod)
    assert picked.rc == 0 and picked.doc["interfaces"][0]["pciID"] == nic.pfs[0].vfs[1].pci
    assert sriov(node, nic, "DEL", {"if0": "enp12s0f1"}, "pick", pod).rc == 0
    node.pod_ip(other, "link", "set", "enp12s0f1v0", "netns", node.name)
    node.expected_links |= {"enp12s0f1v0"}


@pytest.mark.parametrize(
    ("conf", "field"),
    [
        ({"if0": "enp2s0", "vlan": 4095}, "vlan: must be an integer from 0 to 4094"),
        ({"if0": "enp2s0", "vlanQoS": 2}, "vlanQoS: needs a non-zero vlan"),
        ({"if0": "enp2s0", "vlan": 0, "vlanProto": "802.1ad"}, "vlanProto: 802.1ad needs a non"),
        ({"deviceID": "0000:02:02.0", "vf": 1}, "vf: a fixed VF index needs if0"),
        ({"if0": "enp2s0", "spoofchk": "yes"}, "spoofchk: must be one of on, off"),
        ({"if0": "enp2s0", "mac": "zz"}, "mac: 'zz' is not a MAC address"),
        ({"if0": "enp2s0", "min_tx_rate": 9, "max_tx_rate": 5}, "min_tx_rate: 9 is above"),
        ({"deviceID": "0000:0c:02"}, "deviceID: '0000:0c:02' is not a PCI address"),
        ({}, "deviceID: missing"),
        ({"if0": "enp9s9"}, "if0: no SR-IOV PF named enp9s9 on this node (PFs: enp2s0, enp12s0f1)"),
        ({"deviceID": "0000:0c:00.1"}, "deviceID: PCI device 0000:0c:00.1 is not a VF"),
        ({"if0": "enp2s0", "l2enable": True, "ipam": {"type": "host-local"}}, "ipam: l2enable"),
        (
            {
                "deviceID": "0000:02:02.2",
                "dpdk": {"kernel_driver": "ixgbevf", "dpdk_driver": "vfio-pci"},
            },
            "dpdk: rebinding VF 0 (0000:02:02.2) of enp2s0 to vfio-pci is off on this node",
        ),
    ],
)
def test_bad_conf_is_code_7_naming_the_field_and_leaves_nothing(
    node: Node, nic: FakeNic, conf: dict[str, Any], field: str
) -> None:
    pod = node.add_pod("msrpod")
    call = sriov(node, nic, "ADD", conf, "bad", pod)
    assert call.rc == 1
    assert call.doc["code"] == 7, call.doc
    assert field in call.doc["msg"]
    assert node.pod_links(pod) == {"lo"}
    assert nic.vf_state("enp2s0", 0) == FRESH


def test_externally_managed_pf_refuses_free_vf_picking(node: Node, nic: FakeNic) -> None:
    nic.inventory.parent.mkdir(parents=True)
    nic.inventory.write_text(json.dumps({"node": "n", "pfs": [], "externallyManaged": ["enp2s0"]}))
    pod = node.add_pod("msrpod")
    call = sriov(node, nic, "ADD", {"if0": "enp2s0"}, "dp", pod)
    assert call.rc == 1 and call.doc["code"] == 7
    assert (
        "PF enp2s0 (0000:02:00.0) is externally managed (sriov.externallyManaged" in call.doc["msg"]
    )
    by_id = sriov(node, nic, "ADD", {"deviceID": nic.pfs[1].vfs[0].pci}, "dp", pod)
    assert by_id.rc == 0, by_id.stdout
    assert sriov(node, nic, "DEL", {"deviceID": nic.pfs[1].vfs[0].pci}, "dp", pod).rc == 0


def test_dpdk_vf_is_detected_not_moved_and_reported(node: Node, nic: FakeNic) -> None:
    dpdk_vf = nic.pfs[1].vfs[2]
    pod = node.add_pod("msrpod")
    conf = {"deviceID": dpdk_vf.pci, "vlan": 5, "cniVersion": "1.1.0"}
    add = sriov(node, nic, "ADD", conf, "dpdk", pod)
    assert add.rc == 0, add.stdout + add.stderr
    assert add.doc["interfaces"] == [{"name": "net1", "sandbox": pod, "pciID": dpdk_vf.pci}]
    assert node.pod_links(pod) == {"lo"}
    info = json.loads((nic.devinfo_dir / "sriov-dpdk-net1.json").read_text())
    assert info == {
        "type": "pci",
        "version": "1.1.0",
        "pci": {"pci-address": dpdk_vf.pci, "pf-pci-address": "0000:02:00.0"},
    }
    assert nic.vf_state("enp2s0", 2)["vlan"] == 5
    # at 1.0.0 the result cannot carry pciID: the device-info file still does
    older = sriov(node, nic, "CHECK", {**conf, "cniVersion": "1.0.0"}, "dpdk", pod)
    assert older.rc == 0, older.stdout
    assert sriov(node, nic, "DEL", conf, "dpdk", pod).rc == 0
    assert not (nic.devinfo_dir / "sriov-dpdk-net1.json").exists()
    assert nic.vf_state("enp2s0", 2)["vlan"] == 0


def test_dpdk_block_without_rebinding_takes_a_vf_already_on_a_dpdk_driver(
    node: Node, nic: FakeNic
) -> None:
    """The seed's `dpdk` block on a node that does not rebind drivers: the kernel VFs
    are skipped (the rulebook's NOT_REBOUND), the VF already on vfio-pci is taken; with
    none left, the error says why, as the operator's Ready does."""
    dpdk = {"kernel_driver": "ixgbevf", "dpdk_driver": "vfio-pci"}
    pod = node.add_pod("msrpod")
    add = sriov(node, nic, "ADD", {"if0": "enp2s0", "dpdk": dpdk}, "nobind", pod)
    assert add.rc == 0, add.stdout + add.stderr
    assert add.doc["interfaces"][0]["pciID"] == nic.pfs[1].vfs[2].pci
    assert nic.host_link("enp2s0v0") is not None and nic.host_link("enp2s0v1") is not None
    held = [p.read_text() for p in nic.records()]
    other = node.add_pod("msrpod")
    none_left = sriov(node, nic, "ADD", {"if0": "enp2s0", "dpdk": dpdk}, "nobind2", other)
    assert none_left.rc == 1 and none_left.doc["code"] == 11, (held, none_left.stdout)
    assert none_left.doc["msg"] == (
        "if0: no free VF on PF enp2s0 (3 VFs: 2 on a kernel driver, not rebound on this "
        "node (--sriov-dpdk-bind deny); 1 attached to pods)"
    )
    assert sriov(node, nic, "DEL", {"if0": "enp2s0", "dpdk": dpdk}, "nobind2", other).rc == 0
    assert sriov(node, nic, "DEL", {"if0": "enp2s0", "dpdk": dpdk}, "nobind", pod).rc == 0


def test_real_nic_path_on_a_veth_pf_is_a_clear_eopnotsupp_error(node: Node, nic: FakeNic) -> None:
    """No simulated NIC: VF settings go to the kernel through pyroute2, and a veth "PF"
    answers EOPNOTSUPP. The ADD fails clearly and gives the VF back."""
    pod = node.add_pod("msrpod")
    call = sriov(
        node,
        nic,
        "ADD",
        {"if0": "enp12s0f1", "vlan": 210},
        "real",
        pod,
        env={"MULTUS_SRIOV_SIM_STATE": ""},
    )
    assert call.rc == 1
    assert call.doc["code"] == 5
    assert call.doc["msg"].startswith(
        "PF enp12s0f1 does not support VF settings (EOPNOTSUPP) while setting VF 0 vlan=210"
    )
    assert node.pod_links(pod) == {"lo"}
    assert nic.host_link("enp12s0f1v0") is not None
    # reading VF info through the same path works (a veth reports no VFs)
    plain = sriov(
        node, nic, "ADD", {"if0": "enp12s0f1"}, "real", pod, env={"MULTUS_SRIOV_SIM_STATE": ""}
    )
    assert plain.rc == 0, plain.stdout
    assert sriov(node, nic, "DEL", {"if0": "enp12s0f1"}, "real", pod).rc == 0


def test_seed_dpdk_binding_only_with_the_nodes_opt_in_and_verified(
    node: Node, nic: FakeNic
) -> None:
    """With MULTUS_SRIOV_DPDK_BIND=allow the VF is rebound through sysfs as dpdk-devbind
    does (driver_override, unbind, drivers_probe); a bind that does not take (as here:
    a fake sysfs has no kernel behind it) fails the ADD and is rolled back."""
    vf = nic.pfs[0].vfs[0]
    pod = node.add_pod("msrpod")
    conf = {
        "deviceID": vf.pci,
        "dpdk": {
            "kernel_driver": "iavf",
            "dpdk_driver": "vfio-pci",
            "dpdk_tool": "/usr/bin/dpdk-devbind.py",
        },
    }
    call = sriov(node, nic, "ADD", conf, "bind", pod, env={"MULTUS_SRIOV_DPDK_BIND": "allow"})
    assert call.rc == 1 and call.doc["code"] == 5
    assert (
        call.doc["msg"]
        == f"dpdk: VF 0 ({vf.pci}) of enp12s0f1 is on driver iavf after binding it to vfio-pci"
    )
    pci_dir = nic.root / "sys" / "bus" / "pci"
    assert (pci_dir / "drivers_probe").read_text() == vf.pci
    assert (pci_dir / "drivers" / "iavf" / "unbind").read_text() == vf.pci
    assert (pci_dir / "devices" / vf.pci / "driver_override").read_text() == "iavf"  # rolled back
    assert node.pod_links(pod) == {"lo"} and nic.records() == []


def test_check_sees_vf_settings_drift_and_a_missing_netdev(node: Node, nic: FakeNic) -> None:
    from multus_sriov.vfsettings import SimVfSettings

    conf = {"if0": "enp12s0f1", "vlan": 30}
    pod = node.add_pod("msrpod")
    assert sriov(node, nic, "ADD", conf, "chk", pod).rc == 0
    assert sriov(node, nic, "CHECK", conf, "chk", pod).rc == 0
    SimVfSettings(str(nic.sim_state)).apply("enp12s0f1", 0, {"vlan": 31})
    drift = sriov(node, nic, "CHECK", conf, "chk", pod)
    assert (
        drift.rc == 1 and "settings changed since ADD: vlan is 31, ADD set 30" in drift.doc["msg"]
    )
    SimVfSettings(str(nic.sim_state)).apply("enp12s0f1", 0, {"vlan": 30})
    node.pod_ip(pod, "link", "set", "net1", "name", "renamed")
    gone = sriov(node, nic, "CHECK", conf, "chk", pod)
    assert gone.rc == 1 and "(net1) is missing from the pod" in gone.doc["msg"]
    node.pod_ip(pod, "link", "set", "renamed", "name", "net1")
    assert sriov(node, nic, "DEL", conf, "chk", pod).rc == 0
    never = sriov(node, nic, "CHECK", conf, "chk", pod)
    assert never.rc == 1 and never.doc["code"] == 3


def test_gc_releases_vfs_of_attachments_no_longer_valid(node: Node, nic: FakeNic) -> None:
    conf = {"if0": "enp12s0f1", "vlan": 8, "ipam": node.host_local("10.60.0.0/24")}
    keep, drop = node.add_pod("msrpod"), node.add_pod("msrpod")
    assert sriov(node, nic, "ADD", conf, "keep", keep).rc == 0
    assert sriov(node, nic, "ADD", conf, "drop", drop).rc == 0
    valid = {"cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "net1"}]}
    gc = sriov(node, nic, "GC", {**conf, **valid}, "", "")
    assert gc.rc == 0, gc.stdout + gc.stderr
    assert len(nic.records()) == 1
    assert nic.vf_state("enp12s0f1", 1)["vlan"] == 0  # the dropped pod's VF
    leases = [p.name for p in (node.data_dir / "msr-direct").iterdir() if p.name[0].isdigit()]
    assert len(leases) == 1
    assert sriov(node, nic, "DEL", conf, "keep", keep).rc == 0
    assert sriov(node, nic, "DEL", conf, "drop", drop).rc == 0


@pytest.mark.parametrize(
    ("stdin", "env", "code", "text"),
    [
        (b"{", {}, 6, "not valid JSON"),
        (b"", {}, 6, "is empty"),
        (None, {"CNI_NETNS": "/nonexistent/netns"}, 8, "CNI_NETNS: '/nonexistent/netns'"),
        (None, {"CNI_IFNAME": "a/b"}, 4, "CNI_IFNAME: 'a/b'"),
        (b'{"cniVersion": "9.9.9", "type": "sriov"}', {}, 1, "cniVersion: '9.9.9'"),
    ],
)
def test_bad_stdin_and_environment_get_the_spec_codes(
    node: Node, nic: FakeNic, stdin: bytes | None, env: dict[str, str], code: int, text: str
) -> None:
    pod = node.add_pod("msrpod")
    base = {"cniVersion": "1.1.0", "name": "msr-direct", "type": "sriov", "if0": "enp2s0"}
    raw = json.dumps(base).encode() if stdin is None else stdin
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")} | nic.env()
    environ |= {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "bad",
        "CNI_NETNS": pod,
        "CNI_IFNAME": "net1",
        "CNI_PATH": CNI_PATH,
    } | env
    proc = subprocess.run(
        ["ip", "netns", "exec", node.name, SRIOV],
        input=raw,
        env=environ,
        capture_output=True,
        check=False,
    )
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["code"] == code and text in doc["msg"], doc
    assert nic.records() == [] and node.pod_links(pod) == {"lo"}


def test_version_answers_without_a_conf(node: Node, nic: FakeNic) -> None:
    proc = subprocess.run(
        [SRIOV], input=b"garbage", env={"CNI_COMMAND": "VERSION"}, capture_output=True, check=True
    )
    doc = json.loads(proc.stdout)
    assert doc["supportedVersions"][-1] == "1.1.0" and "0.3.1" in doc["supportedVersions"]
