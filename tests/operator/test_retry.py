"""Failed writes are retried per item: one the API keeps refusing holds back nothing else.

RELIABILITY row 48 ("backoff, then consistent"): the loop used to sleep one backoff for the
whole pass whenever any item failed, so a single refused write delayed every other node's
ConfigMap and every other network's status by up to 60 s, every cycle.
"""

from __future__ import annotations

from typing import Any

import kopf
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from multus_operator import metrics
from multus_operator.kubeapi import KubeApi
from multus_operator.retries import Retries
from tests.operator.apiclient import Client, condition
from tests.operator.broken import network
from tests.operator.conftest import SETTINGS_YAML, eventually, reconciler_for, running, settled
from tests.operator.emulator import Emulator

NETS = "/apis/kubernetes.com/v1/namespaces/default/networks"
STUCK_CM = "multus-node-node1"
STUCK_STATUS = f"{NETS}/stuck/status"
FLANNEL = [{"delegate": {"isDefaultGateway": True}}]


async def _valid(client: Client, name: str) -> bool:
    return condition(await client.network(name), "Valid").get("status") == "True"


async def test_a_refused_write_holds_back_no_other(emulator: tuple[Emulator, Client]) -> None:
    emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    await client.create(NETS, network("stuck", "flannel", FLANNEL))
    refused = {"cm": 0, "status": 0}

    def stuck(request: Any) -> bool:
        method, path = request.method.value, request.url.path
        if method == "POST" and path.endswith("/configmaps") and f'"{STUCK_CM}"' in request.text:
            refused["cm"] += 1
            return True
        if method in ("PATCH", "PUT") and path.endswith(f"/configmaps/{STUCK_CM}"):
            refused["cm"] += 1
            return True
        if method in ("PATCH", "PUT") and path == STUCK_STATUS:
            refused["status"] += 1
            return True
        return False

    lift = emu.refuse(stuck)
    async with running(client.url) as op:
        # Refused twice each: the next try of each is 2 s away (1 s, then 2 s of backoff).
        await eventually(lambda: min(refused.values()) >= 2, timeout=5)
        await client.add_node("node2")
        await client.create(NETS, network("other", "flannel", FLANNEL))
        await eventually(lambda: client.configmap("node2"), timeout=1.5)
        await eventually(lambda: _valid(client, "other"), timeout=1.5)
        assert refused == {"cm": 2, "status": 2}  # not retried along with the others
        assert not op.reconciler.idle.is_set()  # a pending retry is not converged
        assert "\nmultus_operator_retries_pending 2.0\n" in metrics.render(op.view)
        lift()
        await eventually(lambda: client.configmap("node1"), timeout=5)
        await eventually(lambda: _valid(client, "stuck"), timeout=5)
        await settled(op)
        for node in ("node1", "node2"):
            assert (await client.configmap(node))["data"] == op.nodes.desired(node)
        assert op.api is not None
        # Each item written once it could be, and nothing twice (attempts are counted).
        assert dict(op.api.writes) == {
            "create configmaps": refused["cm"] + 2,
            "patch networks/status": refused["status"] + 2,
            "create events": 2,  # Valid, once per network: not again on a retry
        }
        assert not op.reconciler.retrying


def test_each_item_backs_off_alone_up_to_the_cap() -> None:
    now = [0.0]
    retries: Retries[str] = Retries(first=1.0, cap=60.0, clock=lambda: now[0])
    assert [retries.failed("a") for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert retries.failed("b") == 1  # its own schedule
    assert retries.waiting("a") and retries.waiting("b") and retries.next_in() == 1
    now[0] = 1.0
    assert retries.due() == {"b"} and retries.waiting("a")
    retries.hurry("a")
    assert retries.due() == {"a", "b"}
    assert retries.failed("a") == 60  # hurried, not forgiven
    retries.succeeded("a")
    assert retries.failed("a") == 1 and len(retries) == 2
    retries.succeeded("a")
    retries.succeeded("b")
    assert len(retries) == 0 and retries.next_in() is None


async def test_a_waiting_item_is_tried_again_at_once_when_it_changes() -> None:
    """Waiting for its retry, a refused status write is not tried in other passes; an edit
    of the object (the refusal may no longer hold) tries it at once."""
    tries: list[str] = []

    async def refuse(request: web.Request) -> web.Response:
        tries.append(request.match_info["name"])
        return web.json_response({"kind": "Status", "code": 422}, status=422)

    async def event(request: web.Request) -> web.Response:
        return web.json_response(await request.json(), status=201)

    app = web.Application()
    app.router.add_patch(
        "/apis/kubernetes.com/v1/namespaces/default/networks/{name}/status", refuse
    )
    app.router.add_post("/api/v1/namespaces/default/events", event)
    async with TestServer(app) as server:
        api = KubeApi(kopf.ConnectionInfo(server=str(server.make_url("/"))))
        state, rec = reconciler_for(api)
        try:
            state.on_network(None, network("stuck", "flannel", FLANNEL))
            assert await rec.reconcile_once() == 1 and rec.retrying == 1
            state.on_node(None, {"metadata": {"name": "node1"}})  # marks every network
            assert await rec.reconcile_once() == 0 and tries == ["stuck"]
            state.on_network(None, network("stuck", "flannel", [*FLANNEL, {"type": "tuning"}]))
            assert await rec.reconcile_once() == 1 and tries == ["stuck", "stuck"]
            assert rec._network_retries.next_in() == pytest.approx(2, abs=0.5)
        finally:
            await api.close()
