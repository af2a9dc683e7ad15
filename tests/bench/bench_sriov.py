"""SR-IOV benchmarks, measured side by side in one run:

1. ADD+DEL of one VF by our `sriov` delegate against Debian's `host-device` moving the
   same kind of link (a veth end) into a pod and back, both with host-local IPAM,
   interleaved; plus sriov with VF settings (VLAN, spoof check) on the simulated NIC.
2. What the real-NIC path adds per call: importing pyroute2 (VF settings through the PF),
   against the delegate's own imports, in fresh interpreters.
3. Discovery of a sysfs tree of 4 PFs x 64 VFs (the inventory multus-node reports), and
   multus-node's whole pass over it (netlink links, allocation records, the diff).

Run: `make bench` (root). The cycles run inside a throwaway node netns.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.bench.inside import rerun_inside

NODE = "msrbench-node"
POD = "msrbench-pod"
BIN = Path(sys.executable).parent
PLUGINS = "/usr/lib/cni"


def _run(argv: list[str], stdin: bytes, env: dict[str, str]) -> None:
    proc = subprocess.run(argv, input=stdin, env=env, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} {env['CNI_COMMAND']} failed: {proc.stdout!r} {proc.stderr!r}")


def _cycle(binary: str, conf: dict[str, object], env: dict[str, str]) -> float:
    stdin = json.dumps(conf).encode()
    start = time.perf_counter()
    _run([binary], stdin, env | {"CNI_COMMAND": "ADD"})
    _run([binary], stdin, env | {"CNI_COMMAND": "DEL"})
    return time.perf_counter() - start


def _row(name: str, series: list[float], base: float) -> str:
    med = statistics.median(series)
    p90 = statistics.quantiles(series, n=10)[-1]
    return f"{name:<44}{med * 1000:>10.1f}{p90 * 1000:>10.1f}{med / base:>8.2f}x"


def cycles(runs: int) -> None:
    from multus_sriov import simnic

    work = Path(tempfile.mkdtemp(prefix="msrbench-"))

    def ip(*args: str) -> str:
        return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout

    def facts(name: str) -> dict[str, object]:
        info = json.loads(ip("-j", "link", "show", name))[0]
        return {"mac": info["address"], "mtu": info["mtu"]}

    for a, b in (("benchpf", "benchpfp"), ("benchvf0", "benchvfp0"), ("benchhd0", "benchhdp0")):
        ip("link", "add", a, "type", "veth", "peer", "name", b)
    vf_pci = simnic.write_pf(
        str(work / "nic"),
        {"name": "benchpf", "pci": "0000:0c:00.0", **facts("benchpf")},
        [{"netdev": "benchvf0", **facts("benchvf0")}],
        vf_bus=0x0C,
    )[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env |= {
        "CNI_CONTAINERID": "bench",
        "CNI_NETNS": f"/var/run/netns/{POD}",
        "CNI_IFNAME": "net1",
        "CNI_PATH": f"{PLUGINS}:{BIN}",
        "MULTUS_SYSFS_ROOT": str(work / "nic"),
        "MULTUS_SRIOV_SIM_STATE": str(work / "sim.json"),
        "MULTUS_SRIOV_CACHE_DIR": str(work / "cache"),
        "MULTUS_SRIOV_INVENTORY": str(work / "none.json"),
        "MULTUS_SRIOV_DEVINFO_DIR": str(work / "devinfo"),
    }

    def ipam(net: str) -> dict[str, object]:
        return {"type": "host-local", "subnet": "10.66.0.0/24", "dataDir": str(work / net)}

    sriov = {
        "cniVersion": "1.0.0",
        "name": "sr",
        "type": "sriov",
        "deviceID": vf_pci,
        "ipam": ipam("sr"),
    }
    sriov_vlan = {**sriov, "name": "srv", "vlan": 210, "spoofchk": "off", "ipam": ipam("srv")}
    hostdev = {
        "cniVersion": "1.0.0",
        "name": "hd",
        "type": "host-device",
        "device": "benchhd0",
        "ipam": ipam("hd"),
    }
    paths = {
        "host-device (Debian, Go)": (f"{PLUGINS}/host-device", hostdev),
        "sriov (ours), deviceID, IPAM": (str(BIN / "sriov"), sriov),
        "sriov (ours), + VLAN/spoofchk via the PF": (str(BIN / "sriov"), sriov_vlan),
    }
    series: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(3):
        for binary, conf in paths.values():
            _cycle(binary, conf, env)
    order = list(paths)
    for i in range(runs):
        for name in order[i % len(order) :] + order[: i % len(order)]:
            binary, conf = paths[name]
            series[name].append(_cycle(binary, conf, env))
    base = statistics.median(series[order[0]])
    print(f"ADD+DEL of one VF (a veth end) with host-local IPAM, {runs} interleaved runs each")
    print(f"{'path':<44}{'median ms':>10}{'p90 ms':>10}{'ratio':>8}")
    for name in order:
        print(_row(name, series[name], base))


def imports(runs: int) -> None:
    def spawn(code: str) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - start

    cases = {
        "python -c pass": "pass",
        "the delegate's imports (sim NIC path)": "import multus_sriov.main, multus_sriov.delegate",
        "+ pyroute2 (the real NIC path)": (
            "import multus_sriov.main, multus_sriov.delegate; from pyroute2 import IPRoute"
        ),
    }
    times = {name: [spawn(code) for _ in range(runs)] for name, code in cases.items()}
    base = statistics.median(times["python -c pass"])
    print(f"\nInterpreter start + imports, {runs} fresh processes each")
    print(f"{'what':<44}{'median ms':>10}{'p90 ms':>10}{'ratio':>8}")
    for name, series in times.items():
        print(_row(name, series, base))


def discovery(runs: int) -> None:
    from multus_sriov import simnic
    from multus_sriov.discovery import discover, host_links
    from multus_sriov.vfsettings import SimVfSettings

    root = Path(tempfile.mkdtemp(prefix="msrbench-tree-"))
    sim = SimVfSettings(str(root / "sim.json"))
    for p in range(4):
        name = f"ens{p}f0"
        vfs = [
            {"netdev": f"ens{p}f0v{i}", "mac": f"02:00:00:00:{p:02x}:{i:02x}", "mtu": 1500}
            if i % 4
            else {"driver": "vfio-pci"}
            for i in range(64)
        ]
        pf = {
            "name": name,
            "pci": f"0000:{0x10 + p:02x}:00.0",
            "mac": f"b4:96:91:00:00:{p:02x}",
            "mtu": 9000,
            "speed": 100000,
            "driver": "ice",
            "device": "1593",
        }
        simnic.write_pf(str(root), pf, vfs, vf_bus=0x20 + p)
        for i in range(0, 64, 2):
            sim.apply(name, i, {"vlan": 100 + i, "trust": True})
    from multus_node.discovering import SriovReporter
    from multus_sriov.settings import Settings

    settings = Settings(
        {
            "MULTUS_SYSFS_ROOT": str(root),
            "MULTUS_SRIOV_SIM_STATE": str(root / "sim.json"),
            "MULTUS_SRIOV_CACHE_DIR": str(root / "cache"),
            "MULTUS_SRIOV_INVENTORY": str(root / "sriov-inventory.json"),
        }
    )
    published: list[object] = []
    reporter = SriovReporter(settings, published.append)
    links = host_links()  # this netns's: the tree's VF netdevs are not in it, as in a pass
    walk: list[float] = []
    passes: list[float] = []
    for _ in range(runs):  # interleaved
        start = time.perf_counter()
        doc = discover(str(root), sim, links=links)
        walk.append(time.perf_counter() - start)
        start = time.perf_counter()
        reporter.discover_once("periodic")
        passes.append(time.perf_counter() - start)
    assert len(published) == 1, "an unchanged node must be published once"
    count = sum(len(pf["vfs"]) for pf in doc["pfs"])
    base = statistics.median(walk)
    print(
        f"\nDiscovery of {len(doc['pfs'])} PFs x {count // len(doc['pfs'])} VFs ({count} VFs, "
        f"3 in 4 with a netdev in sysfs, VF settings from the simulated NIC), {runs} "
        "interleaved runs"
    )
    print(f"{'what':<44}{'median ms':>10}{'p90 ms':>10}{'ratio':>8}")
    print(_row("sysfs walk + VF settings (discover)", walk, base))
    print(_row("multus-node pass (+links, records, diff)", passes, base))
    print(
        f"{base / count * 1e6:.0f} us per VF; {len(published)} publish in {runs} passes "
        "(the node did not change)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        cycles(args.runs)
        return
    rerun_inside("tests.bench.bench_sriov", NODE, POD, ["--runs", str(args.runs)])
    imports(max(10, args.runs // 2))
    discovery(args.runs)


if __name__ == "__main__":
    main()
