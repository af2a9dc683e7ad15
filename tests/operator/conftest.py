"""Operator tests: the real operator (kopf, embedded) against the API emulator over HTTP.

The operator logs in with a token the emulator knows as the operator's service
account, whose RBAC is exactly `rbac/rules.yaml`'s `operator` rules: every operator
test runs with the documented RBAC and nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import kopf
import pytest

from multus_operator import rbac
from multus_operator.config import OperatorConfig
from multus_operator.events import EventPoster
from multus_operator.handlers import Operator
from multus_operator.kubeapi import KubeApi
from multus_operator.netstatus import NetworkStatus
from multus_operator.nodeconfig import NodeConfigs
from multus_operator.reconciling import Reconciler
from multus_operator.state import ClusterState
from tests.operator.apiclient import NAMESPACE, Client
from tests.operator.emulator import Emulator, Subject

SETTINGS_YAML = "cniVersion: 1.0.0\nmode: thick\nclusterNetwork: flannel-conf\n"
RULES_FILE = Path(__file__).resolve().parents[2] / "rbac" / "rules.yaml"
OPERATOR_TOKEN = "operator-token"
OPERATOR_USER = f"system:serviceaccount:{NAMESPACE}:multus-operator"


def operator_subject(rules: list[rbac.Rule] | None = None) -> Subject:
    if rules is None:
        rules = rbac.load(RULES_FILE)["operator"]
    return Subject(OPERATOR_USER, tuple(rules), NAMESPACE)


@pytest.fixture
async def emulator() -> AsyncIterator[tuple[Emulator, Client]]:
    async with (
        Emulator(users={OPERATOR_TOKEN: operator_subject()}) as emu,
        kmock.Server(emu) as server,
        aiohttp.ClientSession() as session,
    ):
        yield emu, Client(str(server.url), session)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (other suites run alongside)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def config_for(url: str, **overrides: Any) -> OperatorConfig:
    """The operator's configuration for a test: our namespace, the emulator, its token."""
    connection = kopf.ConnectionInfo(
        server=url.rstrip("/"), default_namespace=NAMESPACE, token=OPERATOR_TOKEN
    )
    settings: dict[str, Any] = {
        "namespace": NAMESPACE,
        "connection": connection,
        "debounce": 0.05,
        "identity": "replica-test",
    }
    settings.update(overrides)
    return OperatorConfig(**settings)


@contextlib.asynccontextmanager
async def running(
    url: str, *, wait_synced: bool = True, **overrides: Any
) -> AsyncIterator[Operator]:
    """The operator, embedded in the test's loop, logged in to the emulator; stopped
    gracefully (kopf's cleanup) at the end."""
    operator = Operator(config_for(url, **overrides))
    stop = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(registry=operator.registry, clusterwide=True, standalone=True, stop_flag=stop)
    )
    try:
        if wait_synced:
            await asyncio.wait_for(operator.synced.wait(), 20)
        else:
            await asyncio.wait_for(operator.started.wait(), 20)
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
    await asyncio.wait_for(operator.synced.wait(), 20)
    rec = operator.reconciler
    assert rec is not None
    while True:
        await asyncio.wait_for(rec.idle.wait(), 20)
        passes = rec.passes
        await asyncio.sleep(quiet)
        if rec.idle.is_set() and rec.passes == passes:
            return


def reconciler_for(
    api: KubeApi, clock: Callable[[], float] = time.monotonic
) -> tuple[ClusterState, Reconciler]:
    """A reconciler and its state over `api`, without the watches (fed by hand)."""
    state = ClusterState(NAMESPACE)
    events = EventPoster(api, NAMESPACE)
    networks = NetworkStatus(state, api, events, clock=clock)
    return state, Reconciler(state, NodeConfigs(state, api, events), networks)
