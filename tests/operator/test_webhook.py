"""The validating admission webhook, over TLS, directly and through the emulator's
admission chain (rules, matchConditions, failurePolicy, timeout, caBundle) as a real
API server runs it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from multus_operator.config import ConfigError, WebhookConfig, from_args
from multus_operator.handlers import Operator
from multus_operator.resources import NADS, NETWORKS
from multus_operator.webhookconfig import WEBHOOK_NAMES, build, content_changed
from tests.operator.apiclient import NAMESPACE, Client
from tests.operator.broken import BROKEN, SEED_NETWORKS, WARNED, fixed, nad, seed
from tests.operator.conftest import eventually, free_port, running
from tests.operator.emulator import Emulator
from tests.operator.tls import issue

NETS = "/apis/kubernetes.com/v1/namespaces/default/networks"
NADS_PATH = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions"
CONFIG = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices"
SERVICE = "multus-operator-webhook"
MANAGED = "multus-operator.multus.cni.cncf.io"


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    return issue(tmp_path / "webhook-tls")


def _review(
    obj: dict[str, Any], operation: str = "CREATE", old: dict[str, Any] | None = None
) -> dict[str, Any]:
    group, version = obj["apiVersion"].split("/")
    is_network = obj["kind"] == "Network"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "4b4f5ab2-0000-4000-8000-000000000001",
            "kind": {"group": group, "version": version, "kind": obj["kind"]},
            "resource": {
                "group": group,
                "version": version,
                "resource": "networks" if is_network else "network-attachment-definitions",
            },
            "operation": operation,
            "namespace": "default",
            "name": obj["metadata"]["name"],
            "object": None if operation == "DELETE" else obj,
            "oldObject": old,
            "userInfo": {"username": "tester"},
            "dryRun": False,
        },
    }


Review = Callable[..., Awaitable[dict[str, Any]]]


def _webhook_config(tls_dir: Path, port: int, **overrides: Any) -> WebhookConfig:
    settings: dict[str, Any] = {"port": port, "tls_dir": tls_dir, "addr": "127.0.0.1"}
    settings.update(overrides)
    return WebhookConfig(**settings)


@contextlib.asynccontextmanager
async def _direct(client: Client, tls_dir: Path) -> AsyncIterator[tuple[Review, str]]:
    """The operator with its webhook; yields `review(obj, operation, old)` and the base URL."""
    port = free_port()
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    async with (
        running(client.url, webhook=_webhook_config(tls_dir, port)) as op,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
    ):
        assert op.webhook is not None
        await asyncio.wait_for(op.webhook.serving.wait(), 10)
        base = f"https://127.0.0.1:{port}"

        async def review(obj: dict[str, Any], *args: Any) -> dict[str, Any]:
            path = "validate-network" if obj["kind"] == "Network" else "validate-nad"
            async with session.post(f"{base}/{path}", json=_review(obj, *args)) as r:
                answer: dict[str, Any] = await r.json()
                return answer["response"]  # type: ignore[no-any-return]

        yield review, base


async def test_webhook_refuses_broken_and_admits_seed(
    emulator: tuple[Emulator, Client], tls_dir: Path
) -> None:
    _emu, client = emulator
    async with _direct(client, tls_dir) as (review, _):
        for name in SEED_NETWORKS:
            answer = await review(seed(name))
            assert answer["allowed"] is True
        for obj, message in BROKEN.values():
            answer = await review(obj)
            assert answer["allowed"] is False
            assert answer["status"]["code"] == 422
            assert answer["status"]["message"].startswith(message)
        warned = await review(nad("w", '{"type": "bridge", "brdige": "br0"}'))
        assert warned["allowed"] is True
        assert warned["warnings"] == ["spec.config.brdige: unknown bridge field"]


async def test_webhook_never_blocks_cleanup_of_an_invalid_object(
    emulator: tuple[Emulator, Client], tls_dir: Path
) -> None:
    """An object invalid already (created before the webhook) can be deleted, relabelled
    and have its finalizers removed, or namespace deletion would hang on it; changing
    what the checks read is still judged."""
    _emu, client = emulator
    async with _direct(client, tls_dir) as (review, _):
        for obj, _ in BROKEN.values():
            answer = await review(obj, "DELETE", obj)
            assert answer["allowed"] is True, answer
            relabelled = copy.deepcopy(obj)
            relabelled["metadata"]["labels"] = {"team": "net"}
            relabelled["metadata"]["finalizers"] = []
            answer = await review(relabelled, "UPDATE", obj)
            assert answer["allowed"] is True, answer
            changed = copy.deepcopy(obj)
            changed["extra"] = 1  # a change to the checked content: judged again
            answer = await review(changed, "UPDATE", obj)
            assert answer["allowed"] is False
        fixed_to_broken = await review(BROKEN["bad-json"][0], "UPDATE", fixed("bad-json"))
        assert fixed_to_broken["allowed"] is False
        assert fixed_to_broken["status"]["message"].startswith(BROKEN["bad-json"][1])


async def test_a_path_without_a_webhook_is_404_not_a_silent_admit(
    emulator: tuple[Emulator, Client], tls_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A configuration registered by hand without the handler path admitted everything."""
    _emu, client = emulator
    caplog.set_level(logging.WARNING, logger="multus_operator")
    context = ssl.create_default_context(cafile=str(tls_dir / "ca.crt"))
    async with (
        _direct(client, tls_dir) as (_, base),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
    ):
        broken = _review(BROKEN["bad-json"][0])
        for path in ("", "/", "/validate", "/validate-network/x", "/"):
            async with session.post(base + path, json=broken) as resp:
                assert resp.status == 404, path
                assert "/validate-network" in (await resp.json())["message"]
    warnings = [r.getMessage() for r in caplog.records if "no webhook there" in r.getMessage()]
    assert len(warnings) == 3  # once per path, not per request


