"""The operator's memory of the cluster, filled by the watches, and what changed in it.

The watch callbacks (`on_*`, synchronous and cheap) record what they see and mark
what became dirty; the reconciler reads the marks. An event that changes nothing the
operator uses (a node's heartbeat, a status written by ourselves) marks nothing. Every
replica keeps this warm, leader or not, so a standby that takes over knows what is
written already, NAD validity included (it is read back from the objects).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from typing import Any

from multus_api.inventory import SriovInventory
from multus_api.objects import NodeStateStatus
from multus_api.settings import MultusSettings

from . import rendering, validation
from .rendering import NetworkView
from .resources import NADS, NETWORKS

logger = logging.getLogger("multus_operator")

NetworkKey = tuple[str, str, str]  # (kind, namespace, name)
VALIDITY_ANNOTATION = "multus.cni.cncf.io/validity"  # NADs whose CRD has no /status


@dataclasses.dataclass
class NodeInfo:
    name: str
    uid: str | None
    labels: dict[str, str]


@dataclasses.dataclass
class NetworkRecord:
    """One Network or NAD as last seen, with its check results."""

    kind: str
    namespace: str
    name: str
    uid: str | None
    generation: int | None
    fingerprint: str
    report: validation.Report
    view: NetworkView | None  # None when invalid
    conditions: list[dict[str, Any]] | None  # status.conditions as stored on the object
    validity: dict[str, Any] | None  # the validity annotation as stored (NADs)
    deleting: bool = False

    @property
    def key(self) -> NetworkKey:
        return (self.kind, self.namespace, self.name)

    @property
    def involved(self) -> dict[str, Any]:
        api = (NETWORKS if self.kind == "Network" else NADS).api_version
        ref = {"apiVersion": api, "kind": self.kind, "name": self.name}
        ref["namespace"] = self.namespace
        if self.uid:
            ref["uid"] = self.uid
        return ref


@dataclasses.dataclass
class ObservedConfigMap:
    data: dict[str, str]
    labels: dict[str, str]
    annotations: dict[str, str]
    owner_uids: frozenset[str]

    @classmethod
    def of(cls, body: dict[str, Any]) -> ObservedConfigMap:
        meta = body.get("metadata") or {}
        owners = meta.get("ownerReferences") or []
        return cls(
            dict(body.get("data") or {}),
            dict(meta.get("labels") or {}),
            dict(meta.get("annotations") or {}),
            frozenset(str(r.get("uid")) for r in owners if isinstance(r, dict)),
        )


@dataclasses.dataclass
class Marks:
    """What changed since the reconciler last looked."""

    nodes: set[str] = dataclasses.field(default_factory=set)
    all_nodes: bool = False
    networks: set[NetworkKey] = dataclasses.field(default_factory=set)
    all_networks: bool = False
    settings: bool = False

    def take(self) -> Marks:
        taken = dataclasses.replace(self, nodes=set(self.nodes), networks=set(self.networks))
        self.nodes.clear()
        self.networks.clear()
        self.all_nodes = self.all_networks = self.settings = False
        return taken


def fingerprint(body: dict[str, Any]) -> str:
    """What validation depends on: all but metadata and status."""
    relevant = validation.checked_content(body)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def parse_validity(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class ClusterState:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.nodes: dict[str, NodeInfo] = {}
        self.inventories: dict[str, SriovInventory] = {}
        self.plugins: dict[str, frozenset[str]] = {}  # node -> its installed CNI plugins
        self.networks: dict[NetworkKey, NetworkRecord] = {}
        self.configmaps: dict[str, ObservedConfigMap] = {}
        self.settings_data: dict[str, Any] | None = None  # None: no settings ConfigMap
        self.settings: MultusSettings | None = None  # the last good settings in use
        self.nad_has_status = False
        self.marks = Marks()
        self.wake = asyncio.Event()
        self._sriov_views: list[NetworkView] = []
        self._sriov_views_stale = True
        # Many nodes share one inventory (or have none): a verdict per (network, inventory)
        # is computed once, not once per node (5,000 nodes x 200 SR-IOV networks).
        self._inventory_keys: dict[str, str] = {}  # node -> its inventory's JSON
        self._external: dict[str, tuple[str, ...]] = {}  # node -> its externally managed PFs
        self._why_unusable: dict[tuple[str, str, tuple[str, ...]], str | None] = {}
        # (inventory JSON, externally managed PFs) -> the SR-IOV networks usable there
        self._usable: dict[tuple[str, tuple[str, ...]], list[NetworkView]] = {}
        self._sorted_nodes: list[str] | None = None

    # --- the watch callbacks ----------------------------------------------------------

    def on_node(self, event: str | None, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        name = meta.get("name")
        if not name:
            return
        if event == "DELETED":
            if self.nodes.pop(name, None) is None:
                return
            self._sorted_nodes = None
        else:
            info = NodeInfo(name, meta.get("uid"), dict(meta.get("labels") or {}))
            if self.nodes.get(name) == info:
                return  # a heartbeat or a status change: nothing we render from
            if name not in self.nodes:
                self._sorted_nodes = None
            self.nodes[name] = info
            self._external.pop(name, None)  # its labels may pick other settings
        self.mark_node(name)
        self.mark_all_networks()

    def on_nodestate(self, event: str | None, body: dict[str, Any]) -> None:
        name = (body.get("metadata") or {}).get("name")
        if not name:
            return
        plugins: frozenset[str] | None = None
        if event == "DELETED":
            inventory = None
        else:
            raw = body.get("status") or {}
            try:
                inventory = rendering.inventory_of(raw)
                plugins = NodeStateStatus.model_validate(
                    {"plugins": raw.get("plugins")}
                ).plugin_names()
            except ValueError as exc:
                logger.warning("NodeState %s: unusable inventory: %s", name, exc)
                return
        if self.plugins.get(name) != plugins:
            if plugins is None:
                self.plugins.pop(name, None)
            else:
                self.plugins[name] = plugins
            self.mark_all_networks()
        if self.inventories.get(name) == inventory:
            return
        if inventory is None:
            self.inventories.pop(name, None)
            self._inventory_keys.pop(name, None)
        else:
            self.inventories[name] = inventory
            self._inventory_keys[name] = inventory.model_dump_json()
        self.mark_node(name)
        self.mark_all_networks()

    def use_settings(self, settings: MultusSettings) -> None:
        """The settings now in use (valid ones only): which PFs each node's device plugin
        owns may have changed, and with it every SR-IOV network's `Ready`."""
        self.settings = settings
        self._external.clear()
        self.mark_all_networks()

    def on_settings(self, event: str | None, body: dict[str, Any]) -> None:
        """The `multus-settings` ConfigMap (watched by name in our namespace)."""
        data = None if event == "DELETED" else dict(body.get("data") or {})
        if data != self.settings_data:
            self.settings_data = data
            self.marks.settings = True
            self.kick()

    def on_configmap(self, event: str | None, body: dict[str, Any]) -> None:
        """A per-node ConfigMap (watched by our label in our namespace)."""
        meta = body.get("metadata") or {}
        node = (meta.get("annotations") or {}).get(rendering.NODE_LABEL)
        if not node:  # a hand edit dropped our annotation: the name still says
            node = self._node_named_by(str(meta.get("name") or ""))
            if node is None:
                return
        if event == "DELETED":
            self.configmaps.pop(node, None)
        else:
            self.configmaps[node] = ObservedConfigMap.of(body)
        self.mark_node(node)

    def _node_named_by(self, configmap: str) -> str | None:
        """The known node whose ConfigMap has this name (names may be hash-shortened)."""
        if not configmap.startswith(rendering.CONFIGMAP_PREFIX):
            return None
        return next((n for n in self.nodes if rendering.configmap_name(n) == configmap), None)

    def on_network(self, event: str | None, body: dict[str, Any]) -> None:
        kind = str(body.get("kind") or "")
        meta = body.get("metadata") or {}
        key = (kind, str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
        before = self.networks.get(key)
        if event == "DELETED":
            self.networks.pop(key, None)
            if before is not None and before.view is not None and before.view.is_sriov:
                self._sriov_changed()
            return
        digest = fingerprint(body)
        if before is not None and before.fingerprint == digest:
            report, view = before.report, before.view
        else:
            report = validation.validate_object(body)
            view = None
            if report.valid:
                view = NetworkView(f"{key[1]}/{key[2]}", tuple(validation.delegate_confs(body)))
        record = NetworkRecord(
            kind=kind,
            namespace=key[1],
            name=key[2],
            uid=meta.get("uid"),
            generation=meta.get("generation"),
            fingerprint=digest,
            report=report,
            view=view,
            conditions=(body.get("status") or {}).get("conditions"),
            validity=parse_validity((meta.get("annotations") or {}).get(VALIDITY_ANNOTATION)),
            deleting=bool(meta.get("deletionTimestamp")),
        )
        if before == record:
            return  # a label or another controller's annotation: nothing we judge
        self.networks[key] = record
        was_sriov = before is not None and before.view is not None and before.view.is_sriov
        now_sriov = view is not None and view.is_sriov
        if (was_sriov or now_sriov) and (before is None or before.view != view):
            self._sriov_changed()
        self.marks.networks.add(key)
        self.kick()

    # --- marks ----------------------------------------------------------------------------

    def _sriov_changed(self) -> None:
        self._sriov_views_stale = True
        self._why_unusable.clear()
        self._usable.clear()
        self.marks.all_nodes = True
        self.kick()

    def mark_node(self, name: str) -> None:
        self.marks.nodes.add(name)
        self.kick()

    def mark_all_networks(self) -> None:
        self.marks.all_networks = True
        self.kick()

    def mark_everything(self) -> None:
        self.marks.all_nodes = self.marks.all_networks = self.marks.settings = True
        self.kick()

    def kick(self) -> None:
        self.wake.set()

    def sriov_networks(self) -> list[NetworkView]:
        if self._sriov_views_stale:
            self._sriov_views = [
                r.view for r in self.networks.values() if r.view is not None and r.view.is_sriov
            ]
            self._sriov_views_stale = False
        return self._sriov_views

    def sorted_nodes(self) -> list[str]:
        if self._sorted_nodes is None:
            self._sorted_nodes = sorted(self.nodes)
        return self._sorted_nodes

    def external(self, node: str) -> tuple[str, ...]:
        """The PFs a device plugin or DRA driver manages on `node` (its settings')."""
        found = self._external.get(node)
        if found is None:
            info = self.nodes.get(node)
            if self.settings is None or info is None:
                return ()
            found = tuple(self.settings.for_node(info.labels).sriov.externallyManaged)
            self._external[node] = found
        return found

    def why_unusable(self, view: NetworkView, node: str) -> str | None:
        """`rendering.usable_on` for this node's inventory and externally managed PFs,
        remembered per (inventory, PFs)."""
        external = self.external(node)
        key = (view.key, self._inventory_keys.get(node, ""), external)
        if key not in self._why_unusable:
            self._why_unusable[key] = rendering.usable_on(
                view, self.inventories.get(node), external
            )
        return self._why_unusable[key]

    def why_not_ready(self, view: NetworkView, node: str) -> str | None:
        """Why the network cannot attach pods on `node`: its SR-IOV inventory, or a plugin
        the node says it lacks (a node that has not reported its plugins lacks none)."""
        return self.why_unusable(view, node) or rendering.missing_plugins(
            view, self.plugins.get(node)
        )

    def usable_sriov(self, node: str) -> list[NetworkView]:
        """The SR-IOV networks usable on `node`, remembered per (inventory, PFs)."""
        key = (self._inventory_keys.get(node, ""), self.external(node))
        if key not in self._usable:
            views = self.sriov_networks()
            self._usable[key] = [v for v in views if self.why_unusable(v, node) is None]
        return self._usable[key]
