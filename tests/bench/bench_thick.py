"""Thick mode against thin mode and the delegate calls made directly: ADD+DEL of a pod
with 3 networks from network objects, side by side in one run.

- direct: the three delegates' own ADDs and DELs, exec'd as multus would call them;
- thin: the `multus` executable (reads the pod and its NADs from the API each ADD);
- thick (C shim) and thick (Python shim): `multus-node` serving the same engine from
  its warm caches, reached through each shim.

Every multus path writes the network-status patch and one Event per attachment inside
the ADD, and fsyncs its records. The three networks are NetworkAttachmentDefinitions
(the cluster network by `clusterNetwork`, two more by the pod's annotation): bridge +
host-local, host-device + host-local, host-device. The API is the node tests' emulator
(kmock with watches) on loopback inside a throwaway node netns (prefix `mnb`); API
requests per ADD are counted there. Then the daemon's RSS: idle, and after 200 thick
cycles. Runs are interleaved, order rotated; medians are printed.

Run as root: `.venv/bin/python -m tests.bench.bench_thick [--runs N]` (not in make test).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NODE = "mnb-bench-node"
FLANNEL = "10.208.0.0/24"
SRIOV = "10.208.1.0/24"
POD_NS = "mnbpod"


def env(command: str, ifname: str, cni_args: str, netns: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    return base | {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "mnbbench",
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_PATH": "/usr/lib/cni",
        "CNI_ARGS": cni_args,
    }


def run(argv: list[str], stdin: bytes, environ: dict[str, str]) -> None:
    proc = subprocess.run(argv, input=stdin, env=environ, capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(
            f"{argv[0]} {environ['CNI_COMMAND']} failed: {proc.stdout!r} {proc.stderr!r}"
        )


class Mode:
    def __init__(self, name: str) -> None:
        self.name = name
        self.times: list[float] = []
        self.reads: list[int] = []
        self.writes: list[int] = []


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def inner(runs: int, rss_cycles: int) -> None:
    sys.path.insert(0, str(REPO))
    from tests.node.conftest import NODE_NAME, nad, node_pod
    from tests.node.emulator import WatchApi
    from tests.support.cni import pod_args
    from tests.support.lab import Node

    root = Path(tempfile.mkdtemp(prefix="mnb-"))
    node = Node(NODE, root)  # this process runs inside that netns already
    node.conf_dir.mkdir(parents=True)
    api = WatchApi()
    netns = f"/var/run/netns/{POD_NS}"
    kubeconfig = api.kubeconfig(root)
    bridge = node.add_bridge("mnbbr0")
    for vf in ("mnbvf1", "mnbvf2"):
        node.add_veth(vf, vf + "p")
    cluster = {
        "type": "bridge",
        "bridge": bridge,
        "isDefaultGateway": True,
        "ipam": node.host_local(FLANNEL),
    }
    sriov = {"type": "host-device", "device": "mnbvf1", "ipam": node.host_local(SRIOV)}
    vlan = {"type": "host-device", "device": "mnbvf2"}
    for name, namespace, conf in (
        ("cluster-net", "kube-system", cluster),
        ("sriov-nad", "default", sriov),
        ("vlan-nad", "default", vlan),
    ):
        nad(api, name, {"cniVersion": "1.0.0", **conf}, namespace)
    cni_args = pod_args(node_pod(api, "bench", "sriov-nad, vlan-nad"), "mnbbench")
    socket_dir = root / "run"
    conf = {
        "cniVersion": "1.0.0",
        "name": "mnb-bench",
        "clusterNetwork": "cluster-net",
        "kubeconfig": str(kubeconfig),
        "cniDir": str(node.cni_dir),
        "confDir": str(node.conf_dir),
        "binDir": "/usr/lib/cni",
    }
    thin = json.dumps({**conf, "type": "multus"}).encode()
    thick = json.dumps({**conf, "type": "multus-py-shim", "daemonSocketDir": str(socket_dir)})
    daemon_log = open(root / "daemon.log", "wb")  # noqa: SIM115 (open for the whole run)
    daemon = subprocess.Popen(
        [
            str(BIN / "multus-node"),
            "--node-name",
            NODE_NAME,
            "--cni-bin-dir",
            str(root / "bin"),
            "--cni-path",
            "/usr/lib/cni",
            "--cni-conf-dir",
            str(node.conf_dir),
            "--socket-dir",
            str(socket_dir),
            "--cni-cache-dir",
            str(node.cni_dir),
            "--conf-source",
            "none",
            "--metrics-port",
            "0",
            "--sweep-interval",
            "0",
            "--shim-binary",
            str(REPO / "build" / "multus-shim"),
            "--token-file",
            "",
            "--log-level",
            os.environ.get("MNB_LOG_LEVEL", "info"),
        ],
        env={"PATH": os.environ["PATH"], "KUBECONFIG": str(kubeconfig)},
        stdout=daemon_log,
        stderr=subprocess.STDOUT,
    )
    shims = {
        "thick (C shim)": str(root / "bin" / "multus-py-shim"),
        "thick (Python shim)": str(BIN / "multus-shim-py"),
    }
    try:
        deadline = time.monotonic() + 30
        while (
            not (socket_dir / "multus.sock").exists()
            or len([q for q in api.queries() if q[2].get("watch")]) < 3
        ):
            if time.monotonic() > deadline:
                raise SystemExit("multus-node did not start: " + (root / "daemon.log").read_text())
            time.sleep(0.1)
        time.sleep(2)  # its first NodeState write and plugin scan are done
        idle_rss = rss_kib(daemon.pid)
        names = [
            ("direct delegate calls", None),
            ("thin (multus)", str(BIN / "multus")),
            *shims.items(),
        ]
        modes = [Mode(name) for name, _ in names]
        calls = [
            ("/usr/lib/cni/bridge", "eth0", {"name": "cluster-net", **cluster}),
            ("/usr/lib/cni/host-device", "net1", {"name": "sriov-nad", **sriov}),
            ("/usr/lib/cni/host-device", "net2", {"name": "vlan-nad", **vlan}),
        ]

        def direct() -> None:
            for binary, ifname, body in calls:
                stdin = json.dumps({"cniVersion": "1.0.0", **body}).encode()
                run([binary], stdin, env("ADD", ifname, "IgnoreUnknown=1", netns))
            for binary, ifname, body in reversed(calls):
                stdin = json.dumps({"cniVersion": "1.0.0", **body}).encode()
                run([binary], stdin, env("DEL", ifname, "IgnoreUnknown=1", netns))

        def through(executable: str, stdin: bytes) -> Any:
            def cycle() -> None:
                run([executable], stdin, env("ADD", "eth0", cni_args, netns))
                run([executable], stdin, env("DEL", "eth0", cni_args, netns))

            return cycle

        cycles = [direct, through(names[1][1] or "", thin)]
        cycles += [through(path, thick.encode()) for path in shims.values()]
        for _ in range(3):  # page cache, VERSION caches, keep-alive connections
            for cycle in cycles:
                cycle()
        api.forget()
        for i in range(runs):
            order = list(range(len(modes)))
            order = order[i % len(order) :] + order[: i % len(order)]
            for index in order:
                # kmock scans its request history and every object per request: keep both
                # short, so the emulator costs the same in every cycle
                api.forget()
                mark = api.call(lambda: len(api.emulator.queries))
                start = time.perf_counter()
                cycles[index]()
                modes[index].times.append(time.perf_counter() - start)
                if index:  # the requests of the cycle, counted outside the timing (a DEL
                    # makes none: they are the ADD's)
                    cycle_requests = api.queries()[mark:]
                    modes[index].reads.append(len(api.reads(mark)))
                    modes[index].writes.append(sum(1 for q in cycle_requests if q[0] != "GET"))
        thick_cycles = 2 * (runs + 3)
        checkpoints: list[tuple[int, int]] = []  # (thick cycles so far, RSS KiB)
        while thick_cycles < rss_cycles:
            api.forget()
            cycles[2]()
            thick_cycles += 1
            if thick_cycles % 100 == 0:
                checkpoints.append((thick_cycles, rss_kib(daemon.pid)))
        time.sleep(1)
        busy_rss = rss_kib(daemon.pid)
        phases = daemon_phases(root / "daemon.log")
    finally:
        daemon.terminate()
        daemon.wait(30)
        api.close()
    problems = node.problems(settle=5)
    if not os.environ.get("MNB_KEEP"):
        shutil.rmtree(root, ignore_errors=True)
    base = statistics.median(modes[0].times)
    print(f"ADD+DEL of a pod with 3 networks (3 NADs), {runs} interleaved runs per path")
    print(
        f"{'path':<24}{'median ms':>10}{'p90 ms':>9}{'ratio':>8}{'paired':>8}"
        f"{'API reads/ADD':>15}{'API writes/ADD':>16}"
    )
    for mode in modes:
        median = statistics.median(mode.times)
        p90 = statistics.quantiles(mode.times, n=10)[-1]
        # each run times every path back to back: the median of those per-run ratios is
        # steadier than the ratio of medians when the machine's load drifts
        paired = statistics.median(t / d for t, d in zip(mode.times, modes[0].times, strict=True))
        reads = f"{statistics.median(mode.reads):.0f}" if mode.reads else "-"
        writes = f"{statistics.median(mode.writes):.0f}" if mode.writes else "-"
        print(
            f"{mode.name:<24}{median * 1000:>10.1f}{p90 * 1000:>9.1f}{median / base:>7.2f}x"
            f"{paired:>7.2f}x{reads:>15}{writes:>16}"
        )
    print(
        "target: thick (C shim) <= 1.15x direct, 0 API reads per warm ADD "
        "(Go Multus v4.3 thick measured 2.01x here, thin 1.32-1.54x)"
    )
    print(
        f"multus-node RSS: idle {idle_rss / 1024:.1f} MiB, "
        + ", ".join(f"after {n} thick cycles {kib / 1024:.1f} MiB" for n, kib in checkpoints)
        + f", at the end ({thick_cycles}) {busy_rss / 1024:.1f} MiB"
    )
    print(
        "multus-node phases, mean ms per call: "
        + ", ".join(f"{name} {value:.1f}" for name, value in phases.items())
    )
    if problems:
        raise SystemExit("node not clean after the benchmark: " + "; ".join(problems))


def daemon_phases(log: Path) -> dict[str, float]:
    """Mean time per call of each phase, from the daemon's own histograms."""
    import urllib.request

    port = next(
        int(line.rsplit(" ", 1)[1])
        for line in log.read_text().splitlines()
        if "metrics and probes on port" in line
    )
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        name, value = line.rsplit(" ", 1)
        metric, labels = name.split("{", 1)
        key = labels.rstrip("}").split("=", 1)[1].strip('"').split('"')[0]
        if metric.endswith("_sum"):
            sums[f"{metric.split('_duration')[0][12:]}:{key}"] = float(value)
        elif metric.endswith("_count"):
            counts[f"{metric.split('_duration')[0][12:]}:{key}"] = float(value)
    return {k: 1000 * v / counts[k] for k, v in sorted(sums.items()) if counts.get(k)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rss-cycles", type=int, default=200)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(args.runs, args.rss_cycles)
        return
    for ns in (NODE, POD_NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    try:
        subprocess.run(["ip", "netns", "add", NODE], check=True)
        subprocess.run(["ip", "netns", "add", POD_NS], check=True)
        subprocess.run(["ip", "-n", NODE, "link", "set", "lo", "up"], check=True)
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                NODE,
                sys.executable,
                "-m",
                "tests.bench.bench_thick",
                "--inner",
                "--runs",
                str(args.runs),
                "--rss-cycles",
                str(args.rss_cycles),
            ],
            check=True,
            cwd=REPO,
        )
    finally:
        for ns in (POD_NS, NODE):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


if __name__ == "__main__":
    main()