def test_configuration_one_webhook_per_kind(tls_dir: Path) -> None:
    config = _webhook_config(tls_dir, 9443, managed=MANAGED, service=SERVICE)
    ca = (tls_dir / "ca.crt").read_bytes()
    built = build(config, NAMESPACE, ca)
    assert built["metadata"]["name"] == MANAGED
    by_name = {w["name"]: w for w in built["webhooks"]}
    network, nads = by_name[WEBHOOK_NAMES[NETWORKS]], by_name[WEBHOOK_NAMES[NADS]]
    assert network["clientConfig"]["service"] == {
        "namespace": NAMESPACE, "name": SERVICE, "path": "/validate-network", "port": 443,
    }  # fmt: skip
    assert nads["clientConfig"]["service"]["path"] == "/validate-nad"
    assert base64.b64decode(network["clientConfig"]["caBundle"]) == ca  # the CA, not the cert
    assert (network["failurePolicy"], nads["failurePolicy"]) == ("Fail", "Ignore")
    assert network["timeoutSeconds"] == nads["timeoutSeconds"] == 5
    assert network["rules"] == [
        {"apiGroups": ["kubernetes.com"], "apiVersions": ["v1"], "resources": ["networks"],
         "operations": ["CREATE", "UPDATE"], "scope": "Namespaced"},
    ]  # fmt: skip
    assert nads["rules"][0]["resources"] == ["network-attachment-definitions"]
    assert network["matchConditions"][0]["expression"] == content_changed(("plugin", "args"))
    assert nads["matchConditions"][0]["expression"] == content_changed(("spec",))
    strict = build(_webhook_config(tls_dir, 1, managed=MANAGED, url="https://x:8443/",
                                   nad_failure_policy="Fail"), NAMESPACE, ca)  # fmt: skip
    assert strict["webhooks"][1]["failurePolicy"] == "Fail"
    assert strict["webhooks"][0]["clientConfig"]["url"] == "https://x:8443/validate-network"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--webhook-managed", "Multus_Webhook", "--webhook-service", "svc"],
         "--webhook-managed: 'Multus_Webhook' is not a valid object name"),
        (["--webhook-managed", "multus"], "--webhook-managed needs one of --webhook-service"),
        (["--webhook-managed", "m", "--webhook-url", "http://x"], "must start with https://"),
        (["--webhook-timeout", "31"], "--webhook-timeout: 31 is not within 1..30 s"),
    ],
)  # fmt: skip
def test_webhook_flags_are_checked_up_front(tls_dir: Path, argv: list[str], message: str) -> None:
    """`--webhook-managed multus` crashed later with a 422 from the API server."""
    base = ["--webhook-port", "9443", "--webhook-tls-dir", str(tls_dir)]
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        from_args(base + argv, {})


