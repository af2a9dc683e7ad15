"""Per-node ConfigMaps: the cluster settings in use, and each node's rendering written.

A node's ConfigMap is compared with its rendering before any write, so a resync that
changes nothing writes nothing. Invalid settings keep every node's last good
rendering; a rendering over the API's 1 MiB limit keeps the last good one too.
"""

from __future__ import annotations

import logging
from typing import Any

from multus_api.settings import MultusSettings

from . import conditions, rendering, validation
from .events import EventPoster
from .kubeapi import ConflictError, KubeApi
from .rendering import NodeView
from .resources import CONFIGMAPS
from .state import ClusterState, NodeInfo, ObservedConfigMap

logger = logging.getLogger("multus_operator")


class NodeConfigs:
    def __init__(self, state: ClusterState, api: KubeApi, events: EventPoster) -> None:
        self.state = state
        self.api = api
        self.events = events
        self.namespace = state.namespace
        self.settings_condition = conditions.Wanted(
            "SettingsValid", "Unknown", "NotRead", "settings not read yet"
        )
        self.oversized: dict[str, int] = {}  # node -> bytes of a rendering too large to write
        self.written = {"ConfigMaps created": 0, "ConfigMaps patched": 0, "ConfigMaps deleted": 0}
        self._settings_reported = ""

    # --- settings ---------------------------------------------------------------------

    @property
    def settings(self) -> MultusSettings | None:
        """The last good settings (the state's: the SR-IOV verdicts read them too)."""
        return self.state.settings

    async def apply_settings(self) -> bool:
        """Take the settings ConfigMap's current content; True if every node must be
        rendered again."""
        data = self.state.settings_data
        if data is None:
            self.settings_condition = conditions.Wanted(
                "SettingsValid",
                "False",
                "NotFound",
                f"ConfigMap {self.namespace}/{validation.SETTINGS_CONFIGMAP} not found;"
                " nothing is rendered until it exists",
            )
            return False
        parsed, problems = validation.settings_from_configmap(data)
        if parsed is None:
            message = "; ".join(str(p) for p in problems if p.is_error)
            kept = "keeping the last good rendering" if self.settings else "nothing rendered"
            self.settings_condition = conditions.Wanted(
                "SettingsValid", "False", "InvalidSettings", f"{message} ({kept})"
            )
            if message != self._settings_reported:
                self._settings_reported = message
                logger.error("invalid %s: %s", validation.SETTINGS_CONFIGMAP, message)
                await self.events.post(
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
            return False
        if self._settings_reported or self.settings_condition.status != "True":
            logger.info("settings in %s are valid", validation.SETTINGS_CONFIGMAP)
        self._settings_reported = ""
        self.settings_condition = conditions.Wanted(
            "SettingsValid", "True", "Valid", "settings in use"
        )
        if parsed == self.settings:
            return False
        self.state.use_settings(parsed)
        return True

    # --- one node ---------------------------------------------------------------------

    def desired(self, name: str) -> dict[str, str] | None:
        node = self.state.nodes.get(name)
        if node is None or self.settings is None:
            return None
        view = NodeView(name, node.labels, self.state.inventories.get(name))
        return rendering.render(self.settings, view, self.state.usable_sriov(name))

    async def sync(self, name: str) -> None:
        """Make node `name`'s ConfigMap what it should be (or delete it: node gone)."""
        state = self.state
        node = state.nodes.get(name)
        observed = state.configmaps.get(name)
        cm_name = rendering.configmap_name(name)
        if node is None:
            if observed is not None:
                await self.api.delete(CONFIGMAPS, cm_name, namespace=self.namespace)
                self.written["ConfigMaps deleted"] += 1
                state.configmaps.pop(name, None)
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
                await self.api.create(CONFIGMAPS, body, namespace=self.namespace)
                self.written["ConfigMaps created"] += 1
                state.configmaps[name] = ObservedConfigMap.of(body)
                return
            except ConflictError:
                # Made by an earlier run that died before seeing it, or hidden from our
                # label watch by a hand edit: adopt it and compare.
                found = await self.api.get(CONFIGMAPS, cm_name, namespace=self.namespace)
                observed = ObservedConfigMap.of(found or {})
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
        await self.api.patch(CONFIGMAPS, cm_name, patch, namespace=self.namespace)
        self.written["ConfigMaps patched"] += 1
        state.configmaps[name] = ObservedConfigMap(
            data,
            {**observed.labels, **labels},
            {**observed.annotations, **annotations},
            frozenset([node.uid]) if node.uid else observed.owner_uids,
        )

    async def _oversized(self, node: NodeInfo, size: int) -> None:
        if self.oversized.get(node.name) == size:
            return
        message = (
            f"rendered ConfigMap data is {size} bytes, over the API's limit of"
            f" {rendering.MAX_DATA_BYTES}; keeping the last good one"
        )
        logger.error("node %s: %s", node.name, message)
        self.oversized[node.name] = size
        involved = {"apiVersion": "v1", "kind": "Node", "name": node.name}
        if node.uid:
            involved["uid"] = node.uid
        await self.events.post(involved, "Warning", "RenderingTooLarge", message)
