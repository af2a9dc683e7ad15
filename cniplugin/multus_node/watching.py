"""List+watch caches, written for a real kube-apiserver.

A cache LISTs (in pages of `PAGE`), then WATCHes from the list's resourceVersion with
bookmarks on, so a quiet resource still advances its resourceVersion and a reconnect
resumes where it stopped instead of relisting. A watch ends normally after
`timeoutSeconds` and is resumed; a dropped connection is resumed after a backoff; a
410 Gone (the resourceVersion was compacted away, as an HTTP status or an ERROR event)
means a full relist. Every relist is counted with its reason.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from . import metrics
from .kubeapi import ApiError, KubeApi

logger = logging.getLogger("multus_node.watching")

PAGE = 500
WATCH_SECONDS = 300
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
Listener = Callable[[str, dict[str, Any]], None]


class Gone(Exception):
    """410: the resourceVersion to resume from is too old."""


def key_of(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


class WatchCache:
    """The objects of one resource (optionally narrowed by selectors), kept current."""

    def __init__(
        self,
        api: KubeApi,
        resource: str,
        path: str,
        *,
        field_selector: str = "",
        label_selector: str = "",
        listener: Listener | None = None,
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        self.api = api
        self.resource = resource
        self.path = path
        self.field_selector = field_selector
        self.label_selector = label_selector
        self.listener = listener
        self.watch_seconds = watch_seconds
        self.resource_version = ""
        self.synced = threading.Event()
        self.relists = 0
        self._objects: dict[Key, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{resource}", daemon=True)

    # ---- reading ----

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A private copy of the object, None when the cache does not hold it."""
        with self._lock:
            obj = self._objects.get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def values(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(o) for o in self._objects.values()]

    def __len__(self) -> int:
        return len(self._objects)

    # ---- running ----

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _selectors(self) -> list[tuple[str, str]]:
        query = []
        if self.field_selector:
            query.append(("fieldSelector", self.field_selector))
        if self.label_selector:
            query.append(("labelSelector", self.label_selector))
        return query

    def _run(self) -> None:
        backoff = 0.0
        reason = "start"
        while not self._stop.is_set():
            try:
                if not self.resource_version:
                    self._list(reason)
                self._watch()
                backoff = 0.0
            except ApiError as exc:
                if exc.status != 404:
                    backoff = min(backoff * 2, 30.0) if backoff else 0.5
                    logger.warning("%s: %s; retrying in %.1fs", self.resource, exc, backoff)
                    reason = "error"
                    self._stop.wait(backoff * (0.75 + random.random() / 2))
                    continue
                # The API does not serve this resource (its CRD is not installed): an
                # empty cache that is current, so lookups fall through to a GET.
                logger.info("%s: not served by the API (404); checking again in 60s", self.resource)
                with self._lock:
                    self._objects = {}
                self.resource_version = ""
                self.synced.set()
                reason = "start"
                self._stop.wait(60.0)
            except Gone:
                logger.info(
                    "%s: resourceVersion %s expired (410); relisting",
                    self.resource,
                    self.resource_version,
                )
                self.resource_version = ""
                reason = "gone"
            except Exception as exc:  # API down, connection dropped, garbage: retry
                backoff = min(backoff * 2, 30.0) if backoff else 0.5
                logger.warning("%s: %s; retrying in %.1fs", self.resource, exc, backoff)
                reason = "error"
                self._stop.wait(backoff * (0.75 + random.random() / 2))

    def _list(self, reason: str) -> None:
        objects: dict[Key, dict[str, Any]] = {}
        token = ""
        while True:
            query = [*self._selectors(), ("limit", str(PAGE))]
            if token:
                query.append(("continue", token))
            status, doc = self.api.request("GET", self.path, query)
            if status == 410:
                raise Gone()  # the continue token expired: start over
            if not 200 <= status < 300 or not isinstance(doc, dict):
                raise ApiError("GET", self.path, status, "list failed")
            for item in doc.get("items") or []:
                if isinstance(item, dict):
                    objects[key_of(item)] = item
            meta = doc.get("metadata") or {}
            token = str(meta.get("continue") or "")
            if not token:
                break
        with self._lock:
            before = self._objects
            self._objects = objects
        self.resource_version = str(meta.get("resourceVersion") or "")
        self.relists += 1
        metrics.CACHE_RELISTS.labels(self.resource, reason).inc()
        metrics.CACHE_OBJECTS.labels(self.resource).set(len(objects))
        self.synced.set()
        logger.info(
            "%s: listed %d objects at resourceVersion %s",
            self.resource,
            len(objects),
            self.resource_version,
        )
        if self.listener is not None:
            for key, obj in before.items():
                if key not in objects:
                    self.listener("DELETED", obj)
            for key, obj in objects.items():
                if before.get(key) != obj:
                    self.listener("MODIFIED" if key in before else "ADDED", obj)

    def _watch(self) -> None:
        query = [
            *self._selectors(),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("timeoutSeconds", str(self.watch_seconds)),
        ]
        if self.resource_version:
            query.append(("resourceVersion", self.resource_version))
        try:
            lines = self.api.stream(self.path, query, read_timeout=self.watch_seconds + 30)
            for line in lines:
                if self._stop.is_set():
                    return
                self._apply(json.loads(line))
        except ApiError as exc:
            if exc.status == 410:
                raise Gone() from None
            raise

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object")
        if not isinstance(obj, dict):
            raise ValueError(f"watch event without an object: {str(event)[:200]}")
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise ApiError("WATCH", self.path, int(obj.get("code") or 0), str(obj.get("message")))
        version = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        if kind == "BOOKMARK":
            if version:
                self.resource_version = version
            return
        key = key_of(obj)
        with self._lock:
            if kind == "DELETED":
                self._objects.pop(key, None)
            elif kind in ("ADDED", "MODIFIED"):
                self._objects[key] = obj
            else:
                return
        if version:
            self.resource_version = version
        metrics.CACHE_OBJECTS.labels(self.resource).set(len(self._objects))
        if self.listener is not None:
            self.listener(str(kind), obj)