def test_a_missing_certificate_is_named_up_front(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{tmp_path}/tls.crt: not found"):
        from_args(["--webhook-port", "9443", "--webhook-tls-dir", str(tmp_path)], {})


@contextlib.asynccontextmanager
async def _managed(
    emu: Emulator, client: Client, tls_dir: Path, identity: str, **webhook: Any
) -> AsyncIterator[Operator]:
    """A replica with a managed configuration behind the Service `SERVICE`, which the
    emulator resolves to this replica's port (kube-proxy's part)."""
    port = free_port()
    config = _webhook_config(
        tls_dir, port, managed=MANAGED, service=SERVICE, tls_check_every=0.2, **webhook
    )
    emu.services[(NAMESPACE, SERVICE)] = f"https://127.0.0.1:{port}"
    lease = {"lease_duration": 3.0, "lease_renew": 0.3}
    async with running(
        client.url, webhook=config, identity=identity, pod_ip=identity, leader_election=True,
        **lease,
    ) as op:  # fmt: skip
        yield op


async def _endpoints(client: Client, *ready: str) -> None:
    """The Service's EndpointSlice: these pod IPs ready."""
    body = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"{SERVICE}-abcde",
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": SERVICE},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ready],
    }
    if await client.get(f"{SLICES}/{SERVICE}-abcde") is None:
        await client.create(SLICES, body)
    else:
        await client.patch(f"{SLICES}/{SERVICE}-abcde", {"endpoints": body["endpoints"]})


async def test_through_the_api_server_only_checked_changes_reach_the_webhook(
    emulator: tuple[Emulator, Client], tls_dir: Path
) -> None:
    emu, client = emulator
    # Invalid already, from before the webhook.
    await client.create(NETS, BROKEN["bad-json"][0])
    await client.create(NADS_PATH, BROKEN["nad-type-path"][0])
    async with _managed(emu, client, tls_dir, "10.0.0.1") as op:
        assert op.webhook_config is not None
        await asyncio.wait_for(op.webhook_config.in_sync.wait(), 10)
        stored = await client.get(f"{CONFIG}/{MANAGED}")
        assert [w["name"] for w in stored["webhooks"]] == list(WEBHOOK_NAMES.values())
        status, answer = await client.send("POST", NETS, BROKEN["two-confs"][0])
        assert status == 422
        assert answer["message"] == (
            f'admission webhook "{WEBHOOK_NAMES[NETWORKS]}" denied the request: '
            + BROKEN["two-confs"][1]
        )
        status, _ = await client.send("POST", NADS_PATH, BROKEN["nad-type-path"][0] | {
            "metadata": {"name": "again", "namespace": "default"}})  # fmt: skip
        assert status == 422
        calls = len(emu.webhook_calls)
        # Labels, finalizers, annotations: not sent to the webhook at all.
        for path in (f"{NETS}/bad-json", f"{NADS_PATH}/nad-type-path"):
            meta = {"metadata": {"labels": {"team": "a"}, "annotations": {"x": "y"}}}
            status, _ = await client.send("PATCH", path, meta)
            assert status == 200
        assert len(emu.webhook_calls) == calls
        # The content: sent, and judged.
        status, answer = await client.send("PATCH", f"{NETS}/bad-json", {"args": '[{"if0": "x"}]'})
        assert status == 200, answer.get("message")
        assert emu.webhook_calls[-1] == (WEBHOOK_NAMES[NETWORKS], "UPDATE", "bad-json")


