"""Finding delegates left running by an ADD that was killed mid-way.

Delegates run in their own process group (so a timeout can kill their whole tree),
which also means they outlive a `kill -9` of the plugin. Before DEL undoes an
interrupted ADD it stops them, found by the CNI environment they were given.
"""

from __future__ import annotations

import os

from .logs import log

SIGKILL = 9  # Linux; the `signal` module would import `enum` (~3 ms)


def kill_stray_adds(container_id: str) -> int:
    """SIGKILL the process group of every running ADD for `container_id`; how many."""
    needle_cid = f"CNI_CONTAINERID={container_id}".encode()
    own_group = os.getpgrp()
    killed = 0
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
        except OSError:
            continue
        if needle_cid not in environ or b"CNI_COMMAND=ADD" not in environ:
            continue
        try:
            group = os.getpgid(pid)
            if group == own_group:
                continue
            os.killpg(group, SIGKILL)
            killed += 1
            log.error(f"killed stray delegate process group {group} of an interrupted ADD")
        except OSError:
            continue
    return killed
