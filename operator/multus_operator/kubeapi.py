"""The operator's own Kubernetes API client: the few verbs it needs, over aiohttp.

kopf watches and reacts; this writes (ConfigMaps, status, Events) and bootstraps
the in-memory state with LIST calls. Credentials come from the same
`kopf.ConnectionInfo` that kopf's login handler returns. Every write is counted,
for metrics and for the "no write when nothing changed" tests.
"""

from __future__ import annotations

import collections
import json
from typing import Any
from urllib.parse import quote

import aiohttp
import kopf

MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer; `status` is the HTTP code (409: exists, 404: not found)."""

    def __init__(self, status: int, method: str, path: str, text: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {text[:300]}")
        self.status = status


def path_for(
    group: str,
    version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The REST path of a collection or an object."""
    base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
    if namespace:
        base += f"/namespaces/{quote(namespace, safe='')}"
    base += f"/{plural}"
    if name:
        base += f"/{quote(name, safe='')}"
    if subresource:
        base += f"/{subresource}"
    return base


class KubeApi:
    def __init__(self, info: kopf.ConnectionInfo, *, timeout: float = 30.0) -> None:
        self.server = info.server.rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=32, ssl=info.as_ssl_context()),
            headers=info.as_http_headers(),  # bearer token or basic auth, as kopf does
            timeout=aiohttp.ClientTimeout(total=timeout),
        )
        self.writes: collections.Counter[str] = collections.Counter()

    async def close(self) -> None:
        await self._session.close()

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self._session.request(
            method, self.server + path, data=data, headers=headers, params=params
        ) as response:
            text = await response.text()
            if response.status >= 400:
                raise ApiError(response.status, method, path, text)
            return json.loads(text) if text else None

    def _count(self, verb: str, path: str) -> None:
        parts = path.rstrip("/").split("/")
        if parts[-1] == "status":
            plural = parts[-3] + "/status"
        else:
            plural = parts[-1] if verb == "create" else parts[-2]
        self.writes[f"{verb} {plural}"] += 1

    async def get(self, path: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = await self._call("GET", path)
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    async def list(
        self, path: str, label_selector: str | None = None, field_selector: str | None = None
    ) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else {}
        if field_selector:
            params["fieldSelector"] = field_selector
        try:
            answer = await self._call("GET", path, params=params or None)
        except ApiError as exc:
            if exc.status == 404:  # the resource is not installed (yet)
                return []
            raise
        items: list[dict[str, Any]] = (answer or {}).get("items") or []
        return items

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self._count("create", path)
        created: dict[str, Any] = await self._call("POST", path, body)
        return created

    async def patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self._count("patch", path)
        patched: dict[str, Any] = await self._call("PATCH", path, patch, content_type=MERGE_PATCH)
        return patched

    async def delete(self, path: str) -> bool:
        """True if deleted now, False if it was already gone."""
        self._count("delete", path)
        try:
            await self._call("DELETE", path)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def has_status_subresource(self, group: str, version: str, plural: str) -> bool:
        """Whether the served resource has `/status` (NPWG's NAD CRD does not)."""
        found = await self.get(path_for(group, version, "").rstrip("/"))
        names = {r.get("name") for r in (found or {}).get("resources", [])}
        return f"{plural}/status" in names
