"""The API emulator for the node agent: kmock (the tests/k8s subclass, with its faults
and request log) plus what a list+watch client needs and kmock 0.8 lacks.

Filled in here, test code only:
- a `resourceVersion` on every change (one counter for all resources, as etcd's), the
  LIST's `metadata.resourceVersion`, and a history of change events;
- WATCH from a resourceVersion (replaying the history after it), `timeoutSeconds`,
  BOOKMARK events every `bookmark_interval` when asked for, and a 410 Gone ERROR event
  for a resourceVersion older than the history kept (`compact()`), as kube-apiserver
  does; `drop_watches()` ends every open watch, as an apiserver restart would;
- `fieldSelector` (`a.b=c`, `a.b!=c`) and `labelSelector` on LIST and WATCH;
- a log of every request with its query, and `put`/`delete` from tests that make
  events too (so a watching agent sees them);
- only the requests in flight are kept in kmock's own request history, which it scans
  per request (quadratic over a long run otherwise).
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import enums, rendering

from tests.k8s.emulator import Api, FaultyEmulator
from tests.operator.emulator import VERBS, register_resources, selector_matches

Resource = tuple[str, str]  # (group, plural)
CONFIGMAP = "v1/configmaps"
NODE = "v1/nodes"
NODESTATE = "multus.cni.cncf.io/v1/nodestates"


def resource_id(resource: Any) -> Resource:
    ref = kmock.resource(resource) if isinstance(resource, str) else resource
    return str(ref.group or ""), str(ref.plural or "")


def field_value(obj: dict[str, Any], path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def fields_match(selector: str, obj: dict[str, Any]) -> bool:
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if field_value(obj, key.strip()) == value.strip():
                return False
        else:
            key, value = term.replace("==", "=").split("=", 1)
            if field_value(obj, key.strip()) != value.strip():
                return False
    return True


def selected(params: dict[str, str], obj: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return fields_match(params.get("fieldSelector", ""), obj) and selector_matches(
        params.get("labelSelector", ""), labels
    )


@attrs.define(kw_only=True)
class WatchEmulator(FaultyEmulator):
    bookmark_interval: float = 0.5
    history: list[tuple[int, Resource, str, dict[str, Any]]] = attrs.field(factory=list)
    versions: list[int] = attrs.field(factory=list)  # of `history`, for bisect
    queries: list[tuple[str, str, dict[str, str]]] = attrs.field(factory=list)
    version: int = 1
    compacted_below: int = 0
    epoch: int = 0
    _changed: asyncio.Condition = attrs.field(factory=asyncio.Condition, init=False)
    _inflight: set[int] = attrs.field(factory=set, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        register_resources(self.resources)
        for key, kind, namespaced in (
            ("resource.k8s.io/v1/resourceclaims", "ResourceClaim", True),
            ("resource.k8s.io/v1/resourceslices", "ResourceSlice", False),
        ):
            self.resources[key] = kmock.ResourceInfo(kind=kind, namespaced=namespaced, verbs=VERBS)

    # ---- recording changes ----

    async def record(self, resource: Any, event: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Stamp the next resourceVersion on `obj` (stored in place) and tell watchers."""
        self.version += 1
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(self.version)
        self.history.append((self.version, resource_id(resource), event, copy.deepcopy(obj)))
        self.versions.append(self.version)
        async with self._changed:
            self._changed.notify_all()
        return obj

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        self.queries.append(
            (str(request.method.value).upper(), request.url.path, dict(request.params))
        )
        # kmock matches each request against its whole request history: keep only the
        # requests in flight (the watches), so a long run stays linear (as the operator
        # tests' emulator does).
        self._inflight.add(id(request))
        self._requests[:] = [r for r in self._requests if id(r) in self._inflight]
        try:
            response = await super()._handle(request)
        finally:
            self._inflight.discard(id(request))
        if request.resource is None or not 200 <= response.status < 300:
            return response
        if request.action == enums.action.CREATE and isinstance(request.data, dict):
            meta = request.data.get("metadata") or {}
            await self._record_stored(
                request.resource,
                request.namespace or meta.get("namespace"),
                meta.get("name"),
                "ADDED",
            )
        elif request.action == enums.action.UPDATE and request.name:
            await self._record_stored(request.resource, request.namespace, request.name, "MODIFIED")
        elif request.action == enums.action.DELETE and request.name:
            key = (request.resource, request.namespace, request.name)
            if key in self.objects:
                last = copy.deepcopy(dict(self.objects[key].last.raw))
                await self.record(request.resource, "DELETED", last)
        return response

    async def _record_stored(self, resource: Any, namespace: Any, name: Any, event: str) -> None:
        key = (resource, namespace, name)
        if key not in self.objects or self.objects[key].deleted:
            return
        stored = self.objects[key]
        obj = copy.deepcopy(dict(stored.raw))
        await self.record(resource, event, obj)
        stored["metadata"] = obj["metadata"]

    # ---- list and watch ----

    def _current(self, request: rendering.Request) -> list[dict[str, Any]]:
        wanted = resource_id(request.resource)
        out = []
        for (res, namespace, _name), obj in list(self.objects.items()):
            if resource_id(res) != wanted or obj.deleted:
                continue
            if request.namespace and namespace != request.namespace:
                continue
            raw = dict(obj.raw)
            if selected(dict(request.params), raw):
                out.append(copy.deepcopy(raw))
        return out

    async def _serve_list(self, request: rendering.Request) -> Any:
        answer = await super()._serve_list(request)  # 404 for a resource nobody serves
        answer["items"] = self._current(request)
        answer["metadata"] = {"resourceVersion": str(self.version)}
        return answer

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        yield b""
        params = dict(request.params)
        wanted = resource_id(request.resource)
        timeout = float(params.get("timeoutSeconds") or 3600)
        deadline = time.monotonic() + timeout
        bookmarks = params.get("allowWatchBookmarks") == "true"
        epoch = self.epoch
        start = params.get("resourceVersion", "")
        if start in ("", "0"):
            for obj in self._current(request):
                yield {"type": "ADDED", "object": obj}
            since = self.version
        else:
            since = int(start)
            if since < self.compacted_below:
                yield {
                    "type": "ERROR",
                    "object": {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "status": "Failure",
                        "reason": "Expired",
                        "code": 410,
                        "message": f"too old resource version: {since} ({self.version})",
                    },
                }
                return
        while time.monotonic() < deadline and epoch == self.epoch:
            start = bisect.bisect_right(self.versions, since)
            for version, res, kind, obj in self.history[start:]:
                since = version
                if res != wanted:
                    continue
                namespace = (obj.get("metadata") or {}).get("namespace")
                if request.namespace and namespace != request.namespace:
                    continue
                if not selected(params, obj):
                    continue
                yield {"type": kind, "object": copy.deepcopy(obj)}
            wait = min(self.bookmark_interval, max(0.0, deadline - time.monotonic()))
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), wait)
                    continue
                except TimeoutError:
                    pass
            if bookmarks and epoch == self.epoch:
                since = max(since, self.version)
                yield {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": "Pod",
                        "apiVersion": "v1",
                        "metadata": {"resourceVersion": str(self.version)},
                    },
                }


