"""The attachment cache: what ADD did (or is about to do), so DEL can always undo it.

Layout under `cniDir` (default /var/lib/cni/multus), directories 0700, files 0600:

    attachments/<containerid>:<ifname>.json   one record per pod attachment
    locks/<containerid>.lock                  per-container flock
    quarantine/                               records that could not be parsed
    plugin-versions.json                      VERSION answers per plugin binary

A record is written *before* the first delegate runs (state "adding": the plan) and
rewritten after the last one succeeds (state "added": with results). A record in
state "adding" found later means an ADD died mid-way; DEL undoes all of its plan.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time

from . import cnijson
from .errors import IoFailure
from .fsutil import ensure_dir, remove, write_atomic
from .logs import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

RECORD_KIND = "multusAttachmentV1"


class CorruptRecord(Exception):
    """A record that exists but cannot be trusted (empty, truncated, not ours)."""


class ContainerLock:
    """An exclusive flock for one container id, so ADD/DEL/CHECK on it serialize.

    The lock file is removed when the container's last attachment is gone; a waiter
    that then wakes on the unlinked inode notices and locks the new file instead.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> ContainerLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)

    def release_and_remove(self) -> None:
        """Remove the lock file while still holding it (only when nothing is left)."""
        if self.fd < 0:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _well_formed(entry: Any) -> bool:
    """A delegate entry DEL can act on; anything else (damage, another layout) must send
    DEL to its fallback instead of failing the same way forever."""
    versions = entry.get("versions", []) if isinstance(entry, dict) else None
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("network"), dict)
        and isinstance(entry.get("ifName"), str)
        and isinstance(versions, list)
        and all(isinstance(v, str) for v in versions)
    )


class NoLock(ContainerLock):
    """Stands in when the lock file cannot be made (a read-only or broken cniDir): DEL
    still undoes what the records it can read say, unserialized, rather than nothing."""

    def __enter__(self) -> ContainerLock:
        return self


class AttachmentStore:
    def __init__(self, cni_dir: str) -> None:
        self.cni_dir = cni_dir
        self.records_dir = os.path.join(cni_dir, "attachments")
        self.locks_dir = os.path.join(cni_dir, "locks")
        self.quarantine_dir = os.path.join(cni_dir, "quarantine")

    def prepare(self) -> None:
        try:
            for directory in (self.cni_dir, self.records_dir, self.locks_dir):
                ensure_dir(directory)
        except OSError as exc:
            raise IoFailure(f"cniDir: cannot create {exc.filename}: {exc.strerror}") from None

    @property
    def versions_path(self) -> str:
        return os.path.join(self.cni_dir, "plugin-versions.json")

    def lock(self, container_id: str, required: bool = True) -> ContainerLock:
        """The container's lock; when it cannot be made and not `required`, a stand-in
        (logged) instead of an error."""
        path = os.path.join(self.locks_dir, f"{container_id}.lock")
        try:
            self.prepare()
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except (OSError, IoFailure) as exc:
            if required:
                if isinstance(exc, IoFailure):
                    raise
                raise IoFailure(f"cniDir: cannot create lock {path}: {exc.strerror}") from None
            log.error(f"cannot lock {path} ({exc}); going on without the lock")
            return NoLock(path)
        os.close(fd)
        return ContainerLock(path)

    def path(self, container_id: str, ifname: str) -> str:
        return os.path.join(self.records_dir, f"{container_id}:{ifname}.json")

    def load(self, container_id: str, ifname: str) -> dict[str, Any] | None:
        """The record, None when there is none; CorruptRecord when it cannot be trusted."""
        return self._read(self.path(container_id, ifname))

    def _read(self, path: str) -> dict[str, Any] | None:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None  # no record (cniDir may even be a file: then none was written)
            raise CorruptRecord(f"{path}: {exc.strerror}") from None
        try:
            record = cnijson.loads(data, cnijson.RECORD_DEPTH)
        except ValueError:
            raise CorruptRecord(f"{path}: not valid JSON ({len(data)} bytes)") from None
        if (
            not isinstance(record, dict)
            or record.get("kind") != RECORD_KIND
            or not isinstance(record.get("delegates"), list)
            or not all(_well_formed(entry) for entry in record["delegates"])
        ):
            raise CorruptRecord(f"{path}: not a {RECORD_KIND} record")
        return record

    def save(self, record: dict[str, Any]) -> None:
        record["kind"] = RECORD_KIND
        path = self.path(record["containerId"], record["ifName"])
        try:
            write_atomic(path, cnijson.dumps(record).encode())
        except OSError as exc:
            raise IoFailure(f"cannot write attachment record {path}: {exc.strerror}") from None

    def delete(self, container_id: str, ifname: str) -> None:
        """Remove the record and any temp file a writer killed before its rename left
        (callers hold the container's lock, so no live writer owns one)."""
        path = self.path(container_id, ifname)
        remove(path)
        stale = f".{os.path.basename(path)}."
        try:
            names = os.listdir(self.records_dir)
        except FileNotFoundError:
            return
        for name in names:
            if name.startswith(stale) and name.endswith(".tmp"):
                remove(os.path.join(self.records_dir, name))

    def quarantine(self, container_id: str, ifname: str, reason: str = "") -> str:
        """Move an untrusted record aside (kept for a human to look at) and say where;
        "" when it could not be moved (it is gone, or cniDir is read-only)."""
        source = self.path(container_id, ifname)
        target = os.path.join(self.quarantine_dir, f"{container_id}:{ifname}.{time.time_ns()}.json")
        try:
            ensure_dir(self.quarantine_dir)
            os.rename(source, target)
        except FileNotFoundError:
            return ""
        except OSError as exc:
            log.error(f"attachment record {source} cannot be trusted ({reason}) or moved: {exc}")
            return ""
        log.error(f"attachment record {source} cannot be trusted ({reason}); moved to {target}")
        return target

    def has_records(self, container_id: str) -> bool:
        return any(True for _ in self.ifnames(container_id))

    def ifnames(self, container_id: str) -> Iterator[str]:
        """The interface names of the container's records (from the file names)."""
        for cid, ifname in self.record_keys():
            if cid == container_id:
                yield ifname

    def record_keys(self) -> Iterator[tuple[str, str]]:
        """(container id, ifname) of every record file, from its name (a damaged record
        is listed too: whoever reads it reports or quarantines it)."""
        try:
            names = sorted(os.listdir(self.records_dir))
        except OSError:
            return
        for name in names:
            if not name.endswith(".json") or name.startswith("."):
                continue
            cid, sep, ifname = name[: -len(".json")].partition(":")
            if sep and cid and ifname:
                yield cid, ifname
