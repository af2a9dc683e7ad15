"""A simulated node for real-plugin tests: a network namespace that plays the host.

`multus` and its delegates run inside the node netns (`ip netns exec`), so bridges,
host veth ends, gateway addresses and forwarding sysctls land there and never on the
machine's own netns, where other test suites run at the same time. Pods are further
network namespaces. Everything carries the caller's prefix and is removed on exit.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from .cni import CNI_PLUGINS, MULTUS, CniCall, cache_records, host_links, ip, leases, run_multus

NETNS_DIR = "/var/run/netns"


PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def record_outcome(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A `pytest_runtest_makereport` hook for the real-plugin conftests (assign it to that
    name there): stashes whether the test passed, for `checked_node`."""
    report = yield
    if report.when == "call":
        item.stash[PASSED] = report.passed
    return report


@contextmanager
def checked_node(prefix: str, root: Path, request: pytest.FixtureRequest) -> Iterator[Node]:
    """`Node.create` for a fixture, plus the "nothing lost" invariants: after a passing
    test, every pod is deleted and the node must be as it started: no lease, no cache
    record, lock or temp file, no stray link (in the node or on the machine's netns).
    Needs `record_outcome` as the conftest's `pytest_runtest_makereport`."""
    machine_links = {n for n in host_links() if n.startswith(prefix)}
    with Node.create(prefix, root) as node:
        yield node
        if request.node.stash.get(PASSED, False):
            for pod in list(node.pods):
                node.delete_pod(f"{NETNS_DIR}/{pod}")
            problems = node.problems(settle=5)
            leaked = {n for n in host_links() if n.startswith(prefix)} - machine_links
            if leaked:
                problems.append(f"links on the machine's own netns: {sorted(leaked)}")
            assert not problems, "invariants broken after the test: " + "; ".join(problems)


def missing_prerequisites(*tools: str) -> str:
    """Why the real-plugin tests cannot run on this machine ("" if they can): they need
    root, Debian's plugins, the multus console script, `ip` and the extra `tools`."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not os.path.exists(os.path.join(CNI_PLUGINS, "bridge")):
        return f"needs Debian's containernetworking-plugins in {CNI_PLUGINS}"
    missing = [tool for tool in ("ip", *tools) if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} on PATH (iproute2, util-linux)"
    if not os.path.exists(MULTUS):
        return f"needs the multus console script at {MULTUS}"
    return ""


def unique(prefix: str) -> str:
    """A name with `prefix` that fits a netns or (up to 15 bytes) a link name."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


