"""What the operator and multus-node agree on about a node's ConfigMap: its name and
keys. The operator writes it; the agent on that node watches it and installs it."""

from __future__ import annotations

import hashlib

# The thick-mode shim's name in the CNI bin dir and in the conf's `type`. Our own, not
# upstream's `multus-shim`: the wire protocol is ours (see multus_cni.shim).
SHIM_TYPE = "multus-py-shim"
THIN_TYPE = "multus"
# The types of a multus conf (upstream Multus's thick shim too): never a node's default
# network, and judged as a multus conf by the operator and multusctl.
MULTUS_CONF_TYPES = (THIN_TYPE, "multus-shim", SHIM_TYPE)
CONF_KEY = "00-multus.conf"
INVENTORY_KEY = "sriov-inventory.json"
CONFIGMAP_PREFIX = "multus-node-"
MAX_NAME = 253


def configmap_name(node: str) -> str:
    """`multus-node-<node>`, shortened with a hash suffix past the 253-char limit."""
    name = CONFIGMAP_PREFIX + node
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(node.encode()).hexdigest()[:10]
    return f"{name[: MAX_NAME - 11].rstrip('-.')}-{digest}"
