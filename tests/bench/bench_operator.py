"""Operator at scale against the API emulator: cold start, no-op resync, settings
changes, restart, graceful failover; 1,000 nodes x 200 networks beside 5,000 x 1,000.

    .venv/bin/python -m tests.bench.bench_operator [--scales 1000x200,5000x1000]

Each scale runs in a process of its own (so RSS is the operator's at that scale),
against an emulator in another process (its memory is not the operator's). Writes are
counted twice, by the operator's client and by the emulator (every POST/PATCH/PUT/
DELETE it served); they must agree. Prints one table, the scales side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kopf

from multus_operator.config import OperatorConfig
from multus_operator.handlers import Operator
from tests.operator.apiclient import Client

NS = "kube-system"
SETTINGS = "cniVersion: 1.0.0\nmode: thick\nclusterNetwork: flannel-conf\n"
OVERRIDE = (
    "logLevel: verbose\nnodeOverrides:\n- nodeSelector: {matchLabels: {pool: debug}}\n"
    "  settings: {logLevel: debug}\n"
)
Row = tuple[str, str, str]  # measure, value, note


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def counts(api: Client) -> dict[str, int]:
    """Requests and writes the emulator has served so far."""
    found: dict[str, int] = await api.request("GET", "/_bench/counts")
    return found


def _network(i: int) -> tuple[str, dict[str, Any]]:
    """Every fifth an sriov Network (seed form), every fourth an NAD, others Networks."""
    name = f"net-{i:04}"
    if i % 5 == 0:
        args = [{"if0": f"enp{i % 3}s0", "vlan": 100 + i % 3000, "l2enable": True}]
        body = {"plugin": "sriov", "args": json.dumps(args)}
    elif i % 4 == 0:
        subnet = f"10.{i % 250}.{i // 250}.0/24"
        conf = {"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0",
                "ipam": {"type": "host-local", "subnet": subnet}}  # fmt: skip
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

    settings = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "multus-settings", "namespace": NS},
        "data": {"settings.yaml": SETTINGS},
    }
    jobs = [one("POST", f"/api/v1/namespaces/{NS}/configmaps", settings)]
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
async def operator(url: str, **overrides: Any) -> AsyncIterator[Operator]:
    settings: dict[str, Any] = {
        "namespace": NS,
        "connection": kopf.ConnectionInfo(server=url, default_namespace=NS),
        "debounce": 0.5,
    }
    settings.update(overrides)
    op = Operator(OperatorConfig(**settings))
    stop = asyncio.Event()
    task = asyncio.create_task(
        kopf.operator(registry=op.registry, clusterwide=True, standalone=True, stop_flag=stop)
    )
    try:
        yield op
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)


async def converged(op: Operator, nodes: int, quiet: float = 1.0) -> float:
    """Wait for a quiet, complete state; return when it was reached (monotonic)."""
    await asyncio.wait_for(op.synced.wait(), 600)
    rec = op.reconciler
    assert rec is not None
    while True:
        await rec.idle.wait()
        reached = time.monotonic()
        passes = rec.passes
        await asyncio.sleep(quiet)
        if rec.idle.is_set() and rec.passes == passes and len(op.state.configmaps) == nodes:
            return reached


class LineCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += 1


async def one_scale(nodes: int, networks: int) -> list[Row]:
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.emulator_server"], stdout=subprocess.PIPE, text=True
    )
    rows: list[Row] = []
    lines = LineCounter()
    logging.getLogger().addHandler(lines)
    logging.getLogger().setLevel(logging.INFO)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            api = Client(url, session)
            started = time.monotonic()
            await populate(api, nodes, networks)
            rows.append(("populate (test client)", f"{time.monotonic() - started:.1f} s", ""))
            base = (await counts(api))["writes"]
            rss_before = _rss_mb()
            lines.lines = 0
            async with operator(url) as op:
                started = time.monotonic()
                took = await converged(op, nodes) - started
                cold = (await counts(api))["writes"] - base
                assert op.api is not None
                own = sum(op.api.writes.values())
                detail = ", ".join(f"{k}: {v}" for k, v in sorted(op.api.writes.items()))
                rows.append(("cold start: time to converge", f"{took:.1f} s", ""))
                rows.append(("cold start: API writes", str(cold), f"operator counted {own}"))
                rows.append(("  of which", "", detail))
                rows.append(("cold start: log lines", str(lines.lines), "INFO and above"))
                rows.append(
                    (
                        "operator RSS after converging / peak",
                        f"{_rss_mb():.0f} / {max(_peak_mb(), _rss_mb()):.0f} MB",
                        f"{rss_before:.0f} MB before start (bench process)",
                    )
                )
                mark = (await counts(api))["writes"]
                assert op.reconciler is not None
                op.reconciler.resync()
                started = time.monotonic()
                took = await converged(op, nodes) - started
                writes = (await counts(api))["writes"] - mark
                rows.append(("no-op resync: writes", str(writes), f"pass done in {took:.1f} s"))
                for label, text, affected in (
                    ("settings change (all nodes)", SETTINGS + "logLevel: verbose\n", nodes),
                    ("settings change (override)", SETTINGS + OVERRIDE, len(range(0, nodes, 100))),
                ):
                    mark = (await counts(api))["writes"]
                    started = time.monotonic()
                    await api.request(
                        "PATCH",
                        f"/api/v1/namespaces/{NS}/configmaps/multus-settings",
                        {"data": {"settings.yaml": text}},
                    )
                    await asyncio.sleep(0.2)
                    took = await converged(op, nodes) - started
                    writes = (await counts(api))["writes"] - mark - 1
                    note = f"nodes affected {affected}; converged in {took:.1f} s"
                    rows.append((f"{label}: writes", str(writes), note))
            before = await counts(api)
            lines.lines = 0
            async with operator(url) as op:
                started = time.monotonic()
                took = await converged(op, nodes) - started
                after = await counts(api)
                rows.append(("restart to converged", f"{took:.1f} s",
                             f"{after['writes'] - before['writes']} writes,"
                             f" {after['requests'] - before['requests']} requests,"
                             f" {lines.lines} log lines"))  # fmt: skip
            rows += await failover(api, url, nodes)
    finally:
        logging.getLogger().removeHandler(lines)
        server.terminate()
        server.wait(10)
    return rows


async def failover(api: Client, url: str, nodes: int) -> list[Row]:
    """Two replicas; the leader stops gracefully (SIGTERM); the warm standby takes over."""
    lease = {"leader_election": True, "lease_duration": 15.0, "lease_renew": 2.0}
    async with operator(url, identity="a", **lease) as a:
        await converged(a, nodes)
        assert a.elector is not None
        await asyncio.wait_for(a.elector.leading.wait(), 60)
        async with operator(url, identity="b", **lease) as b:
            await asyncio.wait_for(b.synced.wait(), 600)
            mark = (await counts(api))["writes"]
            await a.stop()
            stopped = time.monotonic()
            assert b.elector is not None
            await asyncio.wait_for(b.elector.leading.wait(), 60)
            handed = time.monotonic() - stopped
            took = await converged(b, nodes) - stopped
            writes = (await counts(api))["writes"] - mark
    note = f"standby converged {took:.1f} s after the stop; {writes} writes (Lease ones included)"
    return [("graceful failover: standby leads after", f"{handed:.2f} s", note)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scales", default="1000x200,5000x1000", help="NODESxNETWORKS,...")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # one scale, rows as JSON
    args = parser.parse_args(argv)
    if args.one:
        nodes, networks = (int(n) for n in args.one.split("x"))
        rows = asyncio.run(one_scale(nodes, networks))
        print(json.dumps(rows))
        return 0
    scales = args.scales.split(",")
    results: dict[str, list[Row]] = {}
    for scale in scales:
        run = subprocess.run(
            [sys.executable, "-m", "tests.bench.bench_operator", "--one", scale],
            capture_output=True,
            text=True,
            check=True,
        )
        results[scale] = [tuple(r) for r in json.loads(run.stdout.strip().splitlines()[-1])]
    print("\nmultus-operator benchmark (nodes x networks; emulator in its own process)\n")
    measures = [r[0] for r in results[scales[0]]]
    width = max(len(m) for m in measures)
    heads = [s.replace("x", " x ") for s in scales]
    print(f"| {'':<{width}} | " + " | ".join(f"{h:>14}" for h in heads) + " | notes")
    for i, measure in enumerate(measures):
        values = [results[s][i][1] for s in scales]
        notes = " / ".join(results[s][i][2] for s in scales if results[s][i][2])
        print(f"| {measure:<{width}} | " + " | ".join(f"{v:>14}" for v in values) + f" | {notes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