class Node:
    """The node netns plus the node's state directories (under `root`).

    `expected_links` is what the node netns holds when no pod is attached: its `lo`
    and whatever the test set up on purpose (bridges, the veth pair host-device uses).
    """

    def __init__(self, name: str, root: Path, cni_path: str = CNI_PLUGINS) -> None:
        self.name = name
        self.root = root
        self.cni_path = cni_path
        self.cni_dir = root / "cni"
        self.data_dir = root / "ipam"
        self.conf_dir = root / "net.d"
        self.expected_links = {"lo"}
        self.pods: list[str] = []

    @classmethod
    @contextmanager
    def create(cls, prefix: str, root: Path, cni_path: str = CNI_PLUGINS) -> Iterator[Node]:
        """A fresh node netns (and its pods) that is deleted on exit, even on failure."""
        node = cls(unique(prefix), root, cni_path)
        ip("netns", "add", node.name)
        try:
            node.ip("link", "set", "lo", "up")
            yield node
        finally:
            for pod in node.pods:
                ip("netns", "del", pod, check=False)
            ip("netns", "del", node.name, check=False)

    # ---- the node's own network ----

    def ip(self, *args: str, check: bool = True) -> str:
        return ip("-n", self.name, *args, check=check)

    def links(self) -> set[str]:
        return host_links(self.name)

    def add_bridge(self, name: str) -> str:
        """A bridge made beforehand, as a cluster network's (flannel's cni0) would be."""
        self.ip("link", "add", name, "type", "bridge")
        self.ip("link", "set", name, "up")
        self.expected_links.add(name)
        return name

    def add_veth(self, name: str, peer: str) -> tuple[str, str]:
        """A veth pair on the node: one end stands in for a NIC (SR-IOV VF) that
        host-device moves into a pod and gives back on DEL."""
        self.ip("link", "add", name, "type", "veth", "peer", "name", peer)
        self.expected_links |= {name, peer}
        return name, peer

    # ---- pods ----

    def add_pod(self, prefix: str) -> str:
        """A pod's network namespace; its path (as CNI_NETNS)."""
        name = unique(prefix)
        ip("netns", "add", name)
        self.pods.append(name)
        return f"{NETNS_DIR}/{name}"

    def delete_pod(self, netns: str) -> None:
        name = os.path.basename(netns)
        ip("netns", "del", name)
        self.pods.remove(name)

    @staticmethod
    def pod_ip(netns: str, *args: str, check: bool = True) -> str:
        return ip("-n", os.path.basename(netns), *args, check=check)

    @staticmethod
    def pod_exec(netns: str, *argv: str) -> str:
        """Run a command inside the pod's netns; its stdout."""
        proc = subprocess.run(
            ["ip", "netns", "exec", os.path.basename(netns), *argv],
            capture_output=True,
            text=True,
            check=True,
        )
        return proc.stdout

    @classmethod
    def pod_reaches(cls, netns: str, address: str, port: int = 9) -> bool:
        """Whether a TCP SYN from the pod to `address` gets an answer. An answer of
        "refused" (RST) counts: it proves routing and ARP work both ways, with no server
        and no ping binary needed."""
        probe = (
            "import socket, sys\n"
            "try:\n"
            f"    socket.create_connection(({address!r}, {port}), timeout=2).close()\n"
            "except ConnectionRefusedError:\n"
            "    pass\n"
            "except OSError:\n"
            "    sys.exit(1)\n"
        )
        proc = subprocess.run(
            ["ip", "netns", "exec", os.path.basename(netns), sys.executable, "-c", probe],
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0

    @classmethod
    def pod_links(cls, netns: str) -> set[str]:
        return host_links(os.path.basename(netns))

    @classmethod
    def pod_addresses(cls, netns: str) -> dict[str, list[str]]:
        """IPv4 addresses (CIDR) per interface inside the pod."""
        doc = json.loads(cls.pod_ip(netns, "-j", "-4", "addr", "show"))
        return {
            link["ifname"]: [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", [])]
            for link in doc
        }

    @classmethod
    def pod_routes(cls, netns: str) -> list[dict[str, Any]]:
        routes: list[dict[str, Any]] = json.loads(cls.pod_ip(netns, "-j", "-4", "route", "show"))
        return routes

    # ---- confs and calls ----

    def host_local(self, subnet: str, **extra: Any) -> dict[str, Any]:
        """host-local IPAM keeping its leases under this node's data dir."""
        return {"type": "host-local", "subnet": subnet, "dataDir": str(self.data_dir), **extra}

    def conf(
        self, delegates: list[dict[str, Any]], *, name: str = "mia-net", **extra: Any
    ) -> dict[str, Any]:
        """A `"type": "multus"` conf whose state (cache, leases) lives under this node."""
        conf: dict[str, Any] = {
            "name": name,
            "type": "multus",
            "cniDir": str(self.cni_dir),
            "binDir": CNI_PLUGINS,
            "delegates": copy.deepcopy(delegates),
        }
        conf.update(extra)
        return conf

    def write_conf(self, relpath: str, doc: dict[str, Any]) -> Path:
        """A delegate conf file under this node's conf dir (for clusterNetwork etc.)."""
        path = self.conf_dir / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))
        return path

    def run(
        self,
        command: str,
        conf: dict[str, Any] | bytes | str,
        *,
        container_id: str = "",
        netns: str = "",
        ifname: str = "eth0",
        **kwargs: Any,
    ) -> CniCall:
        kwargs.setdefault("cni_path", self.cni_path)
        return run_multus(
            command,
            conf,
            container_id=container_id,
            netns=netns,
            ifname=ifname,
            node=self.name,
            **kwargs,
        )

    # ---- the "nothing lost" invariants ----

    def problems(self, settle: float = 0.0) -> list[str]:
        """What breaks DESIGN.md's I1-I3 right now, with no pod attached.

        The kernel tears a deleted netns down asynchronously, taking the node ends of its
        veths with it a moment later: `settle` is how long to wait for that."""
        deadline = time.monotonic() + settle
        while self.links() != self.expected_links and time.monotonic() < deadline:
            time.sleep(0.05)
        found: list[str] = []
        if leases(self.data_dir):
            found.append(f"leases left: {[str(p) for p in leases(self.data_dir)]}")
        if cache_records(self.cni_dir):
            found.append(f"cache records left: {[p.name for p in cache_records(self.cni_dir)]}")
        if self.cni_dir.exists():
            tmp = sorted(str(p) for p in self.cni_dir.rglob("*.tmp"))
            if tmp:
                found.append(f"temp files left: {tmp}")
            locks = self.cni_dir / "locks"
            if locks.exists() and any(locks.iterdir()):
                found.append(f"lock files left: {sorted(p.name for p in locks.iterdir())}")
            found += _bad_modes(self.cni_dir)
        extra = self.links() - self.expected_links
        missing = self.expected_links - self.links()
        if extra:
            found.append(f"stray links on the node: {sorted(extra)}")
        if missing:
            found.append(f"links gone from the node: {sorted(missing)}")
        return found


def _bad_modes(cni_dir: Path) -> list[str]:
    """The cache is private to root: directories 0700, files 0600."""
    bad: list[str] = []
    for path in [cni_dir, *cni_dir.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        if mode != want:
            bad.append(f"{path} has mode {mode:o}, not {want:o}")
    return bad


class Canary:
    """An executable that records every run: put where no conf may ever reach it."""

    def __init__(self, path: Path, marker: Path) -> None:
        self.path = path
        self.marker = marker

    @classmethod
    def install(cls, directory: Path, name: str = "canary") -> Canary:
        directory.mkdir(parents=True, exist_ok=True)
        marker = directory.parent / f"{name}.ran"
        path = directory / name
        path.write_text(
            "#!/bin/sh\n"
            f'echo "$CNI_COMMAND" >> "{marker}"\n'
            'echo \'{"cniVersion":"1.0.0","interfaces":[],"ips":[],"dns":{}}\'\n'
        )
        path.chmod(0o755)
        return cls(path, marker)

    @property
    def ran(self) -> bool:
        return self.marker.exists()


def bridge_delegate(node: Node, bridge: str, subnet: str, **extra: Any) -> dict[str, Any]:
    """A `bridge` + host-local delegate: the stand-in for flannel / a cluster network."""
    return {"type": "bridge", "bridge": bridge, "ipam": node.host_local(subnet), **extra}


def ptp_delegate(node: Node, subnet: str, **extra: Any) -> dict[str, Any]:
    return {"type": "ptp", "ipam": node.host_local(subnet), **extra}
