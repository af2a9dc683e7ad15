"""Stopping the delegates an interrupted ADD left running, and nothing else."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from multus_cni.strays import _callers, kill_stray_adds

Spawn = Callable[[str, str], "subprocess.Popen[bytes]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Start a shell (and its `sleep`) in its own group with a CNI environment."""
    started: list[subprocess.Popen[bytes]] = []

    def start(cid: str, command: str) -> subprocess.Popen[bytes]:
        env = {"PATH": "/usr/bin:/bin", "CNI_CONTAINERID": cid, "CNI_COMMAND": command}
        proc = subprocess.Popen(["sh", "-c", "sleep 60 & wait"], env=env, process_group=0)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_kills_the_groups_of_adds_for_that_container_only(spawn: Spawn) -> None:
    """One kill per group (the shell and its `sleep` share one)."""
    cid = f"mib-{uuid.uuid4().hex[:8]}"
    stray = spawn(cid, "ADD")
    deleting = spawn(cid, "DEL")
    other = spawn(f"{cid}x", "ADD")
    time.sleep(0.2)  # let the shells exec (their environ is readable from then on)
    assert kill_stray_adds(cid) == 1
    assert stray.wait(5) == -9
    assert deleting.poll() is None and other.poll() is None


def test_callers_are_our_parent_chain() -> None:
    callers = _callers()
    assert os.getppid() in callers and os.getpid() not in callers and 1 not in callers
