"""API errors never end the operator: it reports them (readiness naming the verb and the
resource, a metric, one log line), backs off, honours Retry-After, keeps its webhook
serving, and recovers when the API does. Errors come by kind."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from multus_operator import metrics, rbac
from multus_operator.config import WebhookConfig
from multus_operator.handlers import RetryForever
from multus_operator.health import ApiHealth
from multus_operator.kubeapi import (
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    KubeApi,
    NotFoundError,
    ServerError,
    TooManyRequestsError,
    UnauthorizedError,
    UnreachableError,
    parse_retry_after,
)
from multus_operator.resources import CONFIGMAPS, NODES
from tests.operator.apiclient import Client
from tests.operator.broken import BROKEN
from tests.operator.conftest import (
    OPERATOR_TOKEN,
    RULES_FILE,
    SETTINGS_YAML,
    eventually,
    free_port,
    running,
    settled,
)
from tests.operator.emulator import Emulator
from tests.operator.tls import issue


def _without(resource: str, verb: str) -> list[rbac.Rule]:
    """The operator's rules with `verb` on `resource` taken away."""
    rules = []
    for rule in rbac.load(RULES_FILE)["operator"]:
        if resource in rule.resources and verb in rule.verbs:
            verbs = tuple(v for v in rule.verbs if v != verb)
            if not verbs:
                continue
            rule = dataclasses.replace(rule, verbs=verbs)
        rules.append(rule)
    return rules


async def test_a_missing_rbac_rule_is_reported_not_fatal(
    emulator: tuple[Emulator, Client], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator exited after ~54 s on `configmaps is forbidden`; now it says so,
    keeps the webhook serving, and recovers once the rule is granted."""
    emu, client = emulator
    caplog.set_level(logging.INFO, logger="multus_operator")
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    full = emu.users[OPERATOR_TOKEN]
    emu.users[OPERATOR_TOKEN] = dataclasses.replace(
        full, rules=tuple(_without("configmaps", "list"))
    )
    http, hook = free_port(), free_port()
    tls_dir = issue(tmp_path / "tls")
    webhook = WebhookConfig(port=hook, tls_dir=tls_dir, addr="127.0.0.1")
    async with (
        running(
            client.url, wait_synced=False, http_port=http, http_addr="127.0.0.1", webhook=webhook
        ) as op,
        aiohttp.ClientSession() as session,
    ):

        async def readiness() -> tuple[int, dict[str, Any]]:
            async with session.get(f"http://127.0.0.1:{http}/readyz") as resp:
                return resp.status, await resp.json()

        await eventually(lambda: op.health.failures, timeout=10)
        await asyncio.sleep(1.5)  # retries meanwhile: still one log line
        status, body = await readiness()
        assert status == 503
        reason = next(r for r in body["reasons"] if r.startswith("list configmaps"))
        assert reason.startswith(
            "list configmaps: HTTP 403: configmaps is forbidden: User"
            ' "system:serviceaccount:kube-system:multus-operator" cannot list resource'
            ' "configmaps" in API group "" in the namespace "kube-system"'
        )
        async with session.get(f"http://127.0.0.1:{http}/metrics") as resp:
            text = await resp.text()
        assert 'multus_operator_api_failing{resource="configmaps",verb="list"} 1.0' in text
        assert (
            'multus_operator_api_errors_total{code="403",resource="configmaps",verb="list"}' in text
        )
        assert "multus_operator_ready 0.0" in text
        # The webhook still judges.
        context = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
        request = {"uid": "u", "operation": "CREATE", "object": BROKEN["bad-json"][0]}
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        }
        async with session.post(
            f"https://127.0.0.1:{hook}/validate-network", json=review, ssl=context
        ) as resp:
            assert (await resp.json())["response"]["allowed"] is False
        emu.users[OPERATOR_TOKEN] = full  # the rule granted
        await eventually(lambda: client.configmap("node1"), timeout=10)
        await settled(op)
        status, body = await readiness()
        assert status == 200 and body["ready"] is True
    lines = [r.getMessage() for r in caplog.records if "list configmaps" in r.getMessage()]
    assert len(lines) == 2, lines  # it fails; it works again
    assert lines[1].startswith("API: list configmaps works again")


def _throttle(emu: Emulator, times: int) -> tuple[list[float], Any]:
    """Answer the first `times` ConfigMap creations 429 with Retry-After: 1; returns when
    each creation was tried, and the function that lifts it."""
    tried: list[float] = []

    def throttled(request: Any) -> bool:
        if request.method.value == "POST" and request.url.path.endswith("/configmaps"):
            tried.append(time.monotonic())
            return len(tried) <= times
        return False

    return tried, emu.refuse(throttled, 429, retry_after=1)


async def test_429_waits_for_retry_after(emulator: tuple[Emulator, Client]) -> None:
    emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    refused, lift = _throttle(emu, 2)
    try:
        async with running(client.url) as op:
            await eventually(lambda: client.configmap("node1"), timeout=10)
            await settled(op)
    finally:
        lift()
    assert len(refused) == 3
    assert refused[1] - refused[0] >= 0.95 and refused[2] - refused[1] >= 0.95


async def test_retry_after_holds_back_an_item_past_its_backoff(
    emulator: tuple[Emulator, Client],
) -> None:
    """After the client's own retries, a 429's Retry-After is the least the item waits."""
    emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    seen, lift = _throttle(emu, 4)  # 1 + 3 client retries: then the reconciler's retry
    try:
        async with running(client.url) as op:
            await eventually(lambda: len(seen) >= 4, timeout=10)
            assert op.reconciler is not None
            assert op.reconciler._node_retries.next_in() == pytest.approx(1.0, abs=0.3)
            await eventually(lambda: client.configmap("node1"), timeout=10)
    finally:
        lift()


async def test_a_401_logs_in_again() -> None:
    """A kubeconfig exec plugin's token or a rotated service-account token expires."""
    tokens = iter(["fresh"])
    seen: list[str] = []

    async def node(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.headers.get("Authorization") != "Bearer fresh":
            return web.json_response({"kind": "Status", "code": 401}, status=401)
        return web.json_response({"metadata": {"name": "n1"}})

    async def relogin() -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=str(server.make_url("/")), token=next(tokens))

    app = web.Application()
    app.router.add_get("/api/v1/nodes/n1", node)
    async with TestServer(app) as server:
        api = KubeApi(
            kopf.ConnectionInfo(server=str(server.make_url("/")), token="expired"),
            relogin=relogin,
        )
        try:
            assert (await api.get(NODES, "n1")) == {"metadata": {"name": "n1"}}
            assert seen == ["Bearer expired", "Bearer fresh"]
            with pytest.raises(UnauthorizedError):  # a login that yields nothing new: 401
                api._headers = {"Authorization": "Bearer expired"}
                await api.get(NODES, "n1")
        finally:
            await api.close()


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, UnauthorizedError),
        (403, ForbiddenError),
        (404, NotFoundError),
        (409, ConflictError),
        (410, GoneError),
        (422, InvalidError),
        (429, TooManyRequestsError),
        (500, ServerError),
        (503, ServerError),
    ],
)
async def test_errors_come_by_kind(status: int, kind: type[Exception]) -> None:
    async def answer(_: web.Request) -> web.Response:
        body = {"kind": "Status", "code": status, "message": f"said {status}",
                "details": {"retryAfterSeconds": 7}}  # fmt: skip
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_route("*", "/api/v1/namespaces/ns/configmaps", answer)
    async with TestServer(app) as server:
        health = ApiHealth()
        api = KubeApi(kopf.ConnectionInfo(server=str(server.make_url("/"))), health=health,
                      max_throttled=0)  # fmt: skip
        try:
            with pytest.raises(kind) as caught:
                await api.create(CONFIGMAPS, {"metadata": {"name": "x"}}, namespace="ns")
        finally:
            await api.close()
    error = caught.value
    assert str(error) == f"create configmaps: HTTP {status}: said {status}"
    assert error.retry_after == 7  # type: ignore[attr-defined]
    # Only errors that are not about one object make the operator unready.
    object_level = status in (404, 409, 422)
    assert bool(health.failures) is not object_level


