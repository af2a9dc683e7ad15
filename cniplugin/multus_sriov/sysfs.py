"""The PCI side of SR-IOV, read from sysfs (`$MULTUS_SYSFS_ROOT/sys/bus/pci/devices`).

A PF is a network-class PCI function with `sriov_totalvfs`; its VFs are its `virtfnN`
links (N is the VF index: PCI order is not VF order on every NIC). A VF's netdev is the
entry under its `net/` directory, absent when a DPDK driver (vfio-pci, uio) holds it.
Nothing here writes, except `bind_driver` (the opt-in DPDK rebinding).
"""

from __future__ import annotations

import os

from multus_rules.sriov import DPDK_DRIVERS

NETWORK_CLASS = "0x02"
LINK_TYPES = {1: "ether", 32: "infiniband"}


def devices_dir(root: str) -> str:
    return os.path.join(root, "sys", "bus", "pci", "devices")


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:  # absent, or unreadable now (e.g. `speed` of a link that is down)
        return None


def _int(path: str) -> int | None:
    text = _read(path)
    try:
        return int(text, 0) if text is not None else None
    except ValueError:
        return None


def _hex_id(path: str) -> str | None:
    text = _read(path)
    return text[2:] if text and text.startswith("0x") else text


def _link_name(path: str) -> str | None:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


class Vf:
    """One VF as sysfs shows it now."""

    __slots__ = ("driver", "index", "netdev", "pci", "pf_name", "pf_pci")

    def __init__(
        self,
        pf_name: str,
        pf_pci: str,
        index: int,
        pci: str,
        driver: str | None,
        netdev: str | None,
    ) -> None:
        self.pf_name = pf_name
        self.pf_pci = pf_pci
        self.index = index
        self.pci = pci
        self.driver = driver
        self.netdev = netdev

    @property
    def dpdk(self) -> bool:
        return self.driver in DPDK_DRIVERS

    def __repr__(self) -> str:
        return f"VF {self.index} ({self.pci}) of {self.pf_name}"


class Sysfs:
    def __init__(self, root: str) -> None:
        self.root = root
        self.devices = devices_dir(root)

    def path(self, pci: str, *parts: str) -> str:
        return os.path.join(self.devices, pci, *parts)

    def netdevs(self, pci: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(pci, "net")))
        except OSError:
            return []

    def driver(self, pci: str) -> str | None:
        return _link_name(self.path(pci, "driver"))

    def is_pf(self, pci: str) -> bool:
        klass = _read(self.path(pci, "class")) or ""
        return klass.startswith(NETWORK_CLASS) and os.path.exists(self.path(pci, "sriov_totalvfs"))

    def pf_addresses(self) -> list[str]:
        try:
            return self.list_pfs()
        except OSError:
            return []

    def list_pfs(self) -> list[str]:
        """The PFs' PCI addresses; OSError when the PCI devices cannot be listed at all
        (discovery must not take that for a node without PFs)."""
        return [n for n in sorted(os.listdir(self.devices)) if self.is_pf(n)]

    def pf_name(self, pci: str) -> str | None:
        names = self.netdevs(pci)
        return names[0] if names else None

    def find_pf(self, name: str) -> str | None:
        """The PCI address of the PF whose netdev is `name`."""
        return next((pci for pci in self.pf_addresses() if name in self.netdevs(pci)), None)

    def vf_links(self, pf_pci: str) -> list[tuple[int, str]]:
        """(VF index, VF PCI address), by index."""
        found = []
        try:
            entries = os.listdir(self.path(pf_pci))
        except OSError:
            return []
        for entry in entries:
            if entry.startswith("virtfn") and entry[6:].isdigit():
                target = _link_name(self.path(pf_pci, entry))
                if target:
                    found.append((int(entry[6:]), target))
        return sorted(found)

    def vfs(self, pf_pci: str, pf_name: str | None = None) -> list[Vf]:
        """The PF's VFs; `pf_name`: its netdev's name when the caller has just read it."""
        if pf_name is None:
            pf_name = self.pf_name(pf_pci) or ""
        return [self._vf(pf_name, pf_pci, index, pci) for index, pci in self.vf_links(pf_pci)]

    def _vf(self, pf_name: str, pf_pci: str, index: int, pci: str) -> Vf:
        names = self.netdevs(pci)
        return Vf(pf_name, pf_pci, index, pci, self.driver(pci), names[0] if names else None)

    def vf(self, pci: str) -> Vf | None:
        """The VF with this PCI address (None when it is no VF: no `physfn`)."""
        pf_pci = _link_name(self.path(pci, "physfn"))
        if pf_pci is None:
            return None
        for index, vf_pci in self.vf_links(pf_pci):
            if vf_pci == pci:
                return self._vf(self.pf_name(pf_pci) or "", pf_pci, index, pci)
        return None

    def exists(self, pci: str) -> bool:
        return os.path.isdir(self.path(pci))

    # ---- PF and netdev facts for discovery ----

    def pf_facts(self, pci: str) -> dict[str, object]:
        name = self.pf_name(pci) or ""
        net = self.path(pci, "net", name)
        speed = _int(os.path.join(net, "speed"))
        link_type = _int(os.path.join(net, "type"))
        facts: dict[str, object] = {
            "name": name,
            "pciAddress": pci,
            "vendor": _hex_id(self.path(pci, "vendor")),
            "device": _hex_id(self.path(pci, "device")),
            "driver": self.driver(pci),
            "totalVfs": _int(self.path(pci, "sriov_totalvfs")) or 0,
            "numVfs": _int(self.path(pci, "sriov_numvfs")) or 0,
            "mtu": _int(os.path.join(net, "mtu")),
            "mac": _read(os.path.join(net, "address")),
            "linkSpeed": speed if speed is not None and speed >= 0 else None,
            "linkType": LINK_TYPES.get(link_type, str(link_type)) if link_type else None,
        }
        return facts

    def netdev_facts(self, pci: str, name: str) -> dict[str, object]:
        net = self.path(pci, "net", name)
        return {"mac": _read(os.path.join(net, "address")), "mtu": _int(os.path.join(net, "mtu"))}

    # ---- the opt-in DPDK driver rebinding ----

    def bind_driver(self, pci: str, driver: str) -> None:
        """Rebind `pci` to `driver` the way dpdk-devbind does: driver_override, unbind,
        drivers_probe. Raises OSError when sysfs refuses a write."""
        current = self.driver(pci)
        with open(self.path(pci, "driver_override"), "w") as handle:
            handle.write(driver)  # also when already bound: no stale override stays behind
        if current == driver:
            return
        if current is not None:
            with open(self.path(pci, "driver", "unbind"), "w") as handle:
                handle.write(pci)
        with open(os.path.join(self.root, "sys", "bus", "pci", "drivers_probe"), "w") as handle:
            handle.write(pci)
