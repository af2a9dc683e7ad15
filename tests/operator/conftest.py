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
from tests.operator.apiclient import NAMESPACE, Client
from tests.operator.emulator import Emulator

SETTINGS_YAML = "cniVersion: 1.0.0\nmode: thick\nclusterNetwork: flannel-conf\n"


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
