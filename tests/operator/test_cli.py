"""`multus-operator` as deployed: the console script, a $KUBECONFIG whose user gets its
token from an exec plugin (read by the `kubernetes` package), leader election on,
probes and metrics on one port, JSON logs, the Lease released on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp
import yaml

from tests.operator.apiclient import Client
from tests.operator.conftest import OPERATOR_TOKEN, SETTINGS_YAML, eventually, free_port
from tests.operator.emulator import Emulator

LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/multus-operator"


def _kubeconfig(tmp_path: Path, server: str) -> Path:
    """A user whose token comes from an exec credential plugin (as EKS, GKE and AKS
    kubeconfigs do), which kopf's own kubeconfig reader does not run."""
    plugin = tmp_path / "credential-plugin"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": OPERATOR_TOKEN},
    }
    plugin.write_text(f"#!/bin/sh\necho '{json.dumps(credential)}'\n")
    plugin.chmod(0o755)
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(plugin),
            "interactiveMode": "Never",
        }
    }
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emu", "cluster": {"server": server}}],
                "users": [{"name": "op", "user": user}],
                "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "op"}}],
                "current-context": "emu",
            }
        )
    )
    return path


async def test_console_script_against_kubeconfig(
    emulator: tuple[Emulator, Client], tmp_path: Path
) -> None:
    emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(_kubeconfig(tmp_path, client.url)),
        "MULTUS_NAMESPACE": "kube-system",
        "POD_NAME": "multus-operator-abc12",
    }
    env.pop("KUBERNETES_SERVICE_HOST", None)
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "multus-operator"),
        "--http-port",
        str(port),
        "--http-addr",
        "127.0.0.1",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await eventually(lambda: client.configmap("node1"), timeout=30)
        lease = await client.get(LEASE)
        assert lease["spec"]["holderIdentity"] == "multus-operator-abc12"
        async with aiohttp.ClientSession() as session:
            base = f"http://127.0.0.1:{port}"
            async with session.get(f"{base}/healthz") as resp:
                assert resp.status == 200
            async with session.get(f"{base}/readyz") as resp:
                assert resp.status == 200, await resp.text()
                probe = await resp.json()
                assert probe["ready"] and probe["leading"] is True
                assert probe["settings"]["status"] == "True"
            async with session.get(f"{base}/metrics") as resp:
                text = await resp.text()
                assert "multus_operator_nodes 1.0" in text
                assert "multus_operator_ready 1.0" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode()[-2000:]
    lines = [line for line in out.decode().splitlines() if line.strip()]
    assert lines and all(json.loads(line) for line in lines)  # structured logs
    assert "holderIdentity" not in (await client.get(LEASE))["spec"]  # released on SIGTERM
    # The exec plugin's token was used: every request came as the operator's account.
    assert {r.subject for r in emu.requests_log if r.subject} == {
        "system:serviceaccount:kube-system:multus-operator"
    }
    assert not [r for r in emu.requests_log if r.status == 403]


async def test_a_bad_flag_exits_2_before_any_request(
    emulator: tuple[Emulator, Client], tmp_path: Path
) -> None:
    emu, client = emulator
    env = {**os.environ, "KUBECONFIG": str(_kubeconfig(tmp_path, client.url))}
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "multus-operator"),
        "--webhook-port", "9443", "--webhook-tls-dir", str(tmp_path),
        "--webhook-managed", "multus", "--webhook-service", "multus-webhook",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert f"--webhook-tls-dir: {tmp_path}/tls.crt: not found" in out.decode()
    assert emu.requests_log == []
