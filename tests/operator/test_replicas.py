"""Several replicas: one Lease holder writes; when it dies another takes over.
Also the metrics and readiness endpoints."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import aiohttp

from tests.operator.apiclient import Client
from tests.operator.conftest import SETTINGS_YAML, eventually, running, settled
from tests.operator.emulator import Emulator

CREATE_CM = "create configmaps"
LEASE = {"leader_election": True, "lease_duration": 3.0, "lease_renew": 0.2}


async def test_only_the_lease_holder_writes_and_a_standby_takes_over(
    emulator: tuple[Emulator, Client],
) -> None:
    _emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    async with running(client.url, identity="replica-a", **LEASE) as a:
        assert a.elector is not None
        await eventually(a.elector.leading.is_set)
        await eventually(lambda: client.configmap("node1"))
        async with running(client.url, identity="replica-b", **LEASE) as b:
            assert b.elector is not None
            await client.add_node("node2")
            await eventually(lambda: client.configmap("node2"))
            await settled(a)
            await asyncio.sleep(0.5)  # b has renewed several times meanwhile
            assert not b.elector.leading.is_set()
            assert b.api is not None and a.api is not None
            assert b.api.writes[CREATE_CM] == 0 and a.api.writes[CREATE_CM] == 2
            # a dies without a word: its tasks stop, its Lease expires.
            await a.kill()
            await eventually(b.elector.leading.is_set, timeout=15)
            await client.add_node("node3")
            await eventually(lambda: client.configmap("node3"))
            assert b.api.writes[CREATE_CM] == 1
    lease = await client.get(
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/multus-operator"
    )
    assert "holderIdentity" not in lease["spec"]  # b stopped gracefully: released
    assert lease["spec"]["leaseTransitions"] == 1


async def test_metrics_and_readiness(emulator: tuple[Emulator, Client]) -> None:
    _emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with running(client.url, metrics_port=port, metrics_addr="127.0.0.1") as op:
        await eventually(lambda: client.configmap("node1"))
        await settled(op)
        async with aiohttp.ClientSession() as session:

            async def get(path: str) -> tuple[int, str]:
                async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
                    return resp.status, await resp.text()

            status, text = await eventually(lambda: _try(get, "/readyz"))
            assert status == 200
            status, text = await get("/metrics")
            assert status == 200
            assert 'multus_operator_api_writes_total{verb="create",resource="configmaps"} 1' in text
            assert "multus_operator_nodes 1" in text
            assert "multus_operator_settings_valid 1" in text


async def _try(
    get: Callable[[str], Awaitable[tuple[int, str]]], path: str
) -> tuple[int, str] | None:
    try:
        return await get(path)
    except aiohttp.ClientConnectionError:
        return None
