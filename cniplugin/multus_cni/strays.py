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
    callers = _callers()
    spared = {os.getpgrp()}
    for caller in callers:
        try:
            spared.add(os.getpgid(caller))
        except OSError:
            pass
    killed = 0
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return 0
    for pid in pids:
        if pid == os.getpid() or pid in callers:
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
            if group in spared:
                continue
            if group != pid and _leader_is_other(group, needle_cid):
                # Every delegate leads its own group. This is a process in someone else's
                # group: a thick-mode shim still exiting in the runtime's group, whose
                # other members (the runtime itself) must live.
                spared.add(group)
                continue
            os.killpg(group, SIGKILL)
            spared.add(group)  # its other members are gone with it: one kill per group
            killed += 1
            log.error(f"killed stray delegate process group {group} of an interrupted ADD")
        except OSError:
            continue
    return killed


def _leader_is_other(group: int, needle_cid: bytes) -> bool:
    """Whether process group `group` is led by a live process that is not an ADD of
    this container (a group whose leader is gone is an orphaned delegate tree)."""
    try:
        with open(f"/proc/{group}/environ", "rb") as handle:
            environ = handle.read().split(b"\0")
    except OSError:
        return not os.path.exists(f"/proc/{group}")
    return needle_cid not in environ or b"CNI_COMMAND=ADD" not in environ


def _callers() -> set[int]:
    """Our parent chain. A caller in its own ADD for this container (a meta-plugin that
    runs us as its delegate and now DELs us as its rollback) has the same CNI
    environment as a stray, and must not be killed."""
    found: set[int] = set()
    pid = os.getppid()
    while pid > 1 and pid not in found:
        found.add(pid)
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses
                pid = int(handle.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found