async def test_no_answer_is_an_error_too() -> None:
    port = free_port()  # nothing listens there
    api = KubeApi(kopf.ConnectionInfo(server=f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(UnreachableError, match="get nodes: no answer"):
            await api.get(NODES, "x")
    finally:
        await api.close()
    assert api.health.failing[0][:2] == ("get", "nodes")


def test_retry_after_forms() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))
    assert parse_retry_after(later) == pytest.approx(60, abs=2)


async def test_metrics_read_only_a_snapshot(emulator: tuple[Emulator, Client]) -> None:
    _emu, client = emulator
    async with running(client.url) as op:
        view = op.view()
        text = metrics.render(lambda: view)
        body = view.readiness()
    assert "multus_operator_nodes 0.0" in text
    assert json.dumps(body)  # plain data
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.nodes = 3  # type: ignore[misc]


async def test_an_api_down_at_start_is_waited_for(emulator: tuple[Emulator, Client]) -> None:
    """kopf's own discovery gave up after 8 failures and the operator exited."""
    emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    lift = emu.refuse(lambda r: True, 503)
    async with running(client.url, wait_synced=False) as op:
        await asyncio.sleep(1.5)  # kopf's discovery and our watches keep failing
        assert not op.synced.is_set()
        lift()
        await asyncio.wait_for(op.synced.wait(), 20)
        await eventually(lambda: client.configmap("node1"), timeout=10)
        # However long it lasts: kopf's retries never run out (its default gives up
        # after 54 s, which ended the operator).
        assert op._settings is not None
        backoffs = op._settings.networking.error_backoffs
        assert isinstance(backoffs, RetryForever)
        first = list(itertools.islice(backoffs, 1000))
        assert first[:5] == [1, 1, 2, 3, 5] and len(first) == 1000
        assert list(itertools.islice(backoffs, 2)) == [1, 1]  # each request starts afresh
