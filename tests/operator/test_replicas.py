"""Several replicas: one Lease holder writes; a graceful stop hands over at once, a crash
within the lease duration plus 1 s; a standby is warm, so nothing is written or posted
again for what did not change. Also the probes and metrics, and quiet logs."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tests.operator.apiclient import Client
from tests.operator.broken import BROKEN, SEED_NETWORKS, seed
from tests.operator.conftest import SETTINGS_YAML, eventually, free_port, running, settled
from tests.operator.emulator import Emulator

CREATE_CM = "create configmaps"
DURATION = 3.0
LEASE = {"leader_election": True, "lease_duration": DURATION, "lease_renew": 0.3}
LEASE_PATH = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/multus-operator"
NETS = "/apis/kubernetes.com/v1/namespaces/default/networks"
NADS = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions"


async def _leading(op: Any) -> bool:
    return bool(op.elector is not None and op.elector.leading.is_set())


async def _events(client: Client) -> list[tuple[str, str]]:
    found = await client.get("/api/v1/events")
    return sorted((e["involvedObject"]["name"], e["reason"]) for e in found["items"])


async def test_only_the_lease_holder_writes_and_a_crash_is_taken_over(
    emulator: tuple[Emulator, Client],
) -> None:
    _emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    async with running(client.url, identity="replica-a", **LEASE) as a:
        await eventually(lambda: _leading(a))
        await eventually(lambda: client.configmap("node1"))
        async with running(client.url, identity="replica-b", **LEASE) as b:
            await client.add_node("node2")
            await eventually(lambda: client.configmap("node2"))
            await settled(a)
            await asyncio.sleep(0.5)  # b has looked at the Lease meanwhile
            assert not await _leading(b)
            assert b.api is not None and a.api is not None
            assert b.api.writes[CREATE_CM] == 0 and a.api.writes[CREATE_CM] == 2
            assert b.state.configmaps.keys() == {"node1", "node2"}  # warm all the same
            renewed = (await client.get(LEASE_PATH))["spec"]["renewTime"]
            await a.kill()  # a crash: no release; a's Lease runs out
            crashed = time.monotonic()
            await eventually(lambda: _leading(b), timeout=DURATION + 3)
            took = time.monotonic() - crashed
            assert took <= DURATION + 1.0, took
            assert (await client.get(LEASE_PATH))["spec"]["renewTime"] != renewed
            await client.add_node("node3")
            await eventually(lambda: client.configmap("node3"))
            assert b.api.writes[CREATE_CM] == 1
    lease = await client.get(LEASE_PATH)
    assert "holderIdentity" not in lease["spec"]  # b stopped gracefully: released
    assert lease["spec"]["leaseTransitions"] == 1


async def test_a_graceful_stop_hands_over_at_once_and_nothing_is_posted_again(
    emulator: tuple[Emulator, Client],
) -> None:
    """A rollout: the leader gets SIGTERM, releases the Lease, the standby takes it at
    once, and a change made meanwhile is reconciled within 2 s. NAD validity (in the
    annotation, the NAD CRD having no /status) and Network conditions are known to the
    standby, so no Event is posted again for an object that did not change."""
    _emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    for name in SEED_NETWORKS:
        await client.create(NETS, seed(name))
    for obj, _ in BROKEN.values():
        await client.create(NADS if obj["kind"] != "Network" else NETS, obj)
    async with running(client.url, identity="replica-a", **LEASE) as a:
        await eventually(lambda: _leading(a))
        await settled(a)
        posted = await _events(client)
        assert ("nad-type-path", "Invalid") in posted and ("flannel-conf", "Valid") in posted
        async with running(client.url, identity="replica-b", **LEASE) as b:
            validity = b.state.networks[("NetworkAttachmentDefinition", "default", "nad-type-path")]
            assert validity.validity is not None and validity.validity["status"] == "False"
            await a.stop()  # SIGTERM: kopf's cleanup calls this
            stopped = time.monotonic()
            await client.create(NETS, seed("flannel-conf.yaml") | {
                "metadata": {"name": "during-rollout", "namespace": "default"}})  # fmt: skip
            await eventually(lambda: _leading(b), timeout=1.0)
            assert time.monotonic() - stopped < 1.0

            async def reconciled() -> bool:
                net = await client.network("during-rollout")
                return bool((net.get("status") or {}).get("conditions"))

            await eventually(reconciled, timeout=2.0)
            await settled(b)
            assert b.api is not None
            assert b.api.writes.get("patch network-attachment-definitions", 0) == 0
            assert b.api.writes.get("patch networks/status") == 1  # during-rollout only
            assert await _events(client) == sorted([*posted, ("during-rollout", "Valid")])
        # A restart of a single replica: nothing written or posted either.
        async with running(client.url, identity="replica-c", **LEASE) as c:
            await eventually(lambda: _leading(c), timeout=DURATION + 2)
            await settled(c)
            assert c.api is not None
            writes = {k: v for k, v in c.api.writes.items() if "leases" not in k}
            assert writes == {}
    assert len(await _events(client)) == len(posted) + 1


async def test_a_restart_is_quiet(
    emulator: tuple[Emulator, Client], caplog: pytest.LogCaptureFixture
) -> None:
    """kopf logged a line per watch event (3,322 for one start); now a converged
    restart logs what it found and nothing per object."""
    _emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    for i in range(40):
        await client.add_node(f"node{i:02}")
    for name in SEED_NETWORKS:
        await client.create(NETS, seed(name))
    for obj, _ in BROKEN.values():
        await client.create(NADS if obj["kind"] != "Network" else NETS, obj)
    async with running(client.url) as op:
        await settled(op)
    caplog.clear()
    caplog.set_level(logging.INFO)
    async with running(client.url) as op:
        await settled(op)
        await client.add_node("late")  # a change: logged as what was written
        await eventually(lambda: client.configmap("late"))
        await settled(op)
    ours = [r.getMessage() for r in caplog.records if r.name == "multus_operator"]
    assert len(ours) <= 4, ours
    assert any(m.startswith("watching 40 nodes") for m in ours), ours
    assert any(m.startswith("reconciled: 1 ConfigMaps created") for m in ours), ours
    kopf_lines = [r for r in caplog.records if r.name.startswith("kopf")]
    assert len(kopf_lines) <= 10, [r.getMessage() for r in kopf_lines]


async def test_metrics_and_readiness(emulator: tuple[Emulator, Client]) -> None:
    _emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    port = free_port()
    async with running(client.url, http_port=port, http_addr="127.0.0.1") as op:
        await eventually(lambda: client.configmap("node1"))
        await settled(op)
        async with aiohttp.ClientSession() as session:

            async def get(path: str) -> tuple[int, str]:
                async with session.get(f"http://127.0.0.1:{port}{path}") as resp:
                    return resp.status, await resp.text()

            status, text = await eventually(lambda: _try(get, "/readyz"))
            assert status == 200 and '"ready": true' in text
            status, text = await get("/metrics")
            assert status == 200
            assert (
                'multus_operator_api_writes_total{resource="configmaps",verb="create"} 1.0' in text
            )
            assert "multus_operator_nodes 1.0" in text
            assert "multus_operator_settings_valid 1.0" in text
            assert "multus_operator_ready 1.0" in text


async def _try(
    get: Callable[[str], Awaitable[tuple[int, str]]], path: str
) -> tuple[int, str] | None:
    try:
        return await get(path)
    except aiohttp.ClientConnectionError:
        return None
