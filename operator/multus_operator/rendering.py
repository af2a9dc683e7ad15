"""Per-node rendering: settings + one node's inventory + networks -> its ConfigMap data.

Pure: the operator and `multusctl render` call the same `render`, and equal inputs
give byte-equal output (sorted, fixed JSON formatting), which is what lets the
operator skip writes when nothing changed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from multus_api.inventory import PhysicalFunction, SriovInventory
from multus_api.nodeconf import CONF_KEY, INVENTORY_KEY
from multus_api.nodeconf import CONFIGMAP_PREFIX as CONFIGMAP_PREFIX  # shared with multus-node
from multus_api.nodeconf import configmap_name as configmap_name
from multus_api.objects import NodeStateStatus
from multus_api.settings import MultusSettings, multus_conf
from multus_rules.sriov import (
    SRIOV_TYPES,
    externally_managed_problem,
    is_externally_managed,
    no_free_vf_problem,
    no_such_vf_problem,
    no_vfs_problem,
    rebinding_problem,
    vf_unusable,
)

NODE_LABEL = "multus.cni.cncf.io/node"
COMPONENT_LABEL = "app.kubernetes.io/component"
COMPONENT = "multus-node-config"
MAX_DATA_BYTES = 1024 * 1024  # the API server refuses a ConfigMap whose data is larger

# What a NodeState's status holds besides the SR-IOV inventory (observedTime, plugins).
NOT_INVENTORY = frozenset(NodeStateStatus.model_fields) - frozenset(SriovInventory.model_fields)


def inventory_of(status: Mapping[str, Any]) -> SriovInventory:
    """The SR-IOV inventory part of a NodeState's status (pydantic's ValidationError,
    a ValueError, when it is malformed)."""
    return SriovInventory.model_validate(
        {k: v for k, v in status.items() if k not in NOT_INVENTORY}
    )


@dataclasses.dataclass(frozen=True)
class NodeView:
    """What rendering needs to know about a node."""

    name: str
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    inventory: SriovInventory | None = None


@dataclasses.dataclass(frozen=True)
class NetworkView:
    """A valid network object: `key` is `namespace/name`, `confs` its plugin confs."""

    key: str
    confs: tuple[Mapping[str, Any], ...]

    @functools.cached_property
    def is_sriov(self) -> bool:
        return any(c.get("type") in SRIOV_TYPES for c in self.confs)


def configmap_labels(node: str) -> dict[str, str]:
    # Label values are at most 63 chars; long node names are hashed there too.
    value = node if len(node) <= 63 else f"{node[:52].rstrip('-._')}-{_short_hash(node)}"
    return {NODE_LABEL: value, COMPONENT_LABEL: COMPONENT}


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def usable_on(
    network: NetworkView, inventory: SriovInventory | None, external: Iterable[str] = ()
) -> str | None:
    """None if the network can attach pods on a node with this inventory (and these
    externally managed PFs), else why not: the same rule the sriov delegate picks a VF
    by (`multus_rules.sriov`), applied to what the node reported."""
    for conf in network.confs:
        if conf.get("type") not in SRIOV_TYPES:
            continue
        pfs = inventory.pfs if inventory is not None else []
        pf_name, device = conf.get("if0"), conf.get("deviceID")
        if isinstance(pf_name, str):
            pf = inventory.pf(pf_name) if inventory is not None else None
            if pf is None:
                return f"no PF {pf_name}"
            if is_externally_managed(pf.name, pf.pciAddress, external):
                return externally_managed_problem(pf.name, pf.pciAddress)
            rebinding = inventory is None or inventory.dpdkRebinding is not False
            problem = free_vf_problem(pf, conf, rebinding)
            if problem is not None:
                return problem
        elif isinstance(device, str):
            if inventory is None or not inventory.has_pci(device):
                return f"no device {device}"
            vf = inventory.vf(device)
            if vf is not None:
                dpdk_block = isinstance(conf.get("dpdk"), Mapping)
                why = rebinding_problem(vf.driver, dpdk_block, inventory.dpdkRebinding is not False)
                if why is not None:
                    return f"VF {device} is {why}"
        elif not any(pf.numVfs > 0 for pf in pfs):
            return "no PF with VFs"
    return None


def free_vf_problem(
    pf: PhysicalFunction, conf: Mapping[str, Any], rebinding: bool = True
) -> str | None:
    """Why an `if0` conf can pick no VF of `pf`, counting the VFs our pods hold as free
    (the inventory reports them as they were before): capacity, not occupancy, which
    changes with every pod and stays on the node."""
    vfs = pf.vfs
    index = conf.get("vf")
    if isinstance(index, int) and not isinstance(index, bool):
        vfs = [vf for vf in vfs if vf.index == index]
        if not vfs and pf.vfs:
            return no_such_vf_problem(pf.name, index)
    if not vfs:
        # no VF listed: none created, or a report without VF details (benefit of the doubt)
        return no_vfs_problem(pf.name) if not pf.numVfs else None
    skipped: dict[str, list[str]] = {}
    for vf in vfs:
        why = vf_unusable(vf.driver, vf.netdev, isinstance(conf.get("dpdk"), Mapping), rebinding)
        if why is None:
            return None
        skipped.setdefault(why, []).append(vf.pciAddress)
    return no_free_vf_problem(pf.name, len(vfs), skipped)


def plugins_needed(network: NetworkView) -> set[str]:
    """The plugin executables a node needs for this network: each delegate's `type`
    and its IPAM's."""
    needed = set()
    for conf in network.confs:
        if isinstance(conf.get("type"), str):
            needed.add(conf["type"])
        ipam = conf.get("ipam")
        if isinstance(ipam, Mapping) and isinstance(ipam.get("type"), str):
            needed.add(ipam["type"])
    return needed


