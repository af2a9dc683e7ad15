"""`multus-operator` as deployed: the console script, $KUBECONFIG, leader election on,
probes and metrics on their ports, JSON logs, a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp
import yaml

from tests.operator.apiclient import Client
from tests.operator.conftest import SETTINGS_YAML, eventually
from tests.operator.emulator import Emulator


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_console_script_against_kubeconfig(
    emulator: tuple[Emulator, Client], tmp_path: Path
) -> None:
    _emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emu", "cluster": {"server": client.url}}],
                "users": [{"name": "op", "user": {"token": "t0ken"}}],
                "contexts": [{"name": "emu", "context": {"cluster": "emu", "user": "op"}}],
                "current-context": "emu",
            }
        )
    )
    live, metrics = _port(), _port()
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "MULTUS_NAMESPACE": "kube-system"}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "multus-operator"),
        "--liveness",
        f"http://127.0.0.1:{live}/healthz",
        "--metrics-port",
        str(metrics),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        await eventually(lambda: client.configmap("node1"), timeout=30)
        lease = await client.get(
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/multus-operator"
        )
        assert lease["spec"]["holderIdentity"]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{live}/healthz") as resp:
                assert resp.status == 200
                probe = await resp.json()
                assert probe["reconciler"]["settings"]["status"] == "True"
            async with session.get(f"http://127.0.0.1:{metrics}/metrics") as resp:
                assert "multus_operator_nodes 1" in await resp.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode()[-2000:]
    lines = [line for line in out.decode().splitlines() if line.strip()]
    assert lines and all(json.loads(line) for line in lines[:5])  # structured logs
