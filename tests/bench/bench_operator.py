"""Operator at scale against the API emulator: cold start, no-op resync, settings changes.

    .venv/bin/python -m tests.bench.bench_operator [--nodes 1000] [--networks 200]

The emulator runs in its own process (its memory is not the operator's). Writes are
counted twice: by the operator's client and by the emulator (every POST/PATCH/DELETE
it served); they must agree. Prints one table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kopf

from multus_operator.handlers import Operator, OperatorConfig
from tests.operator.apiclient import Client

NS = "kube-system"
SETTINGS = "cniVersion: 1.0.0\nmode: thick\nclusterNetwork: flannel-conf\n"


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def served_writes(api: Client) -> int:
    """How many writes (POST/PATCH/DELETE) the emulator has served so far."""
    return int((await api.request("GET", "/_bench/writes"))["writes"])


def _network(i: int) -> tuple[str, dict[str, Any]]:
    """Every fifth an sriov Network (seed form), every fourth an NAD, others Networks."""
    name = f"net-{i:03}"
    if i % 5 == 0:
        args = [{"if0": f"enp{i % 3}s0", "vlan": 100 + i, "l2enable": True}]
        body = {"plugin": "sriov", "args": json.dumps(args)}
    elif i % 4 == 0:
        conf = {"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0",
                "ipam": {"type": "host-local", "subnet": f"10.{i}.0.0/16"}}  # fmt: skip
        return "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions", {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"config": json.dumps(conf)},
        }
    else:
        body = {"plugin": "flannel", "args": '[{"delegate": {"isDefaultGateway": true}}]'}
    return "/apis/kubernetes.com/v1/namespaces/default/networks", {
        "apiVersion": "kubernetes.com/v1",
        "kind": "Network",
        "metadata": {"name": name, "namespace": "default"},
        **body,
    }


async def populate(api: Client, nodes: int, networks: int) -> None:
    sem = asyncio.Semaphore(32)

    async def one(method: str, path: str, body: Any) -> None:
        async with sem:
            await api.request(method, path, body)

    jobs = [
        one(
            "POST",
            f"/api/v1/namespaces/{NS}/configmaps",
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "multus-settings", "namespace": NS},
                "data": {"settings.yaml": SETTINGS},
            },
        )
    ]
    for i in range(nodes):
        labels = {"pool": "debug"} if i % 100 == 0 else {"pool": "main"}
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": f"node-{i:04}"}}
        node["metadata"]["labels"] = labels  # type: ignore[index]
        jobs.append(one("POST", "/api/v1/nodes", node))
        if i % 5 == 0:  # a fifth of the nodes have SR-IOV NICs
            state = {
                "apiVersion": "multus.cni.cncf.io/v1",
                "kind": "NodeState",
                "metadata": {"name": f"node-{i:04}"},
            }
            jobs.append(one("POST", "/apis/multus.cni.cncf.io/v1/nodestates", state))
    for i in range(networks):
        jobs.append(one("POST", *_network(i)))
    await asyncio.gather(*jobs)
    pfs = [
        {"name": f"enp{k}s0", "pciAddress": f"0000:0{k}:00.0", "totalVfs": 8, "numVfs": 4}
        for k in range(3)
    ]
    await asyncio.gather(
        *[
            one(
                "PATCH",
                f"/apis/multus.cni.cncf.io/v1/nodestates/node-{i:04}/status",
                {"status": {"pfs": pfs[: 1 + i % 3]}},
            )
            for i in range(0, nodes, 5)
        ]
    )


@contextlib.asynccontextmanager
async def operator(url: str) -> AsyncIterator[Operator]:
    op = Operator(
        OperatorConfig(
            namespace=NS,
            connection=kopf.ConnectionInfo(server=url, default_namespace=NS),
            debounce=0.5,
        )
    )
    stop = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(registry=op.registry, clusterwide=True, standalone=True, stop_flag=stop)
    )
    try:
        yield op
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


async def converged(op: Operator, nodes: int, quiet: float = 1.0) -> float:
    """Wait for a quiet, complete state; return when it was reached (monotonic)."""
    rec = op.reconciler
    await asyncio.wait_for(rec.bootstrapped.wait(), 120)
    while True:
        await rec.idle.wait()
        reached = time.monotonic()
        passes = rec.passes
        await asyncio.sleep(quiet)
        if rec.idle.is_set() and rec.passes == passes and len(rec.configmaps) == nodes:
            return reached


async def run(nodes: int, networks: int) -> list[tuple[str, str, str]]:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.emulator_server"],
        stdout=subprocess.PIPE,
        text=True,
    )
    rows: list[tuple[str, str, str]] = []
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        async with aiohttp.ClientSession() as session:
            api = Client(url, session)
            started = time.monotonic()
            await populate(api, nodes, networks)
            rows.append(("populate (test client)", f"{time.monotonic() - started:.1f} s", ""))
            base = await served_writes(api)
            rss_before = _rss_mb()
            async with operator(url) as op:
                started = time.monotonic()
                took = await converged(op, nodes) - started
                cold = await served_writes(api) - base
                assert op.api is not None
                own = sum(op.api.writes.values())
                detail = ", ".join(f"{k}: {v}" for k, v in sorted(op.api.writes.items()))
                rows.append(("cold start: time to converge", f"{took:.1f} s", ""))
                rows.append(("cold start: API writes", str(cold), f"operator counted {own}"))
                rows.append(("", "", detail))
                rows.append(
                    (
                        "operator RSS (now / peak)",
                        f"{_rss_mb():.0f} / {max(_peak_mb(), _rss_mb()):.0f} MB",
                        f"{rss_before:.0f} MB before start",
                    )
                )
                mark = await served_writes(api)
                op.reconciler.resync()
                started = time.monotonic()
                took = await converged(op, nodes) - started
                rows.append(
                    (
                        "no-op resync: writes",
                        str(await served_writes(api) - mark),
                        f"pass done in {took:.1f} s",
                    )
                )
                for label, text, affected in (
                    ("settings change (all nodes)", SETTINGS + "logLevel: verbose\n", nodes),
                    (
                        "settings change (override, pool=debug)",
                        SETTINGS + "logLevel: verbose\nnodeOverrides:\n"
                        "- nodeSelector: {matchLabels: {pool: debug}}\n"
                        "  settings: {logLevel: debug}\n",
                        len(range(0, nodes, 100)),
                    ),
                ):
                    mark = await served_writes(api)
                    started = time.monotonic()
                    await api.request(
                        "PATCH",
                        f"/api/v1/namespaces/{NS}/configmaps/multus-settings",
                        {"data": {"settings.yaml": text}},
                    )
                    await asyncio.sleep(0.2)
                    took = await converged(op, nodes) - started
                    writes = await served_writes(api) - mark - 1
                    rows.append(
                        (
                            f"{label}: writes",
                            str(writes),
                            f"nodes affected {affected}; converged in {took:.1f} s",
                        )
                    )
            mark = await served_writes(api)
            async with operator(url) as op:
                started = time.monotonic()
                took = await converged(op, nodes) - started
                rows.append(
                    (
                        "restart (re-list everything): writes",
                        str(await served_writes(api) - mark),
                        f"converged in {took:.1f} s",
                    )
                )
    finally:
        server.terminate()
        server.wait(10)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--networks", type=int, default=200)
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.nodes, args.networks))
    print(f"\nmultus-operator benchmark: {args.nodes} nodes, {args.networks} networks\n")
    width = max(len(r[0]) for r in rows)
    for what, value, note in rows:
        print(f"| {what:<{width}} | {value:>14} | {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
