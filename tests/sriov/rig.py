"""A simulated SR-IOV NIC: a fake sysfs tree whose VF netdevs are real veth ends.

`FakeNic` writes `$root/sys/bus/pci/devices/<pci>/...` the way the kernel lays it out
(class, vendor, device, driver link, sriov_totalvfs/numvfs, virtfnN and physfn links,
net/<ifname>/{address,mtu,speed,type}) for PFs and VFs whose netdevs are veth ends made
in the test's node netns. DPDK VFs get a vfio-pci driver link and no `net/`. VF settings
land in the simulated NIC's JSON file (`MULTUS_SRIOV_SIM_STATE`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multus_sriov import simnic
from tests.support.lab import Node


@dataclass
class FakeVf:
    index: int
    pci: str
    netdev: str | None  # None: bound to a DPDK driver
    driver: str
    peer: str | None = None


@dataclass
class FakePf:
    name: str
    pci: str
    vendor: str
    device: str
    driver: str
    total: int
    vfs: list[FakeVf] = field(default_factory=list)


class FakeNic:
    def __init__(self, root: Path, node: Node) -> None:
        self.root = root
        self.node = node
        self.devices = root / "sys" / "bus" / "pci" / "devices"
        self.drivers = root / "sys" / "bus" / "pci" / "drivers"
        self.devices.mkdir(parents=True, exist_ok=True)
        self.sim_state = root / "sim-nic.json"
        self.cache_dir = root / "sriov-cache"
        self.devinfo_dir = root / "devinfo"
        self.inventory = root / "net.d" / "multus.d" / "sriov-inventory.json"
        self.pfs: list[FakePf] = []

    # ---- building the tree ----

    def _facts(self, name: str) -> dict[str, Any]:
        info = json.loads(self.node.ip("-j", "link", "show", name))[0]
        return {"mac": info["address"], "mtu": info["mtu"]}

    def add_pf(
        self,
        name: str,
        pci: str,
        *,
        kernel_vfs: int = 2,
        dpdk_vfs: int = 0,
        total: int = 64,
        vendor: str = "8086",
        device: str = "1572",
        driver: str = "i40e",
        vf_device: str = "154c",
        speed: int | None = 10000,
        vf_bus: int = 2,
    ) -> FakePf:
        """A PF netdev (a veth end) and its VFs: kernel ones are veth ends named
        `<name>v<i>` (their peers `<name>p<i>` stay on the node), DPDK ones have none."""
        self.node.add_veth(name, f"{name[:11]}pf")
        vfs: list[dict[str, Any]] = []
        for index in range(kernel_vfs + dpdk_vfs):
            if index < kernel_vfs:
                netdev, peer = f"{name[:10]}v{index}", f"{name[:10]}p{index}"
                self.node.add_veth(netdev, peer)
                vfs.append(
                    {"netdev": netdev, "peer": peer, "device": vf_device, **self._facts(netdev)}
                )
            else:
                vfs.append({"driver": "vfio-pci", "device": vf_device})
        facts = {
            "name": name,
            "pci": pci,
            "vendor": vendor,
            "device": device,
            "driver": driver,
            "total": total,
            "speed": speed,
            **self._facts(name),
        }
        addresses = simnic.write_pf(
            str(self.root), facts, vfs, vf_bus=vf_bus, sim_state=str(self.sim_state)
        )
        pf = FakePf(name, pci, vendor, device, driver, total)
        for index, (vf, address) in enumerate(zip(vfs, addresses, strict=True)):
            pf.vfs.append(
                FakeVf(index, address, vf.get("netdev"), vf.get("driver", "iavf"), vf.get("peer"))
            )
        self.pfs.append(pf)
        return pf

    # ---- what the delegate and the tests read ----

    def env(self) -> dict[str, str]:
        return {
            "MULTUS_SYSFS_ROOT": str(self.root),
            "MULTUS_SRIOV_SIM_STATE": str(self.sim_state),
            "MULTUS_SRIOV_CACHE_DIR": str(self.cache_dir),
            "MULTUS_SRIOV_INVENTORY": str(self.inventory),
            "MULTUS_SRIOV_DEVINFO_DIR": str(self.devinfo_dir),
        }

    def vf_state(self, pf: str, index: int) -> dict[str, Any]:
        if not self.sim_state.exists():
            return {}
        state: dict[str, Any] = json.loads(self.sim_state.read_text()).get(pf, {})
        entry: dict[str, Any] = state.get(str(index), {})
        return entry

    def records(self) -> list[Path]:
        alloc = self.cache_dir / "allocations"
        return sorted(alloc.iterdir()) if alloc.exists() else []

    def host_link(self, name: str) -> dict[str, Any] | None:
        out = self.node.ip("-j", "link", "show", name, check=False)
        links = json.loads(out) if out.strip() else []
        return links[0] if links else None

    def wait_gone(self, *names: str, timeout: float = 10.0) -> None:
        """A deleted netns takes its veth ends (and their peers) down asynchronously."""
        import time

        deadline = time.monotonic() + timeout
        while any(self.host_link(n) is not None for n in names):
            assert time.monotonic() < deadline, f"{names} still on the node"
            time.sleep(0.05)


def seed_nic(root: Path, node: Node) -> FakeNic:
    """The seed's two NICs: enp12s0f1 (4 kernel VFs) and enp2s0 (2 kernel VFs, 1 DPDK)."""
    fake = FakeNic(root, node)
    fake.add_pf("enp12s0f1", "0000:0c:00.1", kernel_vfs=4, vf_bus=0x0C)
    fake.add_pf(
        "enp2s0",
        "0000:02:00.0",
        kernel_vfs=2,
        dpdk_vfs=1,
        total=63,
        device="10fb",
        driver="ixgbe",
        vf_device="10ed",
        vf_bus=0x02,
        speed=None,
    )
    return fake
