"""This node's NodeState (`multus.cni.cncf.io/v1`, cluster-scoped, named after the node):
its status is ours to write.

The status is made of sections, each owned by one reporter of this agent, set through
`update(section, value)`: `plugins` (the installed CNI plugins, `plugins.PluginScanner`)
and `pfs` (the SR-IOV inventory, `discovering.SriovReporter`). Writes are
debounced (a burst of changes is one write) and happen only when a section changed;
a failed write is retried with backoff. The object is created when missing, owned by
its Node so it goes when the node goes.
"""

from __future__ import annotations

import copy
import datetime
import logging
import threading
from typing import Any

from multus_api.objects import NODESTATE_GROUP, VERSION

from . import metrics
from .kubeapi import ApiError, KubeApi

logger = logging.getLogger("multus_node.nodestate")

PATH = f"/apis/{NODESTATE_GROUP}/{VERSION}/nodestates"


class NodeStateWriter:
    def __init__(self, api: KubeApi, node: str, debounce: float = 1.0) -> None:
        self.api = api
        self.node = node
        self.debounce = debounce
        self.written: dict[str, Any] | None = None  # the sections last written
        self.writes = 0
        self._sections: dict[str, Any] = {}
        self._cond = threading.Condition()
        self._dirty = False
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="nodestate", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()

    def update(self, section: str, value: Any) -> None:
        """Set one section of the status; written (debounced) if it changed."""
        with self._cond:
            if self._sections.get(section) == value:
                return
            self._sections[section] = copy.deepcopy(value)
            self._dirty = True
            self._cond.notify()

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._dirty or self._stop)
                if self._stop:
                    return
            # a burst of updates lands before one write
            with self._cond:
                self._cond.wait_for(lambda: self._stop, self.debounce + backoff)
                if self._stop:
                    return
                sections = copy.deepcopy(self._sections)
                self._dirty = False
            if sections == self.written:
                continue
            try:
                self._write(sections)
                self.written = sections
                self.writes += 1
                backoff = 0.0
                metrics.NODESTATE_WRITES.labels("ok").inc()
            except ApiError as exc:
                metrics.NODESTATE_WRITES.labels("failed").inc()
                backoff = min(backoff * 2, 60.0) if backoff else 1.0
                logger.warning("NodeState %s: %s; retrying in %.0fs", self.node, exc, backoff)
                with self._cond:
                    self._dirty = True

    def _write(self, sections: dict[str, Any]) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        status = {**sections, "observedTime": now}
        path = f"{PATH}/{self.node}/status"

        def patch() -> tuple[int, Any]:
            return self.api.request(
                "PATCH", path, body={"status": status}, content_type="application/merge-patch+json"
            )

        code, doc = patch()
        if code == 404:
            self._create()
            code, doc = patch()
        if not 200 <= code < 300:
            message = doc.get("message") if isinstance(doc, dict) else ""
            raise ApiError("PATCH", path, code, str(message or "status write refused"))
        logger.info("NodeState %s: status written (%s)", self.node, ", ".join(sorted(sections)))

    def _create(self) -> None:
        body: dict[str, Any] = {
            "apiVersion": f"{NODESTATE_GROUP}/{VERSION}",
            "kind": "NodeState",
            "metadata": {"name": self.node},
        }
        node = self.api.get(f"/api/v1/nodes/{self.node}")
        uid = (node or {}).get("metadata", {}).get("uid")
        if uid:
            body["metadata"]["ownerReferences"] = [
                {"apiVersion": "v1", "kind": "Node", "name": self.node, "uid": uid}
            ]
        code, doc = self.api.request("POST", PATH, body=body)
        if code not in (200, 201, 409):  # 409: created meanwhile (another agent run)
            message = doc.get("message") if isinstance(doc, dict) else ""
            raise ApiError("POST", PATH, code, str(message or "create refused"))
        logger.info("NodeState %s created", self.node)
