"""Driving the real `multus` executable as a container runtime would, and checking
the "nothing lost" invariants of DESIGN.md after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
MULTUS = str(VENV_BIN / "multus")
CNI_PLUGINS = "/usr/lib/cni"


def pod_args(pod: dict[str, Any], container_id: str = "") -> str:
    """`CNI_ARGS` as kubelet passes them for `pod` (as returned by the API)."""
    meta = pod["metadata"]
    return (
        f"IgnoreUnknown=1;K8S_POD_NAMESPACE={meta['namespace']};K8S_POD_NAME={meta['name']};"
        f"K8S_POD_INFRA_CONTAINER_ID={container_id};K8S_POD_UID={meta['uid']}"
    )


def wait_until(check: Any, what: str, timeout: float = 20) -> Any:
    """`check()`'s first truthy answer, polled; an AssertionError naming `what` after
    `timeout` seconds (daemons and watches act in their own time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{what} within {timeout}s")


@dataclass
class CniCall:
    rc: int
    stdout: str
    stderr: str

    @property
    def doc(self) -> Any:
        """The one JSON document on stdout (asserts there is exactly one)."""
        text = self.stdout.strip()
        assert text, f"no output (rc={self.rc}, stderr={self.stderr!r})"
        assert "Traceback" not in self.stdout
        return json.loads(text)


def run_multus(
    command: str,
    conf: dict[str, Any] | bytes | str,
    *,
    container_id: str = "",
    netns: str = "",
    ifname: str = "eth0",
    cni_path: str = CNI_PLUGINS,
    cni_args: str = "",
    extra_env: dict[str, str] | None = None,
    drop_env: tuple[str, ...] = (),
    timeout: float = 120,
    executable: str = MULTUS,
    node: str = "",
) -> CniCall:
    """Exec `multus` once with the CNI environment; empty CNI_* vars are left out.

    `node` names a network namespace to run it in (as a runtime on that node would),
    so the delegates' host-side links and addresses stay out of the machine's netns."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env.update(
        {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns,
            "CNI_IFNAME": ifname,
            "CNI_PATH": cni_path,
            "CNI_ARGS": cni_args,
        }
    )
    env = {k: v for k, v in env.items() if v != "" or not k.startswith("CNI_")}
    if extra_env:
        env.update(extra_env)
    for name in drop_env:
        env.pop(name, None)
    if isinstance(conf, dict):
        stdin = json.dumps(conf).encode()
    elif isinstance(conf, str):
        stdin = conf.encode()
    else:
        stdin = conf
    argv = ["ip", "netns", "exec", node, executable] if node else [executable]
    proc = subprocess.run(
        argv, input=stdin, env=env, capture_output=True, timeout=timeout, check=False
    )
    return CniCall(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


def ip(*args: str, check: bool = True) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


@contextmanager
def netns(prefix: str) -> Iterator[str]:
    """A fresh network namespace; yields its path; deleted afterwards."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    ip("netns", "add", name)
    try:
        yield f"/var/run/netns/{name}"
    finally:
        ip("netns", "del", name, check=False)


def host_links(netns: str = "") -> set[str]:
    """Names of the links of the host netns, or of netns `netns` (to compare against a
    baseline)."""
    out = ip(*(("-n", netns) if netns else ()), "-o", "link", "show")
    names = set()
    for line in out.splitlines():
        name = line.split(":", 2)[1].strip().split("@")[0]
        names.add(name)
    return names


def leases(data_dir: str | Path) -> list[Path]:
    """host-local lease files (one per allocated IP) under `data_dir`."""
    root = Path(data_dir)
    if not root.exists():
        return []
    keep = {"lock"}
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.name not in keep and not p.name.startswith("last_reserved_ip")
    )


def cache_records(cni_dir: str | Path) -> list[Path]:
    root = Path(cni_dir) / "attachments"
    return sorted(root.iterdir()) if root.exists() else []


def assert_clean(
    cni_dir: str | Path, data_dir: str | Path, baseline_links: set[str], netns: str = ""
) -> None:
    """Invariants I1-I3: no leases, no records or temp files, no new links on the host
    (or in the node netns `netns`)."""
    assert leases(data_dir) == [], f"leaked leases: {leases(data_dir)}"
    assert cache_records(cni_dir) == [], f"leaked records: {cache_records(cni_dir)}"
    tmp = [p for p in Path(cni_dir).rglob("*.tmp")] if Path(cni_dir).exists() else []
    assert tmp == [], f"temp files left: {tmp}"
    extra = host_links(netns) - baseline_links
    assert not extra, f"stray host links: {sorted(extra)}"
