"""Plain HTTP to the API emulator, as kubectl would talk to it: the operator tests'
client and the operator benchmark's."""

from __future__ import annotations

from typing import Any

import aiohttp

NAMESPACE = "kube-system"


def condition(obj: Any, kind: str) -> dict[str, Any]:
    """Condition `kind` of an object's status.conditions ({} when it has none)."""
    conds = ((obj or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conds if c["type"] == kind), {})


class Client:
    """Plain HTTP to the emulator: what kubectl would do."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url.rstrip("/")
        self.session = session

    async def send(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The HTTP status and the answer, whatever the status (a PATCH is a merge patch)."""
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        async with self.session.request(
            method, self.url + path, json=body, headers=headers
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.send(method, path, body)
        if status >= 400:
            raise AssertionError(f"{method} {path}: {status} {data}")
        return data

    async def get(self, path: str) -> Any:
        async with self.session.get(self.url + path) as resp:
            if resp.status == 404:
                return None
            return await resp.json(content_type=None)

    async def create(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request("POST", path, body)

    async def patch(self, path: str, body: dict[str, Any]) -> Any:
        return await self.request("PATCH", path, body)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)

    async def add_node(self, name: str, labels: dict[str, str] | None = None) -> Any:
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
        if labels:
            body["metadata"]["labels"] = labels
        return await self.create("/api/v1/nodes", body)

    async def set_settings(self, text: str) -> None:
        path = f"/api/v1/namespaces/{NAMESPACE}/configmaps/multus-settings"
        if await self.get(path) is None:
            body = {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "multus-settings", "namespace": NAMESPACE},
                "data": {"settings.yaml": text},
            }
            await self.create(f"/api/v1/namespaces/{NAMESPACE}/configmaps", body)
        else:
            await self.patch(path, {"data": {"settings.yaml": text}})

    async def configmap(self, node: str) -> Any:
        return await self.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/multus-node-{node}")

    async def network(self, name: str, namespace: str = "default") -> Any:
        return await self.get(f"/apis/kubernetes.com/v1/namespaces/{namespace}/networks/{name}")
