"""A simulated SR-IOV NIC for `make demo` and the tests: the sysfs tree the kernel would
show for a PF and its VFs, written under a root that `MULTUS_SYSFS_ROOT` points to.

The caller makes the netdevs (veth ends on a machine with no SR-IOV hardware) and passes
their MAC and MTU; VF settings then live in the `MULTUS_SRIOV_SIM_STATE` file. Only the
files discovery and the delegate read are written: class, vendor, device, driver link,
sriov_totalvfs/numvfs, virtfnN and physfn links, net/<ifname>/{address,mtu,type,speed}.
"""

from __future__ import annotations

import os

from .vfsettings import SimVfSettings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _write(path: str, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text + "\n")


def _driver(root: str, dev: str, driver: str) -> None:
    target = os.path.join(root, "sys", "bus", "pci", "drivers", driver)
    os.makedirs(target, exist_ok=True)
    link = os.path.join(dev, "driver")
    if os.path.islink(link):
        os.unlink(link)
    os.symlink(os.path.relpath(target, dev), link)


def _netdev(dev: str, name: str, facts: dict[str, Any]) -> None:
    net = os.path.join(dev, "net", name)
    os.makedirs(net, exist_ok=True)
    _write(os.path.join(net, "address"), str(facts["mac"]))
    _write(os.path.join(net, "mtu"), str(facts["mtu"]))
    _write(os.path.join(net, "type"), "1")
    if facts.get("speed") is not None:
        _write(os.path.join(net, "speed"), str(facts["speed"]))


def vf_address(pf_pci: str, index: int, count: int, bus: int) -> str:
    """VF PCI addresses numbered backwards (slot count-1 is VF 0), so that code which
    took PCI order for VF order would be caught."""
    domain = pf_pci.split(":")[0]
    slot = count - 1 - index
    return f"{domain}:{bus:02x}:{slot // 8 + 2:02x}.{slot % 8}"


def write_pf(
    root: str,
    pf: dict[str, Any],
    vfs: list[dict[str, Any]],
    *,
    vf_bus: int,
    sim_state: str = "",
) -> list[str]:
    """Write a PF (`name`, `pci`, `mac`, `mtu`, optional `speed`, `vendor`, `device`,
    `driver`, `total`) and its VFs (each `netdev` with `mac`/`mtu`, or none and a DPDK
    `driver`, plus optional `device`); the VFs' PCI addresses, by index. With
    `sim_state`, the simulated NIC reports every VF's settings, unconfigured, as a real
    one does through its PF."""
    devices = os.path.join(root, "sys", "bus", "pci", "devices")
    dev = os.path.join(devices, pf["pci"])
    os.makedirs(dev)
    _write(os.path.join(dev, "class"), "0x020000")
    _write(os.path.join(dev, "vendor"), f"0x{pf.get('vendor', '8086')}")
    _write(os.path.join(dev, "device"), f"0x{pf.get('device', '1572')}")
    _write(os.path.join(dev, "sriov_totalvfs"), str(pf.get("total", 64)))
    _write(os.path.join(dev, "sriov_numvfs"), str(len(vfs)))
    _driver(root, dev, pf.get("driver", "i40e"))
    _netdev(dev, pf["name"], pf)
    addresses = []
    for index, vf in enumerate(vfs):
        pci = vf_address(pf["pci"], index, len(vfs), vf_bus)
        vf_dev = os.path.join(devices, pci)
        os.makedirs(vf_dev)
        _write(os.path.join(vf_dev, "class"), "0x020000")
        _write(os.path.join(vf_dev, "vendor"), f"0x{pf.get('vendor', '8086')}")
        _write(os.path.join(vf_dev, "device"), f"0x{vf.get('device', '154c')}")
        os.symlink(f"../{pf['pci']}", os.path.join(vf_dev, "physfn"))
        os.symlink(f"../{pci}", os.path.join(dev, f"virtfn{index}"))
        _driver(root, vf_dev, vf.get("driver", "iavf"))
        if vf.get("netdev"):
            _netdev(vf_dev, vf["netdev"], vf)
        addresses.append(pci)
        if sim_state:
            SimVfSettings(sim_state).apply(pf["name"], index, {})
    return addresses