class WatchApi(Api):
    """`tests.k8s.emulator.Api` serving a WatchEmulator; test writes become events."""

    async def _serve(self) -> None:  # type: ignore[override]
        self._stop = asyncio.Event()
        emulator = WatchEmulator()
        emulator.resources["kubernetes.com/v1/networks"] = kmock.ResourceInfo(
            kind="Network", namespaced=True, verbs=VERBS, subresources={"status"}
        )
        emulator.resources["k8s.cni.cncf.io/v1/network-attachment-definitions"] = (
            kmock.ResourceInfo(kind="NetworkAttachmentDefinition", namespaced=True, verbs=VERBS)
        )
        async with emulator, kmock.Server(emulator) as server:
            self.emulator = emulator
            self.url = f"http://127.0.0.1:{server.port}"
            self._started.set()
            await self._stop.wait()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def put(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        if resource not in (NODE, NODESTATE, "resource.k8s.io/v1/resourceslices"):
            meta.setdefault("namespace", "default")
        meta.setdefault("uid", str(uuid.uuid4()))

        async def store() -> None:
            key = (resource, meta.get("namespace"), meta["name"])
            exists = key in self.emulator.objects and not self.emulator.objects[key].deleted
            kind = "MODIFIED" if exists else "ADDED"
            await self.emulator.record(resource, kind, obj)
            self.emulator.objects[key] = obj

        self._run(store())
        return obj

    def delete(self, resource: str, namespace: str, name: str) -> None:
        async def remove() -> None:
            key = (resource, namespace, name)
            last = copy.deepcopy(dict(self.emulator.objects[key].raw))
            del self.emulator.objects[key]
            await self.emulator.record(resource, "DELETED", last)

        self._run(remove())

    def compact(self) -> None:
        """Forget the history: a watch resuming from an older resourceVersion gets 410."""

        def cut() -> None:
            # resuming from the current version is fine; from anything older, 410
            self.emulator.compacted_below = self.emulator.version
            self.emulator.history.clear()
            self.emulator.versions.clear()

        self.call(cut)

    def drop_watches(self) -> None:
        """End every open watch (an apiserver restart): clients resume or relist."""

        async def drop() -> None:
            self.emulator.epoch += 1
            async with self.emulator._changed:
                self.emulator._changed.notify_all()

        self._run(drop())

    def queries(self) -> list[tuple[str, str, dict[str, str]]]:
        return self.call(lambda: list(self.emulator.queries))

    def reads(self, since: int = 0) -> list[tuple[str, str]]:
        """GETs of single objects (no list, no watch) from query `since` on."""
        out = []
        for method, path, params in self.queries()[since:]:
            if method != "GET" or "watch" in params:
                continue
            if path.rstrip("/").split("/")[-1] in _COLLECTIONS:
                continue
            out.append((method, path))
        return out


_COLLECTIONS = frozenset(
    ("pods", "configmaps", "networks", "network-attachment-definitions", "nodestates", "events")
)
