"""The validating admission webhook, over TLS: bad objects are refused at once."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.operator.apiclient import Client
from tests.operator.broken import BROKEN, SEED_NETWORKS, fixed, seed
from tests.operator.conftest import running
from tests.operator.emulator import Emulator


@pytest.fixture(scope="module")
def tls() -> Iterator[tuple[str, str]]:
    """A self-signed certificate for the webhook; CI must have openssl (`make plugins`)."""
    if shutil.which("openssl") is None:
        pytest.fail(
            "the webhook tests need openssl on PATH (`make plugins` installs it)", pytrace=False
        )
    with tempfile.TemporaryDirectory(prefix="multus-op-webhook-") as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        yield str(cert), str(key)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _review(
    obj: dict[str, Any], operation: str = "CREATE", old: dict[str, Any] | None = None
) -> dict[str, Any]:
    group, version = obj["apiVersion"].split("/")
    network = obj["kind"] == "Network"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "4b4f5ab2-0000-4000-8000-000000000001",
            "kind": {"group": group, "version": version, "kind": obj["kind"]},
            "resource": {
                "group": group,
                "version": version,
                "resource": "networks" if network else "network-attachment-definitions",
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


@contextlib.asynccontextmanager
async def _webhook(client: Client, tls: tuple[str, str]) -> AsyncIterator[Review]:
    """The operator with its webhook on TLS; yields `review(obj, operation, old)`."""
    cert, key = tls
    port = _free_port()
    context = ssl.create_default_context(cafile=cert)
    async with (
        running(
            client.url,
            webhook_port=port,
            webhook_addr="127.0.0.1",
            webhook_host="127.0.0.1",
            webhook_certfile=cert,
            webhook_pkeyfile=key,
        ),
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session,
    ):
        base = f"https://127.0.0.1:{port}"

        async def review(obj: dict[str, Any], *args: Any) -> dict[str, Any]:
            path = "validate-network" if obj["kind"] == "Network" else "validate-nad"
            for _ in range(50):  # the server starts with the operator
                try:
                    async with session.post(f"{base}/{path}", json=_review(obj, *args)) as r:
                        answer: dict[str, Any] = await r.json()
                        return answer["response"]  # type: ignore[no-any-return]
                except aiohttp.ClientConnectorError:
                    await asyncio.sleep(0.1)
            raise AssertionError("webhook server never came up")

        yield review


async def test_webhook_refuses_broken_and_admits_seed(
    emulator: tuple[Emulator, Client], tls: tuple[str, str]
) -> None:
    _emu, client = emulator
    async with _webhook(client, tls) as review:
        for name in SEED_NETWORKS:
            answer = await review(seed(name))
            assert answer["allowed"] is True
        for obj, message in BROKEN.values():
            answer = await review(obj)
            assert answer["allowed"] is False
            assert answer["status"]["code"] == 422
            assert answer["status"]["message"].startswith(message)
        warned = await review(
            {
                "apiVersion": "k8s.cni.cncf.io/v1",
                "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": "w", "namespace": "default"},
                "spec": {"config": '{"type": "bridge", "brdige": "br0"}'},
            }
        )
        assert warned["allowed"] is True
        assert warned["warnings"] == ["spec.config.brdige: unknown bridge field"]


async def test_webhook_never_blocks_cleanup_of_an_invalid_object(
    emulator: tuple[Emulator, Client], tls: tuple[str, str]
) -> None:
    """An object invalid already (created before the webhook) can be deleted, relabelled
    and have its finalizers removed, or namespace deletion would hang on it; changing
    what the checks read is still judged."""
    _emu, client = emulator
    async with _webhook(client, tls) as review:
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
