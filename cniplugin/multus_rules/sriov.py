"""Which VF an `if0` network may take, and which PFs are not ours to pick from: one rule
for the sriov delegate (which VF it picks at ADD) and the operator (whether a network
is usable on a node, and why not), so `Ready` says what an ADD would find.

A VF is a candidate for free-VF picking when it is on a kernel driver and its netdev is
in the host's network namespace (or held by a pod of ours: the inventory reports such a
VF as it was before the pod took it). A VF on a DPDK driver has no netdev to move; it
is taken only by a conf whose `dpdk` block rebinds drivers anyway; such a conf takes a
kernel VF only where the node rebinds drivers (multus-node `--sriov-dpdk-bind allow`,
reported as the inventory's `dpdkRebinding`). A kernel VF without a netdev on the host
is held by another plugin (or a pod it gave it to), or has no driver bound.
"""

from __future__ import annotations

from .findings import Finding

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

SRIOV_TYPES = ("sriov", "multus-sriov")  # the SR-IOV delegate under either of its names
DPDK_DRIVERS = frozenset(("vfio-pci", "uio_pci_generic", "igb_uio"))
ON_DPDK = "on a DPDK driver"
NO_NETDEV = "without a netdev on the host"
NOT_REBOUND = "on a kernel driver, not rebound on this node (--sriov-dpdk-bind deny)"


def vf_unusable(
    driver: str | None, netdev: str | None, dpdk_block: bool, rebinding: bool = True
) -> str | None:
    """None when free-VF picking may take this VF, else why not ("on a DPDK driver
    (vfio-pci)", NOT_REBOUND, NO_NETDEV).
    `dpdk_block`: the conf has the seed's `dpdk` block (it rebinds a kernel VF itself);
    `rebinding`: the node allows that."""
    if driver in DPDK_DRIVERS:
        return None if dpdk_block else f"{ON_DPDK} ({driver})"
    problem = rebinding_problem(driver, dpdk_block, rebinding)
    if problem is not None:
        return problem
    if not netdev:
        return NO_NETDEV
    return None


def rebinding_problem(driver: str | None, dpdk_block: bool, rebinding: bool) -> str | None:
    """NOT_REBOUND when a conf with the seed's `dpdk` block would have to rebind this VF
    (on a kernel driver) on a node that does not rebind drivers; else None. Also for a VF
    named by `deviceID`, whatever picked it."""
    if dpdk_block and not rebinding and driver not in DPDK_DRIVERS:
        return NOT_REBOUND
    return None


def is_externally_managed(pf_name: str, pf_pci: str, managed: Iterable[str]) -> bool:
    """Whether a device plugin or DRA driver hands out this PF's VFs (the settings'
    `sriov.externallyManaged`: PF names or PCI addresses)."""
    listed = set(managed)
    return pf_name in listed or pf_pci in listed


def externally_managed_problem(pf_name: str, pf_pci: str) -> str:
    return (
        f"PF {pf_name} ({pf_pci}) is externally managed (sriov.externallyManaged: a device "
        "plugin or DRA driver hands out its VFs): picking a free VF of it could give one VF "
        "to two pods; name the VF by deviceID (a NAD's k8s.v1.cni.cncf.io/resourceName)"
    )


def no_vfs_problem(pf_name: str) -> str:
    return (
        f"PF {pf_name} has no VFs (sriov_numvfs is 0; the SR-IOV network operator or the "
        "node's admin creates VFs, multus never does)"
    )


def no_such_vf_problem(pf_name: str, index: int) -> str:
    return f"PF {pf_name} has no VF {index}"


def no_free_vf_problem(pf_name: str, total: int, skipped: dict[str, list[str]]) -> str:
    """Why none of the `total` VFs of a PF can be picked; `skipped`: reason -> VF PCI
    addresses (the reasons above, or the delegate's own such as "attached to pods")."""
    dpdk = sum(len(v) for k, v in skipped.items() if k.startswith(ON_DPDK))
    if total and dpdk == total:
        every = "its only VF is" if total == 1 else f"all {total} VFs are"
        return f"no free VF on PF {pf_name}: {every} on a DPDK driver"
    why = "; ".join(f"{len(v)} {k}" for k, v in skipped.items())
    return f"no free VF on PF {pf_name} ({total} VF{'s' * (total != 1)}: {why})"


def conf_problems(conf: Mapping[str, Any]) -> list[Finding]:
    """What the sriov delegate refuses across the fields of its conf (each field's own
    type and range checked first), before it touches a VF: the delegate fails its ADD with
    the first (code 7), the operator marks the network Invalid with all of them."""
    found: list[Finding] = []
    vlan, qos, proto = conf.get("vlan"), conf.get("vlanQoS"), conf.get("vlanProto")
    if qos and not vlan:
        found.append(Finding("vlanQoS", "needs a non-zero vlan"))
    if proto is not None and vlan is None:
        found.append(Finding("vlanProto", "needs a vlan"))
    elif isinstance(proto, str) and proto.lower() == "802.1ad" and vlan == 0:
        found.append(Finding("vlanProto", "802.1ad needs a non-zero vlan"))
    low, high = conf.get("min_tx_rate"), conf.get("max_tx_rate")
    if isinstance(low, int) and isinstance(high, int) and low and high and low > high:
        found.append(Finding("min_tx_rate", f"{low} is above max_tx_rate {high}"))
    if conf.get("l2enable") is True and conf.get("ipam") not in (None, {}):
        found.append(Finding("ipam", "l2enable means no IPAM; remove one of them"))
    if conf.get("vf") is not None and not conf.get("if0"):
        found.append(Finding("vf", "a fixed VF index needs if0 (its PF)"))
    return found
