"""Which pod holds which VF, kept on the node (never in the NodeState).

Under the cache dir (`MULTUS_SRIOV_CACHE_DIR`, default /var/lib/cni/multus/sriov):

    allocations/<vf pci>.json   one record per VF in use: the attachment (container id,
                                ifname, netns path and inode), the VF's original state,
                                and, once ADD finished, its result
    locks/pf-<pf pci>.lock      held while a free VF of that PF is picked
    locks/vf-<vf pci>.lock      held for a whole ADD or DEL of that VF

A record is written before the VF is touched (state "adding") so a DEL after a kill -9
knows what to restore. A record whose netns is gone (or is another netns by now) is
stale: its pod died without a DEL reaching us, and the VF is reclaimed.
"""

from __future__ import annotations

import fcntl
import os
import time

from multus_cni import cnijson
from multus_cni.errors import IoFailure, TryAgainLater
from multus_cni.fsutil import ensure_dir, remove, write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KIND = "multusSriovAllocationV1"


class Lock:
    """An flock on a lock file; `timeout` 0 tries once."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def acquire(self, timeout: float | None) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if deadline is None else fcntl.LOCK_NB))
                self.fd = fd
                return True
            except BlockingIOError:
                if deadline is None or time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(0.02)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def netns_id(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_dev, st.st_ino]


class Allocations:
    def __init__(self, cache_dir: str) -> None:
        self.records = os.path.join(cache_dir, "allocations")
        self.locks = os.path.join(cache_dir, "locks")
        self.cache_dir = cache_dir

    def prepare(self) -> None:
        try:
            for directory in (self.cache_dir, self.records, self.locks):
                ensure_dir(directory)
        except OSError as exc:
            raise IoFailure(
                f"SR-IOV cache dir: cannot create {exc.filename}: {exc.strerror}"
            ) from None

    def _lock(self, name: str) -> Lock:
        return Lock(os.path.join(self.locks, f"{name}.lock"))

    def pf_lock(self, pf_pci: str) -> Lock:
        return self._lock(f"pf-{pf_pci}")

    def try_vf_lock(self, vf_pci: str) -> Lock | None:
        """VF `vf_pci`'s lock if no other ADD or DEL holds it now."""
        lock = self._lock(f"vf-{vf_pci}")
        return lock if lock.acquire(0) else None

    def vf_lock(self, vf_pci: str, timeout: float) -> Lock:
        lock = self._lock(f"vf-{vf_pci}")
        if not lock.acquire(timeout):
            raise TryAgainLater(
                f"VF {vf_pci}: another ADD or DEL holds it (waited {timeout:g}s); try again"
            )
        return lock

    def path(self, vf_pci: str) -> str:
        return os.path.join(self.records, f"{vf_pci}.json")

    def load(self, vf_pci: str, quarantine: bool = True) -> dict[str, Any] | None:
        """The record of VF `vf_pci` (None: none). One that is not ours to trust is moved
        aside, unless `quarantine` is off (a reader that must change nothing: discovery)."""
        try:
            with open(self.path(vf_pci), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IoFailure(f"allocation record {self.path(vf_pci)}: {exc.strerror}") from None
        try:
            record = cnijson.loads(data)
        except ValueError:
            record = None
        if not isinstance(record, dict) or record.get("kind") != KIND:
            if quarantine:
                # Half-written records cannot exist (atomic writes); anything else is not
                # ours to trust, and must not hold the VF for ever: move it aside.
                aside = self.path(vf_pci) + f".corrupt.{int(time.time())}"
                os.replace(self.path(vf_pci), aside)
            return None
        return record

    def save(self, record: dict[str, Any]) -> None:
        record["kind"] = KIND
        try:
            write_atomic(self.path(record["pciAddress"]), cnijson.dumps(record).encode())
        except OSError as exc:
            raise IoFailure(f"cannot write allocation record: {exc.strerror}") from None

    def delete(self, vf_pci: str) -> None:
        remove(self.path(vf_pci))

    def all(self, quarantine: bool = True) -> list[dict[str, Any]]:
        try:
            names = sorted(os.listdir(self.records))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                try:
                    record = self.load(name[: -len(".json")], quarantine)
                except (IoFailure, OSError):
                    continue
                if record is not None:
                    found.append(record)
        return found

    def find(self, container_id: str, ifname: str) -> dict[str, Any] | None:
        """The record of one attachment (a scan: a node has at most a few hundred VFs)."""
        return next(
            (
                r
                for r in self.all()
                if r.get("containerId") == container_id and r.get("ifName") == ifname
            ),
            None,
        )


def is_stale(record: dict[str, Any]) -> bool:
    """The pod of this record is gone: its netns path no longer exists or is now a
    different netns (the path was reused)."""
    path = str(record.get("netns") or "")
    if not path:
        return True
    now = netns_id(path)
    return now is None or now != record.get("netnsId")
