"""Operator tests: the real operator (kopf, embedded) against the API emulator over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import kmock
import kopf
import pytest

from multus_operator.handlers import Operator, OperatorConfig
from tests.operator.emulator import Emulator

NAMESPACE = "kube-system"
SETTINGS_YAML = "cniVersion: 1.0.0\nmode: thick\nclusterNetwork: flannel-conf\n"


class Client:
    """Plain HTTP to the emulator: what kubectl would do."""

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url.rstrip("/")
        self.session = session

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
        async with self.session.request(
            method, self.url + path, json=body, headers=headers
        ) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                raise AssertionError(f"{method} {path}: {resp.status} {data}")
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


@pytest.fixture
async def emulator() -> AsyncIterator[tuple[Emulator, Client]]:
    async with (
        Emulator() as emu,
        kmock.Server(emu) as server,
        aiohttp.ClientSession() as session,
    ):
        yield emu, Client(str(server.url), session)


@contextlib.asynccontextmanager
async def running(url: str, **overrides: Any) -> AsyncIterator[Operator]:
    """The operator, embedded in the test's loop, logged in to the emulator."""
    config = OperatorConfig(
        namespace=NAMESPACE,
        connection=kopf.ConnectionInfo(server=url.rstrip("/"), default_namespace=NAMESPACE),
        debounce=0.05,
        **overrides,
    )
    operator = Operator(config)
    stop = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(registry=operator.registry, clusterwide=True, standalone=True, stop_flag=stop)
    )
    try:
        await asyncio.wait_for(operator.reconciler.bootstrapped.wait(), 20)
        yield operator
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 20)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()


async def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll an (async) check until it returns a truthy value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


async def settled(operator: Operator, quiet: float = 0.3) -> None:
    """Wait until the reconciler has been idle for `quiet` seconds."""
    rec = operator.reconciler
    while True:
        await asyncio.wait_for(rec.idle.wait(), 20)
        passes = rec.passes
        await asyncio.sleep(quiet)
        if rec.idle.is_set() and rec.passes == passes:
            return
