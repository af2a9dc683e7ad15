"""The node's SR-IOV inventory: what `multus-node` reports in its NodeState status and
`multusctl inventory` prints, shaped like `multus_api.inventory.SriovInventory`.

PCI facts come from sysfs; VF settings (vlan, spoofchk, trust, link state, MAC as the
PF sees it) from the NIC through the PF (`IFLA_VFINFO_LIST`, or the simulated NIC).

Hardware facts only, so that pods coming and going never change the document (and
never cost a NodeState write, a re-render and a ConfigMap write per pod):

- a VF one of our pods holds (a live allocation record of the sriov delegate) is
  reported as it was before the pod took it: its netdev's original name, MAC and MTU,
  its VF settings before ADD changed them, its driver before a `dpdk` rebinding;
- on a PF a device plugin or DRA driver manages (`externallyManaged`), VFs are
  reported by index, PCI address and driver only: their netdevs and VF settings belong
  to the pods that plugin hands them to and change with each of them.

What is left is what the node is: PFs and VFs, drivers, and where no pod of ours is
involved, whether a VF's netdev is in the host netns (absent: another plugin, or a pod
it gave the VF to, holds it; the operator then counts it as not free).
"""

from __future__ import annotations

from multus_cni.errors import CniError
from multus_rules.sriov import is_externally_managed

from .sysfs import Sysfs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

    from .settings import Settings
    from .vfsettings import VfSettings

SETTINGS_KEYS = ("vlan", "spoofchk", "trust", "linkState")
ZERO_MAC = "00:00:00:00:00:00"  # what a PF reports for a VF whose MAC was never set


class DiscoveryError(Exception):
    """sysfs cannot be walked: nothing is reported (an empty inventory would tell the
    operator that the node has no PFs, and every SR-IOV network would turn unusable)."""


def host_links() -> dict[str, str]:
    """The links of this process's netns: name -> parent device (a PCI address, or ""
    where the kernel reports none, as for a veth)."""
    from .rtnl import Netlink

    with Netlink() as nl:
        return {link.name: link.parent_dev for link in nl.links()}


def discover(
    sysfs_root: str,
    vf_settings: VfSettings | None,
    *,
    held: Mapping[str, Mapping[str, Any]] | None = None,
    links: Mapping[str, str] | None = None,
    external: Iterable[str] = (),
) -> dict[str, Any]:
    """`{"pfs": [...]}`, PFs by PCI address, VFs by index; fields that cannot be read
    now (a VF netdev's MAC when a DPDK driver holds it) are left out, not guessed.

    `held`: our allocation records by VF PCI address. `links`: the host netns's links
    (`host_links()`); given, a VF netdev sysfs lists counts only when it is there (a
    real kernel's sysfs shows only the netdevs of the netns it was mounted in; a fake
    tree shows them all). `external`: the externally managed PFs (names or PCI)."""
    sysfs = Sysfs(sysfs_root)
    held = held or {}
    managed = tuple(external)
    pfs: list[dict[str, Any]] = []
    try:
        addresses = sysfs.list_pfs()
    except OSError as exc:
        raise DiscoveryError(
            f"cannot list the PCI devices in {sysfs.devices}: {exc.strerror or exc}"
        ) from None
    for pf_pci in addresses:
        facts = sysfs.pf_facts(pf_pci)
        if not facts["name"]:
            continue  # a PF without a kernel netdev cannot be if0 and has no VF settings
        pf = {k: v for k, v in facts.items() if v is not None}
        bare = is_externally_managed(str(pf["name"]), pf_pci, managed)
        settings: dict[int, dict[str, Any]] = {}
        if vf_settings is not None and pf.get("numVfs") and not bare:
            try:
                settings = vf_settings.read(str(pf["name"]))
            except Exception:  # a PF the NIC will not report on: PCI facts still count
                settings = {}
        vfs = []
        for vf in sysfs.vfs(pf_pci, str(pf["name"])):
            record = held.get(vf.pci)
            original: Mapping[str, Any] = (record or {}).get("original") or {}
            driver = vf.driver
            if record is not None and record.get("rebound") and original.get("driver"):
                driver = str(original["driver"])
            entry: dict[str, Any] = {"index": vf.index, "pciAddress": vf.pci}
            if driver:
                entry["driver"] = driver
            if bare:
                vfs.append(entry)
                continue
            if original.get("name"):
                entry["netdev"] = original["name"]
                entry.update({k: original[k] for k in ("mac", "mtu") if original.get(k)})
            elif vf.netdev and (links is None or links.get(vf.netdev) in ("", vf.pci)):
                entry["netdev"] = vf.netdev
                entry.update({k: v for k, v in sysfs.netdev_facts(vf.pci, vf.netdev).items() if v})
            reported = settings.get(vf.index)
            if reported:
                reported = {**reported, **(original.get("vf") or {})}
                entry.update({k: reported[k] for k in SETTINGS_KEYS})
                if "mac" not in entry and reported.get("mac") not in (None, "", ZERO_MAC):
                    entry["mac"] = reported["mac"]
            vfs.append(entry)
        pf["vfs"] = vfs
        pfs.append(pf)
    return {"pfs": pfs}


def report(settings: Settings, vf_settings: VfSettings | None = None) -> dict[str, Any]:
    """The inventory exactly as multus-node reports it (and `multusctl inventory`
    prints it) on this node: the allocation records of `settings.cache_dir`, this
    netns's links, and the externally managed PFs of the node's inventory file."""
    from . import nodeinventory
    from .allocation import Allocations
    from .vfsettings import for_environment

    held = {
        str(r["pciAddress"]): r
        for r in Allocations(settings.cache_dir).all(quarantine=False)
        if isinstance(r.get("pciAddress"), str)
    }
    try:
        inventory = nodeinventory.load(settings.inventory)
    except CniError:
        inventory = None  # unreadable: the delegate refuses to pick; we still report
    return discover(
        settings.sysfs_root,
        vf_settings if vf_settings is not None else for_environment(settings.sim_state),
        held=held,
        links=host_links(),
        external=inventory.externally_managed if inventory is not None else (),
    )