def missing_plugins(network: NetworkView, installed: frozenset[str] | None) -> str | None:
    """None if the node has every plugin the network needs (or has not said what it
    has), else why not."""
    if installed is None:
        return None
    missing = sorted(plugins_needed(network) - installed)
    if not missing:
        return None
    return f"plugin{'s' * (len(missing) > 1)} {', '.join(missing)} not installed"


def render(
    settings: MultusSettings, node: NodeView, networks: Iterable[NetworkView]
) -> dict[str, str]:
    """The `data` of the node's ConfigMap."""
    node_settings = settings.for_node(dict(node.labels))
    conf = multus_conf(node_settings)
    external = node_settings.sriov.externallyManaged
    usable = []
    for network in sorted(networks, key=lambda n: n.key):
        if not network.is_sriov or usable_on(network, node.inventory, external) is not None:
            continue
        pfs = sorted({str(c["if0"]) for c in network.confs if c.get("if0")})
        usable.append({"network": network.key, "pfs": pfs})
    inventory: dict[str, Any] = {
        "node": node.name,
        "pfs": [
            pf.model_dump(mode="json", exclude_none=True)
            for pf in (node.inventory.pfs if node.inventory else [])
        ],
        "networks": usable,
        # PFs the sriov delegate must not pick free VFs from (a device plugin owns them)
        "externallyManaged": sorted(node_settings.sriov.externallyManaged),
    }
    return {CONF_KEY: _dump(conf), INVENTORY_KEY: _dump(inventory)}


def data_bytes(data: Mapping[str, str]) -> int:
    """The size the API server holds against MAX_DATA_BYTES: keys plus values."""
    return sum(len(k.encode()) + len(v.encode()) for k, v in data.items())


def _dump(doc: Any) -> str:
    return json.dumps(doc, indent=2) + "\n"


def configmap_body(
    node: str, namespace: str, data: Mapping[str, str], node_uid: str | None = None
) -> dict[str, Any]:
    """The whole ConfigMap; owned by the Node (when its uid is known) so GC removes it."""
    metadata: dict[str, Any] = {
        "name": configmap_name(node),
        "namespace": namespace,
        "labels": configmap_labels(node),
        "annotations": {NODE_LABEL: node},
    }
    if node_uid:
        metadata["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": node, "uid": node_uid}
        ]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": dict(data)}
