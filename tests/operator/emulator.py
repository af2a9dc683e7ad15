"""kmock's Kubernetes emulator with the gaps of kmock 0.8 filled, for operator tests.

Added here (test code, not product code): `resourceVersion`, `uid`, `generation` and
`creationTimestamp` stamping; the `/status` subresource (a status patch touches only
status, a main-resource patch never touches status); PUT (replace); label selectors
on LIST and WATCH; our CRDs declared for discovery next to the bundled built-ins;
writes refused without being applied (`refuse`).

kmock routes each request by scanning its whole request history, which makes a long
run quadratic; only the requests still in flight are kept (writes are logged
separately), so the benchmark's thousands of requests stay linear.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import dicts, enums, rendering

VERBS = {"create", "delete", "get", "list", "patch", "update", "watch"}
OUR_RESOURCES = {
    "kubernetes.com/v1/networks": ("Network", True, {"status"}),
    "k8s.cni.cncf.io/v1/network-attachment-definitions": (
        "NetworkAttachmentDefinition",
        True,
        set(),
    ),
    "multus.cni.cncf.io/v1/nodestates": ("NodeState", False, {"status"}),
}


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-joined."""
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    _counter: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _write_log: list[str] = attrs.field(factory=list, init=False)
    _inflight: set[int] = attrs.field(factory=set, init=False)
    _refusals: list[tuple[Callable[[rendering.Request], bool], int]] = attrs.field(
        factory=list, init=False
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self.resources.load_bundled()
        for key, (kind, namespaced, subresources) in OUR_RESOURCES.items():
            self.resources[key] = kmock.ResourceInfo(
                kind=kind, namespaced=namespaced, verbs=VERBS, subresources=subresources
            )

    def _has_status(self, request: rendering.Request) -> bool:
        for resource in self.resources:
            if resource == request.resource:
                return "status" in self.resources[resource].subresources
        return False

    def refuse(
        self, matches: Callable[[rendering.Request], bool], status: int = 500
    ) -> Callable[[], None]:
        """Answer `status` to matching requests without applying them, until the returned
        function is called. kmock's own reactions (`emu[f] << 500`) apply a write before
        answering, like a timeout after commit; this is an API that really says no."""
        refusal = (matches, status)
        self._refusals.append(refusal)
        return lambda: self._refusals.remove(refusal)

    async def _handle(self, request: rendering.Request) -> Any:
        for matches, status in list(self._refusals):
            if matches(request):
                body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status}
                return aiohttp.web.json_response(body, status=status)
        self._inflight.add(id(request))
        self._requests[:] = [r for r in self._requests if id(r) in self._inflight]
        if request.method.value in ("POST", "PATCH", "PUT", "DELETE"):
            self._write_log.append(f"{request.method.value} {request.url.path}")
        if request.resource is not None and isinstance(request.data, dict):
            if request.action == enums.action.CREATE:
                self._stamp_create(request)
            elif request.action == enums.action.UPDATE and request.name is not None:
                self._stamp_update(request)
        try:
            if request.method.value == "PUT" and request.resource is not None and request.name:
                return await self._replace(request)
            return await super()._handle(request)
        finally:
            self._inflight.discard(id(request))

    async def _replace(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """PUT: the body replaces the object (or only its status, on `/status`)."""
        key = (request.resource, request.namespace, request.name)
        body = request.data if isinstance(request.data, dict) else {}
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                return aiohttp.web.json_response({"kind": "Status", "code": 404}, status=404)
            old = copy.deepcopy(self.objects[key].raw)
            old_meta = old.get("metadata", {})
            if request.subresource == "status":
                new = {**old, "status": body.get("status")}
            else:
                new = dict(body)
                if self._has_status(request):
                    new.pop("status", None)
                    if "status" in old:
                        new["status"] = old["status"]
            meta = dict(new.get("metadata") or {})
            for kept in ("uid", "creationTimestamp", "namespace", "name"):
                if kept in old_meta:
                    meta[kept] = old_meta[kept]
            meta["resourceVersion"] = str(next(self._counter))
            generation = int(old_meta.get("generation") or 1)
            meta["generation"] = generation + (1 if _spec(old) != _spec(new) else 0)
            new["metadata"] = meta
            self.objects[key].create(new)
            await self._buses[request.resource].put({"type": "MODIFIED", "object": new})
        return aiohttp.web.json_response(new)

    def _stamp_create(self, request: rendering.Request) -> None:
        data = request.data
        meta = data.setdefault("metadata", {})
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = str(next(self._counter))
        meta["generation"] = 1
        meta["creationTimestamp"] = _now()
        if request.namespace and not meta.get("namespace"):
            meta["namespace"] = request.namespace
        if self._has_status(request):
            data.pop("status", None)

    def _stamp_update(self, request: rendering.Request) -> None:
        data = request.data
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return  # the parent answers 404
        if request.subresource == "status":
            status = data.get("status")
            data.clear()
            data["status"] = status
        elif self._has_status(request):
            data.pop("status", None)
        old = copy.deepcopy(self.objects[key].raw)
        new = dicts.patch_dict(old, data)
        meta = data.setdefault("metadata", {})
        meta.pop("uid", None)
        meta["resourceVersion"] = str(next(self._counter))
        generation = int(old.get("metadata", {}).get("generation") or 1)
        if _spec(old) != _spec(new):
            generation += 1
        meta["generation"] = generation

    async def _serve_list(self, request: rendering.Request) -> Any:
        answer = await super()._serve_list(request)
        selector = request.params.get("labelSelector")
        if selector:
            answer["items"] = [i for i in answer["items"] if _selected(selector, i)]
        return answer

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        selector = request.params.get("labelSelector")
        async for event in super()._serve_watch(request):
            if not selector or not isinstance(event, dict) or _selected(selector, event["object"]):
                yield event

    def writes(self) -> list[str]:
        """Every write request served so far, as `METHOD path`."""
        return list(self._write_log)


def _selected(selector: str, obj: dict[str, Any]) -> bool:
    return selector_matches(selector, (obj.get("metadata") or {}).get("labels") or {})


def _spec(obj: Any) -> Any:
    return {k: v for k, v in dict(obj).items() if k not in ("metadata", "status")}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