async def test_with_the_operator_down_networks_fail_nads_pass_metadata_always(
    emulator: tuple[Emulator, Client], tls_dir: Path
) -> None:
    """With failurePolicy Fail and no replica answering, label and finalizer updates were
    refused too; NAD writes by other controllers must not depend on us."""
    emu, client = emulator
    await client.create(NETS, fixed("bad-json"))
    await client.create(NADS_PATH, fixed("nad-type-path"))
    await _endpoints(client, "10.0.0.1", "10.0.0.2")  # another replica: kept on stop
    async with _managed(emu, client, tls_dir, "10.0.0.1") as op:
        assert op.webhook_config is not None
        await asyncio.wait_for(op.webhook_config.in_sync.wait(), 10)
    stored = await client.get(f"{CONFIG}/{MANAGED}")
    assert len(stored["webhooks"]) == 2  # kept: "10.0.0.2" still serves
    # ... but nothing answers at the Service now.
    status, _ = await client.send("PATCH", f"{NETS}/bad-json", {"metadata": {"labels": {"a": "b"}}})
    assert status == 200
    status, answer = await client.send("PATCH", f"{NETS}/bad-json", {"plugin": "macvlan"})
    assert status == 500 and "failed calling webhook" in answer["message"]
    status, _ = await client.send("PATCH", f"{NADS_PATH}/nad-type-path", {"spec": {"config": "{}"}})
    assert status == 200  # Ignore: other controllers' NAD writes go through
    await client.create(NADS_PATH, nad("strict", {"type": "bridge"}))
    async with _managed(emu, client, tls_dir, "10.0.0.1", nad_failure_policy="Fail") as op:
        assert op.webhook_config is not None
        await asyncio.wait_for(op.webhook_config.in_sync.wait(), 10)
    status, _ = await client.send("PATCH", f"{NADS_PATH}/strict", {"spec": {"config": "{}"}})
    assert status == 500  # Fail, opted in


async def test_the_last_replica_empties_the_configuration_on_stop(
    emulator: tuple[Emulator, Client], tls_dir: Path
) -> None:
    emu, client = emulator
    await _endpoints(client, "10.0.0.1")  # only this replica
    async with _managed(emu, client, tls_dir, "10.0.0.1") as op:
        assert op.webhook_config is not None
        await asyncio.wait_for(op.webhook_config.in_sync.wait(), 10)
    stored = await client.get(f"{CONFIG}/{MANAGED}")
    assert stored["webhooks"] == []
    status, _ = await client.send("POST", NETS, BROKEN["bad-json"][0])
    assert status == 201  # nothing blocks Network writes once the operator is gone


async def test_two_replicas_one_certificate_and_a_renewal(
    emulator: tuple[Emulator, Client], tls_dir: Path
) -> None:
    """Every replica serves the Secret's certificate, so the caBundle fits whichever the
    API server reaches; a renewed certificate (a new CA) is served and registered."""
    emu, client = emulator
    await _endpoints(client, "10.0.0.1", "10.0.0.2")
    async with (
        _managed(emu, client, tls_dir, "10.0.0.1") as a,
        _managed(emu, client, tls_dir, "10.0.0.2") as b,  # the Service now reaches b
    ):
        assert a.webhook is not None and b.webhook is not None
        assert a.webhook.ca_bundle == b.webhook.ca_bundle == (tls_dir / "ca.crt").read_bytes()
        leader = a if a.elector and a.elector.leading.is_set() else b
        assert leader.webhook_config is not None
        await asyncio.wait_for(leader.webhook_config.in_sync.wait(), 10)
        status, _ = await client.send("POST", NETS, BROKEN["bad-json"][0])
        assert status == 422  # b answered, with the CA the leader registered
        old_ca = (tls_dir / "ca.crt").read_bytes()
        issue(tls_dir)  # cert-manager renews: a new key, a new CA

        async def registered() -> bool:
            stored = await client.get(f"{CONFIG}/{MANAGED}")
            bundle = base64.b64decode(stored["webhooks"][0]["clientConfig"]["caBundle"])
            return bundle != old_ca and bundle == (tls_dir / "ca.crt").read_bytes()

        await eventually(registered, timeout=10)
        await eventually(lambda: b.webhook is not None and b.webhook.ca_bundle != old_ca)
        status, answer = await client.send("POST", NETS, BROKEN["two-confs"][0])
        assert status == 422, answer  # the API server trusts the renewed certificate


