"""The node's SR-IOV inventory: what `multus-node` reports in its NodeState status and
`multusctl inventory` prints, shaped like `multus_api.inventory.SriovInventory`.

PCI facts come from sysfs; VF settings (vlan, spoofchk, trust, link state, MAC as the
PF sees it) from the NIC through the PF (`IFLA_VFINFO_LIST`, or the simulated NIC).
Hardware facts only: which VF a pod holds is node-local state (allocation records), so
a pod's ADD or DEL never changes this document.
"""

from __future__ import annotations

from .sysfs import Sysfs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .vfsettings import VfSettings


def discover(sysfs_root: str, vf_settings: VfSettings | None) -> dict[str, Any]:
    """`{"pfs": [...]}`, PFs by PCI address, VFs by index; fields that cannot be read
    now (a VF netdev's MAC when a DPDK driver holds it) are left out, not guessed."""
    sysfs = Sysfs(sysfs_root)
    pfs: list[dict[str, Any]] = []
    for pf_pci in sysfs.pf_addresses():
        facts = sysfs.pf_facts(pf_pci)
        if not facts["name"]:
            continue  # a PF without a kernel netdev cannot be if0 and has no VF settings
        pf = {k: v for k, v in facts.items() if v is not None}
        settings: dict[int, dict[str, Any]] = {}
        if vf_settings is not None and pf.get("numVfs"):
            try:
                settings = vf_settings.read(str(pf["name"]))
            except Exception:  # a PF the NIC will not report on: PCI facts still count
                settings = {}
        vfs = []
        for vf in sysfs.vfs(pf_pci):
            entry: dict[str, Any] = {"index": vf.index, "pciAddress": vf.pci}
            if vf.driver:
                entry["driver"] = vf.driver
            if vf.netdev:
                entry["netdev"] = vf.netdev
                entry.update({k: v for k, v in sysfs.netdev_facts(vf.pci, vf.netdev).items() if v})
            reported = settings.get(vf.index)
            if reported:
                entry["vlan"] = reported["vlan"]
                entry["spoofchk"] = reported["spoofchk"]
                entry["trust"] = reported["trust"]
                entry["linkState"] = reported["linkState"]
                if "mac" not in entry and reported.get("mac"):
                    entry["mac"] = reported["mac"]
            vfs.append(entry)
        pf["vfs"] = vfs
        pfs.append(pf)
    return {"pfs": pfs}
