"""ADD+DEL of the seed's 3-delegate conf through `multus`, against the same delegate
calls made directly, interleaved in one run; prints medians and their ratio.

Run: `make bench` (root). The whole run happens inside a throwaway "node" netns so
the host's links are untouched; the script re-executes itself there.
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
from typing import Any

from multusctl.demo import (
    NODE_NS,
    POD_NS,
    SEED_CONF,
    find_multus,
    simulated_nic,
    sriov_env,
    stand_in_conf,
)
from tests.bench.inside import rerun_inside

BIN = str(Path(sys.executable).parent)  # our sriov delegate, as `make demo` runs it
CNI_PATH = f"/usr/lib/cni:{BIN}"
SRIOV_ENV: dict[str, str] = {}


def _env(command: str, ifname: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env |= {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": "bench-pod",
        "CNI_NETNS": f"/var/run/netns/{POD_NS}",
        "CNI_IFNAME": ifname,
        "CNI_PATH": CNI_PATH,
        "CNI_ARGS": "IgnoreUnknown=1",
    }
    return env | SRIOV_ENV


def _run(argv: list[str], stdin: bytes, env: dict[str, str]) -> None:
    proc = subprocess.run(argv, input=stdin, env=env, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} {env['CNI_COMMAND']} failed: {proc.stdout!r} {proc.stderr!r}")


def direct_calls(conf: dict[str, Any]) -> list[tuple[str, str, bytes]]:
    """(binary, ifname, stdin) for each delegate, as multus would call them."""
    calls = []
    net_index = 0
    for index, delegate in enumerate(conf["delegates"]):
        if delegate.get("masterplugin"):
            ifname = "eth0"
        else:
            ifname = f"net{net_index}"
            net_index += 1
        stdin = {"cniVersion": conf["cniVersion"], "name": f"{conf['name']}-{index}", **delegate}
        where = BIN if delegate["type"] == "sriov" else "/usr/lib/cni"
        calls.append((f"{where}/{delegate['type']}", ifname, json.dumps(stdin).encode()))
    return calls


def cycle_direct(calls: list[tuple[str, str, bytes]]) -> float:
    start = time.perf_counter()
    for binary, ifname, stdin in calls:
        _run([binary], stdin, _env("ADD", ifname))
    for binary, ifname, stdin in reversed(calls):
        _run([binary], stdin, _env("DEL", ifname))
    return time.perf_counter() - start


def cycle_multus(multus: str, conf: dict[str, Any]) -> float:
    stdin = json.dumps(conf).encode()
    start = time.perf_counter()
    _run([multus], stdin, _env("ADD", "eth0"))
    _run([multus], stdin, _env("DEL", "eth0"))
    return time.perf_counter() - start


def inner(runs: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="multus-bench-"))
    conf, _ = stand_in_conf(json.loads(SEED_CONF.read_text()), work)
    simulated_nic(work)
    SRIOV_ENV.update(sriov_env(work))
    multus = find_multus()
    calls = direct_calls(conf)
    for _ in range(3):  # warm caches (page cache, VERSION cache) on both sides
        cycle_direct(calls)
        cycle_multus(multus, conf)
    direct: list[float] = []
    via: list[float] = []
    for i in range(runs):
        if i % 2:
            direct.append(cycle_direct(calls))
            via.append(cycle_multus(multus, conf))
        else:
            via.append(cycle_multus(multus, conf))
            direct.append(cycle_direct(calls))
    d, m = statistics.median(direct), statistics.median(via)
    print(f"ADD+DEL cycle of the seed's 3-delegate conf, {runs} interleaved runs each")
    print(f"{'path':<34}{'median ms':>10}{'p90 ms':>10}{'ratio':>8}")
    rows = (("direct delegate calls", direct, d), ("multus (thin, Python)", via, m))
    for name, series, med in rows:
        p90 = statistics.quantiles(series, n=10)[-1]
        print(f"{name:<34}{med * 1000:>10.1f}{p90 * 1000:>10.1f}{med / d:>8.2f}x")
    print("target: multus <= 1.50x direct (Go Multus v4.3 measured 1.54x here)")


def startup_report() -> None:
    python = sys.executable
    out = subprocess.run(
        [python, "-X", "importtime", "-c", "import multus_cni.main, multus_cni.engine"],
        capture_output=True,
        text=True,
    ).stderr.splitlines()
    ours = [line for line in out if "multus_cni" in line or "multus_rules" in line]
    total = sum(int(line.split("|")[0].split(":")[1]) for line in out[1:] if "|" in line)
    print(f"\nhot-path imports, all modules: {total} us (python -X importtime)")
    print("  self us | cumulative us | module")
    for line in ours:
        print("  " + line.split(":", 1)[1].strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(args.runs)
        return
    rerun_inside("tests.bench.bench_cycle", NODE_NS, POD_NS, ["--runs", str(args.runs)])
    startup_report()


if __name__ == "__main__":
    main()