def test_self_signed_certificate_is_its_own_ca(tmp_path: Path) -> None:
    directory = issue(tmp_path / "tls", with_ca=False)
    config = _webhook_config(directory, 9443, managed=MANAGED, service=SERVICE)
    assert config.problems() == []
    from multus_operator.webhook import TlsFiles

    assert TlsFiles(directory).ca_bundle() == (directory / "tls.crt").read_bytes()


NODESTATES = "/apis/multus.cni.cncf.io/v1/nodestates"


async def test_admission_depends_on_the_object_alone(
    emulator: tuple[Emulator, Client], tls_dir: Path
) -> None:
    """README, operator section: the operator refuses more than the plugin only with
    knowledge the plugin lacks (other objects, the nodes), and only in status. So the
    webhook answers the same whatever else exists, in whatever order objects come, and
    an sriov network that no node can serve is admitted and Valid, with Ready=False."""
    _emu, client = emulator
    objects = [
        *(seed(name) for name in SEED_NETWORKS),
        *(obj for obj, _ in BROKEN.values()),
        *(obj for obj, _ in WARNED.values()),
    ]

    def verdict(answer: dict[str, Any]) -> tuple[Any, ...]:
        status = answer.get("status") or {}
        return answer["allowed"], status.get("message"), tuple(answer.get("warnings") or ())

    async with _direct(client, tls_dir) as (review, _):
        alone = [verdict(await review(obj)) for obj in objects]
        # Everything else arrives: a node with its SR-IOV inventory, the objects.
        await client.add_node("node1")
        state = {"apiVersion": "multus.cni.cncf.io/v1", "kind": "NodeState",
                 "metadata": {"name": "node1"}}  # fmt: skip
        await client.create(NODESTATES, state)
        pf = {"name": "enp12s0f1", "pciAddress": "0000:02:00.0", "totalVfs": 4, "numVfs": 4}
        await client.patch(f"{NODESTATES}/node1/status", {"status": {"pfs": [pf]}})
        for obj in reversed(objects):
            path = NETS if obj["kind"] == "Network" else NADS_PATH
            with contextlib.suppress(Exception):
                await client.create(path, copy.deepcopy(obj))
        together = [verdict(await review(obj)) for obj in reversed(objects)]
        assert list(reversed(together)) == alone
        # Per-node knowledge: the seed's sriov-vlanid-l2enable-conf wants PF enp2s0, which
        # node1 lacks. Admitted and Valid; only Ready says so.
        vlan = seed("sriov-vlanid-l2enable-conf.yaml")
        assert verdict(await review(vlan))[0] is True

        async def ready() -> Any:
            net = await client.network("sriov-vlanid-l2enable-conf")
            conds = {c["type"]: c for c in (net.get("status") or {}).get("conditions") or []}
            return conds if "Ready" in conds else None

        conds = await eventually(ready)
        assert conds["Valid"]["status"] == "True"
        assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "NoUsableNode")
        assert conds["Ready"]["message"] == "usable on 0 of 1 nodes; not on: node1 (no PF enp2s0)"
