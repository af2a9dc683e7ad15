"""Where the SR-IOV code finds things on the node, read once from the environment.

Every path has a production default; tests and `make demo` point them elsewhere. The
exec'd delegate inherits these from the runtime (or from `multus-node` in thick mode).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_CACHE_DIR = "/var/lib/cni/multus/sriov"
DEFAULT_INVENTORY = "/etc/cni/net.d/multus.d/sriov-inventory.json"
DEFAULT_DEVINFO_DIR = "/var/run/k8s.cni.cncf.io/devinfo/cni"


class Settings:
    """`MULTUS_SYSFS_ROOT`: root of every sysfs read (`$ROOT/sys/...`), default `/`.
    `MULTUS_SRIOV_SIM_STATE`: a JSON file that plays the NIC's VF settings (tests, demo).
    `MULTUS_SRIOV_CACHE_DIR`: allocation records and locks.
    `MULTUS_SRIOV_INVENTORY`: the node's `sriov-inventory.json` (rendered by the operator,
    written by multus-node); absent file: every PF is ours to pick VFs from.
    `MULTUS_SRIOV_DEVINFO_DIR`: where device-info files go (NPWG device-info spec).
    `MULTUS_SRIOV_DPDK_BIND=allow`: honour the seed's `dpdk` block (driver rebinding).
    `MULTUS_SRIOV_NETDEV_WAIT`: seconds to wait for a VF netdev after a MAC set (5)."""

    __slots__ = (
        "allow_driver_binding",
        "cache_dir",
        "devinfo_dir",
        "inventory",
        "netdev_wait",
        "sim_state",
        "sysfs_root",
    )

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.sysfs_root = env.get("MULTUS_SYSFS_ROOT") or "/"
        self.sim_state = env.get("MULTUS_SRIOV_SIM_STATE") or ""
        self.cache_dir = env.get("MULTUS_SRIOV_CACHE_DIR") or DEFAULT_CACHE_DIR
        self.inventory = env.get("MULTUS_SRIOV_INVENTORY") or DEFAULT_INVENTORY
        self.devinfo_dir = env.get("MULTUS_SRIOV_DEVINFO_DIR") or DEFAULT_DEVINFO_DIR
        self.allow_driver_binding = env.get("MULTUS_SRIOV_DPDK_BIND") == "allow"
        try:
            self.netdev_wait = float(env.get("MULTUS_SRIOV_NETDEV_WAIT") or 5)
        except ValueError:
            self.netdev_wait = 5.0
