"""The node's `sriov-inventory.json`, as the delegate reads it.

The operator renders it from this node's NodeState (what multus-node discovered) and
the cluster settings; multus-node writes it under `<conf dir>/multus.d/`
(`MULTUS_SRIOV_INVENTORY`). The delegate takes from it which PFs are not its to pick
VFs from (`externallyManaged`) and where `if0` is (its PCI address, without a walk over
every PCI device). sysfs and the host netns still decide, per VF and at the moment of
the ADD, whether it is free. No file (conf-file mode, no operator): every PF is ours,
found in sysfs.
"""

from __future__ import annotations

from multus_cni import cnijson
from multus_cni.errors import CniError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class NodeInventory:
    __slots__ = ("externally_managed", "path", "pfs")

    def __init__(self, path: str, doc: dict[str, Any]) -> None:
        self.path = path
        managed = doc.get("externallyManaged")
        self.externally_managed: list[str] = (
            [m for m in managed if isinstance(m, str)] if isinstance(managed, list) else []
        )
        pfs = doc.get("pfs")
        self.pfs: list[dict[str, Any]] = (
            [p for p in pfs if isinstance(p, dict)] if isinstance(pfs, list) else []
        )

    def pf_address(self, name: str) -> str | None:
        """The PCI address the inventory gives PF `name` (None when it lists no such PF)."""
        for pf in self.pfs:
            if pf.get("name") == name and isinstance(pf.get("pciAddress"), str):
                return str(pf["pciAddress"])
        return None


def load(path: str) -> NodeInventory | None:
    """The inventory at `path`; None when there is none; code 5 when it is unreadable
    (never guess: it may be what keeps a device plugin's VFs out of our hands)."""
    try:
        with open(path, "rb") as handle:
            doc = cnijson.loads(handle.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise CniError(f"SR-IOV inventory {path} cannot be read: {exc}", code=5) from None
    if not isinstance(doc, dict):
        raise CniError(f"SR-IOV inventory {path} is not a JSON object", code=5)
    return NodeInventory(path, doc)
