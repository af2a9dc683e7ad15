"""Installing and steering the fake delegate (fake_delegate.py) for fault tests.

`FakeWorld` owns a temp tree: `bin/` (the CNI_PATH and binDir, where fakes are
installed under any plugin name), `cni/` (multus's cniDir), one debug file per fake
delegate and one shared invocation log, so the order of calls across delegates shows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cni import CniCall, netns, run_multus

FAKE_SOURCE = Path(__file__).with_name("fake_delegate.py")
PREFIX = "mib"


def install_fake(directory: Path, name: str, mode: int = 0o755) -> Path:
    """Copy the fake into `directory` as plugin `name`, run by this venv's interpreter
    (`-S`: no site-packages, it needs only the standard library, and starts faster)."""
    directory.mkdir(parents=True, exist_ok=True)
    body = FAKE_SOURCE.read_text().split("\n", 1)[1]
    target = directory / name
    tmp = directory / f".{name}.{os.getpid()}.new"
    tmp.write_text(f"#!{sys.executable} -S\n{body}")
    tmp.chmod(mode)
    tmp.rename(target)  # a fresh inode: never ETXTBSY against a running copy
    return target


class FakeDelegate:
    """One delegate entry of a multus conf, backed by a fake binary and its debug file."""

    def __init__(self, world: FakeWorld, label: str, binary: str) -> None:
        self.world = world
        self.label = label
        self.binary = binary
        self.debug_file = world.root / f"{label}.debug.json"
        self.markers = world.root / "markers" / label
        self.steer()

    def steer(self, **commands: dict[str, Any]) -> None:
        """Say how the next calls behave, per command (`ADD={...}`, `DEL={...}`)."""
        doc = {
            "label": self.label,
            "log": str(self.world.log_file),
            "markers": str(self.markers),
            **commands,
        }
        self.debug_file.write_text(json.dumps(doc))

    def conf(self, **extra: Any) -> dict[str, Any]:
        return {"type": self.binary, "debugFile": str(self.debug_file), **extra}

    def calls(self, command: str | None = None) -> list[dict[str, Any]]:
        return [
            c
            for c in self.world.calls()
            if c["label"] == self.label and (command is None or c["command"] == command)
        ]

    def marker_names(self) -> list[str]:
        return sorted(p.name for p in self.markers.iterdir()) if self.markers.exists() else []


class FakeWorld:
    """One test's pod: a container id, a netns, the fakes' bin dir and multus's cniDir,
    with the checks that nothing of it is left behind."""

    def __init__(self, root: Path, netns_path: str) -> None:
        self.root = root
        self.bin_dir = root / "bin"
        self.cni_dir = root / "cni"
        self.log_file = root / "calls.jsonl"
        self.netns = netns_path
        self.container_id = f"{PREFIX}-{uuid.uuid4().hex[:12]}"
        self.bin_dir.mkdir()

    def install(self, name: str = "fake", mode: int = 0o755) -> Path:
        """Install plugin `name`; its conf-less calls (VERSION) log as label `name`."""
        path = install_fake(self.bin_dir, name, mode)
        if not Path(f"{path}.debug.json").exists():
            self.steer_binary(name)
        return path

    def steer_binary(self, name: str, **commands: dict[str, Any]) -> None:
        """Steer the calls that carry no conf (VERSION) of plugin `name`."""
        doc = {"label": name, "log": str(self.log_file), **commands}
        Path(f"{self.bin_dir / name}.debug.json").write_text(json.dumps(doc))

    def delegate(self, label: str, binary: str = "fake") -> FakeDelegate:
        if not (self.bin_dir / binary).exists():
            self.install(binary)
        return FakeDelegate(self, label, binary)

    def conf(
        self, delegates: list[dict[str, Any]], cni_version: str = "1.0.0", **extra: Any
    ) -> dict[str, Any]:
        return {
            "cniVersion": cni_version,
            "name": f"{PREFIX}-net",
            "type": "multus",
            "cniDir": str(self.cni_dir),
            "binDir": str(self.bin_dir),
            "delegateTimeout": 20,
            "delegates": delegates,
            **extra,
        }

    def run(self, command: str, conf: dict[str, Any] | bytes | str, **kwargs: Any) -> CniCall:
        kwargs.setdefault("container_id", self.container_id)
        kwargs.setdefault("netns", self.netns)
        kwargs.setdefault("cni_path", str(self.bin_dir))
        return run_multus(command, conf, **kwargs)

    def cni_env(self, command: str = "ADD", ifname: str = "eth0") -> dict[str, str]:
        """The full environment a runtime execs multus with for this pod, for tests that
        start multus themselves (Popen, a parent process, GNU time) instead of `run`."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        env.update(
            CNI_COMMAND=command,
            CNI_CONTAINERID=self.container_id,
            CNI_NETNS=self.netns,
            CNI_IFNAME=ifname,
            CNI_PATH=str(self.bin_dir),
        )
        return env

    def calls(self) -> list[dict[str, Any]]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines() if line]

    def sequence(self, *, with_version: bool = False) -> list[tuple[str, str]]:
        """(label, command) of every call so far, in order (VERSION queries left out)."""
        return [
            (c["label"], c["command"])
            for c in self.calls()
            if with_version or c["command"] != "VERSION"
        ]

    def records(self) -> list[Path]:
        root = self.cni_dir / "attachments"
        return sorted(root.iterdir()) if root.exists() else []

    def record(self, ifname: str = "eth0") -> dict[str, Any]:
        path = self.cni_dir / "attachments" / f"{self.container_id}:{ifname}.json"
        doc: dict[str, Any] = json.loads(path.read_text())
        return doc

    def temp_files(self) -> list[Path]:
        return sorted(self.cni_dir.rglob("*.tmp")) if self.cni_dir.exists() else []

    def markers(self) -> list[str]:
        root = self.root / "markers"
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    def processes(self) -> list[int]:
        """Live processes carrying this world's container id (strays, leftovers)."""
        return processes_with(f"CNI_CONTAINERID={self.container_id}")

    def assert_nothing_left(self) -> None:
        """No side effect, no record, no temp file, no lock, no process of this container."""
        assert self.markers() == [], f"side effects left: {self.markers()}"
        assert self.records() == [], f"records left: {self.records()}"
        assert self.temp_files() == [], f"temp files left: {self.temp_files()}"
        lock = self.cni_dir / "locks" / f"{self.container_id}.lock"
        assert not lock.exists(), f"lock file left: {lock}"
        assert wait_until(lambda: not self.processes(), 5), f"processes left: {self.processes()}"


def processes_with(needle: str) -> list[int]:
    """pids whose environment holds `needle` (zombies have none, so they do not count)."""
    wanted = needle.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ:
            found.append(int(entry))
    return found


def wait_until(predicate: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


def kill_processes_with(needle: str) -> None:
    """Fixture clean-up: SIGKILL whatever a failed test left behind for its container."""
    for pid in processes_with(needle):
        try:
            os.kill(pid, 9)
        except OSError:
            pass


@pytest.fixture
def world(tmp_path: Path) -> Iterator[FakeWorld]:
    """A fake-delegate world with its own pod netns; every leftover is removed after."""
    root = tmp_path / f"{PREFIX}-world"
    root.mkdir()
    with netns(PREFIX) as path:
        fake_world = FakeWorld(root, path)
        try:
            yield fake_world
        finally:
            kill_processes_with(f"CNI_CONTAINERID={fake_world.container_id}")
    shutil.rmtree(root, ignore_errors=True)


def run_fake(
    binary: Path, command: str, stdin: bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Exec an installed fake directly (testing the fake itself)."""
    full = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CNI_COMMAND": command, **(env or {})}
    return subprocess.run([str(binary)], input=stdin, env=full, capture_output=True, check=False)
