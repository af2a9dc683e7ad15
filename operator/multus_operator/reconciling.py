"""The operator's memory of the cluster and the loop that makes the cluster match it.

kopf's watch handlers only record what they see (`on_*` methods, synchronous and
cheap) and mark what became dirty. One loop, woken by those marks and debounced,
does all the writing: per-node ConfigMaps and network status conditions. Every
write is preceded by a comparison with the last state seen, so a resync that
changes nothing writes nothing. A write that fails is retried on its own, after its own
backoff: one object the API keeps refusing delays nothing else.

The state is first filled by LIST calls (`bootstrap`), so that the first pass never
acts on a half-listed cluster (e.g. deleting the ConfigMap of a node not yet seen).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from multus_api.inventory import SriovInventory
from multus_api.settings import MultusSettings

from . import conditions, rendering, validation
from .kubeapi import ApiError, KubeApi, path_for
from .rendering import NetworkView, NodeView

logger = logging.getLogger("multus_operator")

NETWORKS = ("kubernetes.com", "v1", "networks")
NADS = ("k8s.cni.cncf.io", "v1", "network-attachment-definitions")
NODESTATES = ("multus.cni.cncf.io", "v1", "nodestates")
COMPONENT = "multus-operator"
NetworkKey = tuple[str, str, str]  # (kind, namespace, name)
K = TypeVar("K", str, NetworkKey)  # a node name or a network


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
    conditions: list[dict[str, Any]] | None  # as stored on the object (or last reported)

    @property
    def involved(self) -> dict[str, Any]:
        api = "kubernetes.com/v1" if self.kind == "Network" else "k8s.cni.cncf.io/v1"
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


class Retries(Generic[K]):
    """Per-item exponential backoff (RELIABILITY row 48: backoff, then consistent).

    A failed item waits `first`, then twice as long after each further failure, up to
    `cap`; a success forgets it. Only that item waits: the others are written at once.
    """

    def __init__(
        self,
        first: float = 1.0,
        cap: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.first = first
        self.cap = cap
        self.clock = clock
        self._due: dict[K, float] = {}
        self._delay: dict[K, float] = {}

    def __len__(self) -> int:
        return len(self._due)

    def failed(self, key: K) -> float:
        """Schedule the next try of `key`; return how long it waits."""
        delay = min(self._delay[key] * 2, self.cap) if key in self._delay else self.first
        self._delay[key] = delay
        self._due[key] = self.clock() + delay
        return delay

    def succeeded(self, key: K) -> None:
        self._due.pop(key, None)
        self._delay.pop(key, None)

    def hurry(self, key: K | None = None) -> None:
        """Make `key` (or every item) due now; a further failure still waits longer."""
        now = self.clock()
        for k in self._due if key is None else [key] if key in self._due else []:
            self._due[k] = now

    def waiting(self, key: K) -> bool:
        """Failed, and not yet due for its next try."""
        return key in self._due and self._due[key] > self.clock()

    def due(self) -> set[K]:
        now = self.clock()
        return {k for k, when in self._due.items() if when <= now}

    def next_in(self) -> float | None:
        """Seconds until the earliest try is due (0 if one is), None if nothing failed."""
        if not self._due:
            return None
        return max(0.0, min(self._due.values()) - self.clock())


def _fingerprint(body: dict[str, Any]) -> str:
    """What validation depends on: all but metadata and status."""
    relevant = validation.checked_content(body)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


class Reconciler:
    def __init__(self, namespace: str, *, debounce: float = 0.2, concurrency: int = 16) -> None:
        self.namespace = namespace
        self.debounce = debounce
        self.concurrency = concurrency
        self.api: KubeApi | None = None
        self.nodes: dict[str, NodeInfo] = {}
        self.inventories: dict[str, SriovInventory] = {}
        self.networks: dict[NetworkKey, NetworkRecord] = {}
        self.configmaps: dict[str, ObservedConfigMap] = {}
        self.settings: MultusSettings | None = None  # the last good settings
        self.settings_data: dict[str, Any] | None = None  # None: no settings ConfigMap
        self.settings_condition = conditions.Wanted(
            "SettingsValid", "Unknown", "NotRead", "settings not read yet"
        )
        self.nad_has_status = False
        self.oversized: dict[str, int] = {}  # node -> bytes of a rendering too large to write
        self.bootstrapped = asyncio.Event()
        self.passes = 0
        self.last_pass_seconds = 0.0
        self.idle = asyncio.Event()
        self._backoff = 0.0
        self._wake = asyncio.Event()
        self._node_retries: Retries[str] = Retries()
        self._network_retries: Retries[NetworkKey] = Retries()
        self._dirty_nodes: set[str] = set()
        self._all_nodes = False
        self._dirty_networks: set[NetworkKey] = set()
        self._all_networks = False
        self._settings_dirty = False
        self._settings_reported = ""
        self._sriov_views: list[NetworkView] = []
        self._sriov_views_stale = True
        # NADs without /status: the Valid state our last Event said, so a restart is quiet.
        self._nad_seed: dict[NetworkKey, list[dict[str, Any]]] = {}
        self._announced: dict[NetworkKey, str] = {}  # the Valid status our last Event told

    # --- what the watch handlers report ------------------------------------------------

    def on_node(self, event: str | None, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        name = meta.get("name")
        if not name:
            return
        if event == "DELETED":
            self.nodes.pop(name, None)
        else:
            info = NodeInfo(name, meta.get("uid"), dict(meta.get("labels") or {}))
            if self.nodes.get(name) == info:
                return
            self.nodes[name] = info
        self._mark_node(name)
        self._mark_all_networks()

    def on_nodestate(self, event: str | None, body: dict[str, Any]) -> None:
        name = (body.get("metadata") or {}).get("name")
        if not name:
            return
        if event == "DELETED":
            inventory = None
        else:
            status = {k: v for k, v in (body.get("status") or {}).items() if k != "observedTime"}
            try:
                inventory = SriovInventory.model_validate(status)
            except ValueError as exc:
                logger.warning("NodeState %s: unusable inventory: %s", name, exc)
                return
        if self.inventories.get(name) == inventory:
            return
        if inventory is None:
            self.inventories.pop(name, None)
        else:
            self.inventories[name] = inventory
        self._mark_node(name)
        self._mark_all_networks()

    def on_configmap(self, event: str | None, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        if meta.get("namespace") != self.namespace:
            return
        if meta.get("name") == validation.SETTINGS_CONFIGMAP:
            data = None if event == "DELETED" else dict(body.get("data") or {})
            if data != self.settings_data:
                self.settings_data = data
                self._settings_dirty = True
                self._kick()
            return
        labels = meta.get("labels") or {}
        node = (meta.get("annotations") or {}).get(rendering.NODE_LABEL)
        if labels.get(rendering.COMPONENT_LABEL) != rendering.COMPONENT or not node:
            # A hand edit may have dropped our label or annotation: the name still says.
            node = self._node_named_by(str(meta.get("name") or ""))
            if node is None:
                return
        if event == "DELETED":
            self.configmaps.pop(node, None)
        else:
            self.configmaps[node] = ObservedConfigMap.of(body)
        self._mark_node(node)

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
            self._announced.pop(key, None)
            if before is not None and before.view is not None and before.view.is_sriov:
                self._sriov_changed()
            return
        fingerprint = _fingerprint(body)
        status_conditions = (body.get("status") or {}).get("conditions")
        if before is not None and before.fingerprint == fingerprint:
            report, view = before.report, before.view
        else:
            report = validation.validate_object(body)
            view = None
            if report.valid:
                view = NetworkView(f"{key[1]}/{key[2]}", tuple(validation.delegate_confs(body)))
        stored = status_conditions if self._has_status(kind) else None
        if not self._has_status(kind):  # NADs without /status: what we last reported
            stored = before.conditions if before is not None else self._nad_seed.pop(key, None)
        record = NetworkRecord(
            kind=kind,
            namespace=key[1],
            name=key[2],
            uid=meta.get("uid"),
            generation=meta.get("generation"),
            fingerprint=fingerprint,
            report=report,
            view=view,
            conditions=stored,
        )
        self.networks[key] = record
        was_sriov = before is not None and before.view is not None and before.view.is_sriov
        now_sriov = view is not None and view.is_sriov
        if (was_sriov or now_sriov) and (before is None or before.view != view):
            self._sriov_changed()
        self._dirty_networks.add(key)
        self._network_retries.hurry(key)  # changed: the failure may not hold any more
        self._kick()

    def _has_status(self, kind: str) -> bool:
        return kind == "Network" or self.nad_has_status

    def _sriov_changed(self) -> None:
        self._sriov_views_stale = True
        self._all_nodes = True
        self._kick()

    def _mark_node(self, name: str) -> None:
        self._dirty_nodes.add(name)
        self._node_retries.hurry(name)  # its own inputs changed: worth trying again now
        self._kick()

    def _mark_all_networks(self) -> None:
        self._all_networks = True
        self._kick()

    def _kick(self) -> None:
        self.idle.clear()
        self._wake.set()

    def resync(self) -> None:
        """Re-check everything against the state seen, failed items too, now (at start and
        when this replica becomes the leader again)."""
        self._all_nodes = True
        self._all_networks = True
        self._settings_dirty = True
        self._node_retries.hurry()
        self._network_retries.hurry()
        self._kick()

    @property
    def retrying(self) -> int:
        """How many failed items wait for their next try."""
        return len(self._node_retries) + len(self._network_retries)

    def _next_retry_in(self) -> float | None:
        times = (self._node_retries.next_in(), self._network_retries.next_in())
        return min((t for t in times if t is not None), default=None)

    # --- the loop -------------------------------------------------------------------------

    async def bootstrap(self, api: KubeApi) -> None:
        """Fill the state from LIST calls, then mark everything for a first full pass."""
        self.api = api
        self.nad_has_status = await api.has_status_subresource(*NADS)
        selector = f"{rendering.COMPONENT_LABEL}={rendering.COMPONENT}"
        nodes, states, cms, settings, nets, nads = await asyncio.gather(
            api.list(path_for("", "v1", "nodes")),
            api.list(path_for(*NODESTATES)),
            api.list(path_for("", "v1", "configmaps", self.namespace), selector),
            api.get(
                path_for("", "v1", "configmaps", self.namespace, validation.SETTINGS_CONFIGMAP)
            ),
            api.list(path_for(*NETWORKS)),
            api.list(path_for(*NADS)),
        )
        for body in nodes:
            self.on_node(None, body)
        for body in states:
            self.on_nodestate(None, body)
        for body in cms:
            self.on_configmap(None, body)
        if settings is not None:
            self.on_configmap(None, settings)
        if not self.nad_has_status:
            # Only ours: all of a big cluster's Events would not even fit the request timeout.
            ours = f"source={COMPONENT},involvedObject.kind=NetworkAttachmentDefinition"
            self._seed_from_events(
                await api.list(path_for("", "v1", "events"), field_selector=ours)
            )
        for body in [*nets, *nads]:
            self.on_network(None, body)
        self.resync()
        self.bootstrapped.set()

    def _seed_from_events(self, events: list[dict[str, Any]]) -> None:
        latest: dict[NetworkKey, dict[str, Any]] = {}
        for event in events:
            obj = event.get("involvedObject") or {}
            if (event.get("source") or {}).get("component") != COMPONENT:
                continue
            if obj.get("kind") != "NetworkAttachmentDefinition":
                continue
            if event.get("reason") not in ("Valid", "Invalid"):
                continue
            key = (obj["kind"], str(obj.get("namespace")), str(obj.get("name")))
            stamp = str(event.get("lastTimestamp") or "")
            if key not in latest or stamp >= str(latest[key].get("lastTimestamp") or ""):
                latest[key] = event
        for key, event in latest.items():
            status = "True" if event["reason"] == "Valid" else "False"
            self._nad_seed[key] = [{"type": "Valid", "status": status}]

    async def run(self, api: KubeApi, leader: asyncio.Event | None = None) -> None:
        """Bootstrap, then reconcile on every wake-up; only while `leader` is set, if given."""
        delay = 1.0
        while True:
            try:
                await self.bootstrap(api)
                break
            except Exception as exc:  # API down or restarting as we start: never give up
                logger.warning("bootstrap failed: %s; retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
        while True:
            retry_in = self._next_retry_in()
            with contextlib.suppress(TimeoutError):  # a failed item is due: a pass for it
                await asyncio.wait_for(self._wake.wait(), retry_in)
            if leader is not None and not leader.is_set():
                await leader.wait()
                self.resync()  # the state may have moved on while another replica led
            await asyncio.sleep(self.debounce)  # let a burst of events land first
            self._wake.clear()
            started = time.monotonic()
            try:
                failed = await self.reconcile_once()
            except Exception:  # settings Event or a bug: the whole pass again, after a while
                logger.exception("reconcile pass failed")
                self._all_nodes = self._all_networks = self._settings_dirty = True
                self._backoff = min(self._backoff * 2, 60.0) if self._backoff else 1.0
                await asyncio.sleep(self._backoff)
                self._wake.set()
                continue
            self._backoff = 0.0
            self.passes += 1
            self.last_pass_seconds = time.monotonic() - started
            if failed:
                logger.warning(
                    "%d items failed; each retried after its own backoff (next in %.0f s)",
                    failed,
                    self._next_retry_in() or 0.0,
                )
            if not self._wake.is_set() and not self.retrying:
                self.idle.set()  # converged: nothing marked, nothing waiting for a retry

    async def reconcile_once(self) -> int:
        """One pass over what is dirty and the failed items now due; an item still waiting
        for its retry is left to it (it then renders what is current). Returns how many
        failed."""
        await self._apply_settings()
        nodes = set(self._dirty_nodes) | self._node_retries.due()
        if self._all_nodes:
            nodes |= set(self.nodes) | set(self.configmaps)
        self._dirty_nodes.clear()
        self._all_nodes = False
        networks = set(self._dirty_networks) | self._network_retries.due()
        if self._all_networks:
            networks |= set(self.networks)
        self._dirty_networks.clear()
        self._all_networks = False
        failed = await self._sync_all(self._sync_node, nodes, self._node_retries)
        return failed + await self._sync_all(self._sync_network, networks, self._network_retries)

    async def _sync_all(
        self, sync: Callable[[K], Awaitable[None]], keys: set[K], retries: Retries[K]
    ) -> int:
        """Sync the keys not waiting for a retry; schedule the retry of those that fail."""
        todo = sorted(k for k in keys if not retries.waiting(k))
        failures = set(await self._bounded(sync, todo))
        for key in todo:
            if key in failures:
                retries.failed(key)
            else:
                retries.succeeded(key)
        return len(failures)

    async def _bounded(self, sync: Callable[[Any], Awaitable[None]], keys: list[Any]) -> list[Any]:
        """Run `sync(key)` for every key, a few at a time; return the keys that failed."""
        limit = asyncio.Semaphore(self.concurrency)

        async def one(key: Any) -> None:
            async with limit:
                await sync(key)

        results = await asyncio.gather(*(one(k) for k in keys), return_exceptions=True)
        failed = []
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                logger.warning("sync %s failed: %s", key, result)
                failed.append(key)
        return failed

    # --- settings -------------------------------------------------------------------------

    async def _apply_settings(self) -> None:
        if not self._settings_dirty:
            return
        self._settings_dirty = False
        if self.settings_data is None:
            self.settings_condition = conditions.Wanted(
                "SettingsValid",
                "False",
                "NotFound",
                f"ConfigMap {self.namespace}/{validation.SETTINGS_CONFIGMAP} not found;"
                " nothing is rendered until it exists",
            )
            return
        parsed, problems = validation.settings_from_configmap(self.settings_data)
        if parsed is None:
            message = "; ".join(str(p) for p in problems if p.is_error)
            kept = "keeping the last good rendering" if self.settings else "nothing rendered"
            self.settings_condition = conditions.Wanted(
                "SettingsValid", "False", "InvalidSettings", f"{message} ({kept})"
            )
            logger.error("invalid %s: %s", validation.SETTINGS_CONFIGMAP, message)
            if message != self._settings_reported:
                self._settings_reported = message
                await self._event(
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "name": validation.SETTINGS_CONFIGMAP,
                        "namespace": self.namespace,
                    },
                    "Warning",
                    "InvalidSettings",
                    f"{message} ({kept})",
                )
            return
        self._settings_reported = ""
        self.settings_condition = conditions.Wanted(
            "SettingsValid", "True", "Valid", "settings in use"
        )
        if parsed != self.settings:
            self.settings = parsed
            self._all_nodes = True

    # --- nodes ----------------------------------------------------------------------------

    def _sriov_networks(self) -> list[NetworkView]:
        if self._sriov_views_stale:
            self._sriov_views = [
                r.view for r in self.networks.values() if r.view is not None and r.view.is_sriov
            ]
            self._sriov_views_stale = False
        return self._sriov_views

    def desired(self, name: str) -> dict[str, str] | None:
        node = self.nodes.get(name)
        if node is None or self.settings is None:
            return None
        view = NodeView(name, node.labels, self.inventories.get(name))
        return rendering.render(self.settings, view, self._sriov_networks())

    async def _sync_node(self, name: str) -> None:
        assert self.api is not None
        node = self.nodes.get(name)
        observed = self.configmaps.get(name)
        cm_path = path_for("", "v1", "configmaps", self.namespace, rendering.configmap_name(name))
        if node is None:
            if observed is not None:
                await self.api.delete(cm_path)
                self.configmaps.pop(name, None)
            return
        data = self.desired(name)
        if data is None:
            return  # no settings yet: keep whatever is there
        size = rendering.data_bytes(data)
        if size > rendering.MAX_DATA_BYTES:
            # The API server would refuse it on every retry: keep the last good one, say why.
            await self._oversized(node, size)
            return
        self.oversized.pop(name, None)
        body = rendering.configmap_body(name, self.namespace, data, node.uid)
        labels = body["metadata"]["labels"]
        annotations = body["metadata"]["annotations"]
        if observed is None:
            try:
                await self.api.create(path_for("", "v1", "configmaps", self.namespace), body)
                self.configmaps[name] = ObservedConfigMap.of(body)
                return
            except ApiError as exc:
                if exc.status != 409:
                    raise
                # Created by an earlier run that died before seeing it: adopt and compare.
                observed = ObservedConfigMap.of(await self.api.get(cm_path) or {})
        labels_ok = all(observed.labels.get(k) == v for k, v in labels.items())
        annotations_ok = all(observed.annotations.get(k) == v for k, v in annotations.items())
        owner_ok = not node.uid or node.uid in observed.owner_uids
        if observed.data == data and labels_ok and annotations_ok and owner_ok:
            return
        patch_data: dict[str, str | None] = {k: None for k in observed.data if k not in data}
        patch_data.update(data)
        patch: dict[str, Any] = {
            "data": patch_data,
            "metadata": {"labels": labels, "annotations": annotations},
        }
        if "ownerReferences" in body["metadata"]:
            patch["metadata"]["ownerReferences"] = body["metadata"]["ownerReferences"]
        await self.api.patch(cm_path, patch)
        self.configmaps[name] = ObservedConfigMap(
            data,
            {**observed.labels, **labels},
            {**observed.annotations, **annotations},
            frozenset([node.uid]) if node.uid else observed.owner_uids,
        )

    async def _oversized(self, node: NodeInfo, size: int) -> None:
        message = (
            f"rendered ConfigMap data is {size} bytes, over the API's limit of"
            f" {rendering.MAX_DATA_BYTES}; keeping the last good one"
        )
        logger.error("node %s: %s", node.name, message)
        if self.oversized.get(node.name) == size:
            return
        self.oversized[node.name] = size
        involved = {"apiVersion": "v1", "kind": "Node", "name": node.name}
        if node.uid:
            involved["uid"] = node.uid
        await self._event(involved, "Warning", "RenderingTooLarge", message)

    # --- network status -------------------------------------------------------------------

    def wanted_conditions(self, record: NetworkRecord) -> list[conditions.Wanted]:
        report = record.report
        if report.valid:
            reason = "ChecksPassedWithWarnings" if report.warnings else "ChecksPassed"
            valid = conditions.Wanted("Valid", "True", reason, report.summary())
        else:
            valid = conditions.Wanted("Valid", "False", "InvalidConfig", report.summary())
        return [valid, self._ready(record)]

    def _ready(self, record: NetworkRecord) -> conditions.Wanted:
        if record.view is None:
            return conditions.Wanted("Ready", "False", "Invalid", "not usable: see Valid")
        total = len(self.nodes)
        if total == 0:
            return conditions.Wanted("Ready", "False", "NoNodes", "no nodes in the cluster")
        if not record.view.is_sriov:
            return conditions.Wanted(
                "Ready", "True", "UsableOnAllNodes", "no node-specific requirement"
            )
        missing: list[str] = []
        usable = 0
        for name in sorted(self.nodes):
            why = rendering.usable_on(record.view, self.inventories.get(name))
            if why is None:
                usable += 1
            else:
                missing.append(f"{name} ({why})")
        message = f"usable on {usable} of {total} nodes"
        if missing:
            shown = ", ".join(missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            message += f"; not on: {shown}{more}"
        if usable == 0:
            return conditions.Wanted("Ready", "False", "NoUsableNode", message)
        reason = "UsableOnAllNodes" if usable == total else "UsableOnSomeNodes"
        return conditions.Wanted("Ready", "True", reason, message)

    async def _sync_network(self, key: NetworkKey) -> None:
        assert self.api is not None
        record = self.networks.get(key)
        if record is None:
            return
        merged = conditions.merge(
            record.conditions,
            self.wanted_conditions(record),
            record.generation,
            conditions.now_rfc3339(),
        )
        if merged == record.conditions:
            return
        valid = merged[0]
        if (
            conditions.transitioned(record.conditions, merged, "Valid")
            and self._announced.get(key) != valid["status"]  # not again on a retried write
        ):
            good = valid["status"] == "True"
            await self._event(
                record.involved,
                "Normal" if good else "Warning",
                "Valid" if good else "Invalid",
                valid["message"],
            )
            self._announced[key] = valid["status"]
        if self._has_status(record.kind):
            group, version, plural = NETWORKS if record.kind == "Network" else NADS
            path = path_for(group, version, plural, record.namespace, record.name, "status")
            try:
                await self.api.patch(path, {"status": {"conditions": merged}})
            except ApiError as exc:
                if exc.status != 404:  # deleted meanwhile: nothing to report on
                    raise
        record.conditions = merged

    async def _event(self, involved: dict[str, Any], kind: str, reason: str, message: str) -> None:
        assert self.api is not None
        namespace = involved.get("namespace") or self.namespace
        stamp = conditions.now_rfc3339()
        # A name of up to 253 chars leaves no room for the suffix: the API would refuse.
        name = f"{involved['name'][:236].rstrip('-.')}.{time.time_ns():x}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "type": kind,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.api.create(path_for("", "v1", "events", namespace), body)
        except ApiError as exc:  # an Event is never worth failing a pass for
            logger.warning("could not post event %s: %s", reason, exc)
