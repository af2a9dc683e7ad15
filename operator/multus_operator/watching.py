"""List, then watch from the list's resourceVersion, for ever.

The stream is resumed from the last resourceVersion seen (an event's or a bookmark's)
when the server ends it, so nothing is delivered twice or missed; after 410 Gone
(that version was compacted away) everything is listed again, and what disappeared
meanwhile is delivered as DELETED. API errors never end the loop: it waits (the
server's Retry-After at least, else 1 s doubling to 60 s) and tries again, while
`ApiHealth` reports the failure. A resource the API does not serve (a CRD not
installed) counts as empty and is looked for again every minute.

Delivery is a plain synchronous callback `(event type, object)`; the type is None for
objects from a LIST. Objects carry `apiVersion` and `kind` even where the API server
leaves them out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

from .kubeapi import ApiError, GoneError, KubeApi, NotFoundError, error_for, stamp_kind
from .resources import Resource
from .retries import Backoff

logger = logging.getLogger("multus_operator")

Deliver = Callable[[str | None, dict[str, Any]], None]
ObjectKey = tuple[str, str]  # (namespace, name)


class Watch:
    def __init__(
        self,
        api: KubeApi,
        resource: Resource,
        deliver: Deliver,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        backoff: tuple[float, float] = (1.0, 60.0),
        absent_recheck: float = 60.0,
        timeout_seconds: tuple[int, int] = (240, 480),
    ) -> None:
        self.api = api
        self.resource = resource
        self.deliver = deliver
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.backoff = backoff
        self.absent_recheck = absent_recheck
        self.timeout_seconds = timeout_seconds  # a random length in this range, as client-go
        self.synced = asyncio.Event()  # the first complete listing was delivered
        self.resource_version: str | None = None
        self._known: dict[ObjectKey, dict[str, Any]] = {}  # enough of each to say DELETED

    @property
    def name(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.resource.qualified}{where}"

    async def run(self) -> None:
        backoff = Backoff(*self.backoff)
        while True:
            try:
                if self.resource_version is None:
                    await self._relist()
                started = asyncio.get_running_loop().time()
                await self._stream()
                backoff.succeeded()
                if asyncio.get_running_loop().time() - started < 1.0:
                    await asyncio.sleep(1.0)  # a stream closed at once: no hot loop
            except NotFoundError:
                self.api.health.not_served(self.resource.qualified)
                self._replace([])
                self.resource_version = None
                self.synced.set()
                await asyncio.sleep(self.absent_recheck)
            except GoneError:
                self.resource_version = None  # compacted: list again, at once
            except ApiError as exc:
                wait = backoff.failed(min(exc.retry_after or 0.0, 300.0))
                logger.debug("watch %s: %s; again in %.1f s", self.name, exc, wait)
                await asyncio.sleep(wait)

    async def _relist(self) -> None:
        items, version = await self.api.list(
            self.resource,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
        )
        self.api.health.served(self.resource.qualified)
        self._replace(items)
        self.resource_version = version or "0"
        self.synced.set()

    def _replace(self, items: list[dict[str, Any]]) -> None:
        """Deliver a full listing: what vanished since the last one as DELETED first."""
        listed = {_key(item): item for item in items}
        for key in [k for k in self._known if k not in listed]:
            self.deliver("DELETED", self._known.pop(key))
        for key, item in listed.items():
            self._known[key] = _skeleton(item)
            self.deliver(None, item)

    async def _stream(self) -> None:
        assert self.resource_version is not None
        events = self.api.watch(
            self.resource,
            resource_version=self.resource_version,
            namespace=self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            timeout_seconds=random.randint(*self.timeout_seconds),
        )
        async with contextlib.aclosing(events):  # the response is released when we stop
            async for event in events:
                self._take(event)

    def _take(self, event: dict[str, Any]) -> None:
        """One watch event: delivered, or the resourceVersion a bookmark moves to."""
        kind, obj = event.get("type"), event.get("object")
        if not isinstance(obj, dict):
            return
        if kind == "ERROR":
            raise error_for(int(obj.get("code") or 500), "watch", self.resource.plural, obj)
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            stamp_kind(self.resource, obj)
            key = _key(obj)
            if kind == "DELETED":
                self._known.pop(key, None)
            else:
                self._known[key] = _skeleton(obj)
            self.deliver(kind, obj)
        if version:  # bookmarks carry only this
            self.resource_version = str(version)


def _key(obj: dict[str, Any]) -> ObjectKey:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _skeleton(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    kept = {k: meta[k] for k in ("name", "namespace", "uid", "labels", "annotations") if k in meta}
    return {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "metadata": kept}
