"""The attachment store and the per-container lock (no root needed)."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from multus_cni import fsutil
from multus_cni.cache import RECORD_KIND, AttachmentStore, ContainerLock, CorruptRecord
from multus_cni.errors import IoFailure


def record(cid: str = "c1", ifname: str = "eth0", **extra: Any) -> dict[str, Any]:
    return {"containerId": cid, "ifName": ifname, "state": "added", "delegates": [], **extra}


@pytest.fixture
def store(tmp_path: Path) -> AttachmentStore:
    return AttachmentStore(str(tmp_path / "mib-cache"))


def test_save_load_round_trip_with_private_modes(store: AttachmentStore) -> None:
    store.prepare()
    saved = record(result={"ips": [1]})
    store.save(saved)
    assert store.load("c1", "eth0") == {**saved, "kind": RECORD_KIND}
    assert store.load("c1", "net1") is None
    path = Path(store.path("c1", "eth0"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (store.cni_dir, store.records_dir, store.locks_dir):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert list(store.record_keys()) == [("c1", "eth0")]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"kind": "multusAttach',
        b"\x00\x00\x00",
        b"[]",
        b'{"kind": "other", "delegates": []}',
        json.dumps({"kind": RECORD_KIND, "delegates": {}}).encode(),
        b"[" * 100_000 + b"]" * 100_000,
        json.dumps({"kind": RECORD_KIND, "delegates": [None]}).encode(),
        json.dumps({"kind": RECORD_KIND, "delegates": [{"ifName": "eth0"}]}).encode(),
        json.dumps({"kind": RECORD_KIND, "delegates": [{"network": {}}]}).encode(),
        json.dumps(
            {"kind": RECORD_KIND, "delegates": [{"network": {}, "ifName": "e", "versions": [1]}]}
        ).encode(),
    ],
)
def test_untrusted_records_are_corrupt_and_quarantined(
    store: AttachmentStore, content: bytes
) -> None:
    store.prepare()
    Path(store.path("c1", "eth0")).write_bytes(content)
    with pytest.raises(CorruptRecord):
        store.load("c1", "eth0")
    # record_keys() lists it (from its file name): whoever reads it reports or quarantines it
    assert list(store.record_keys()) == [("c1", "eth0")]
    target = store.quarantine("c1", "eth0", "damaged")
    assert list(store.record_keys()) == []
    assert Path(target).read_bytes() == content
    assert Path(target).parent == Path(store.quarantine_dir)
    assert store.load("c1", "eth0") is None
    assert store.quarantine("c1", "eth0") == ""  # nothing left to move


def test_unreadable_record_is_corrupt(store: AttachmentStore) -> None:
    store.prepare()
    os.mkdir(store.path("c1", "eth0"))  # EISDIR
    with pytest.raises(CorruptRecord):
        store.load("c1", "eth0")


def test_has_records_and_delete(store: AttachmentStore) -> None:
    store.prepare()
    assert not store.has_records("c1")
    store.save(record("c1", "eth0"))
    store.save(record("c1", "net1"))
    store.save(record("c2", "eth0"))
    assert store.has_records("c1")
    store.delete("c1", "eth0")
    store.delete("c1", "eth0")  # idempotent
    assert store.has_records("c1")
    store.delete("c1", "net1")
    assert not store.has_records("c1") and store.has_records("c2")
    assert sorted(store.record_keys()) == [("c2", "eth0")]


def test_ids_and_ifnames_with_dashes_never_share_a_record(store: AttachmentStore) -> None:
    store.prepare()
    store.save(record("a", "b-eth0"))
    store.save(record("a-b", "eth0"))
    assert store.load("a", "b-eth0") == {**record("a", "b-eth0"), "kind": RECORD_KIND}
    assert store.load("a-b", "eth0") == {**record("a-b", "eth0"), "kind": RECORD_KIND}
    store.delete("a", "b-eth0")
    assert not store.has_records("a")
    assert store.has_records("a-b")


def test_delete_removes_a_killed_writers_temp_file_only(store: AttachmentStore) -> None:
    store.prepare()
    store.save(record("c1", "eth0"))
    records = Path(store.records_dir)
    (records / ".c1:eth0.json.4242.tmp").write_text("{half")
    (records / ".c1-net1.json.4242.tmp").write_text("{half")
    store.delete("c1", "eth0")
    assert sorted(p.name for p in records.iterdir()) == [".c1-net1.json.4242.tmp"]


def test_write_atomic_failure_keeps_the_old_content_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.json"
    fsutil.write_atomic(str(target), b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        fsutil.write_atomic(str(target), b"new")
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_save_failure_is_an_io_error(store: AttachmentStore) -> None:
    store.prepare()
    os.rmdir(store.records_dir)
    Path(store.records_dir).write_text("a file where the records directory should be")
    with pytest.raises(IoFailure, match="cannot write attachment record") as info:
        store.save(record())
    assert info.value.code == 5


# ---- ContainerLock ----


def hold(lock: ContainerLock, entered: threading.Event, leave: threading.Event) -> None:
    with lock:
        entered.set()
        leave.wait(10)


def test_lock_serializes_the_same_container(store: AttachmentStore) -> None:
    first_in, first_out = threading.Event(), threading.Event()
    second_in, never = threading.Event(), threading.Event()
    a = threading.Thread(target=hold, args=(store.lock("c1"), first_in, first_out))
    a.start()
    assert first_in.wait(5)
    b = threading.Thread(target=hold, args=(store.lock("c1"), second_in, never))
    b.start()
    assert not second_in.wait(0.3), "two holders of one container's lock"
    # another container is not blocked
    with store.lock("c2"):
        pass
    first_out.set()
    assert second_in.wait(5)
    never.set()
    a.join()
    b.join()


def waiting_on(inode: int, timeout: float = 5) -> bool:
    """Whether someone is blocked in flock on `inode` (a "->" line of /proc/locks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in Path("/proc/locks").read_text().splitlines():
            if "->" in line and line.split()[-3].endswith(f":{inode}"):
                return True
        time.sleep(0.01)
    return False


def test_waiter_on_a_removed_lock_file_relocks_the_new_one(store: AttachmentStore) -> None:
    """A holds the lock and removes its file (last attachment gone); B was already
    waiting on the old inode; C arrives after the removal and locks a new file. When A
    leaves, B must not think it holds the lock while C does."""
    a_in, a_out = threading.Event(), threading.Event()
    b_in, b_out = threading.Event(), threading.Event()
    lock_a = store.lock("c1")
    a = threading.Thread(target=hold, args=(lock_a, a_in, a_out))
    a.start()
    assert a_in.wait(5)
    b = threading.Thread(target=hold, args=(store.lock("c1"), b_in, b_out))
    b.start()
    assert waiting_on(os.stat(lock_a.path).st_ino), "B never blocked on A's lock file"
    lock_a.release_and_remove()
    assert not os.path.exists(lock_a.path)
    with store.lock("c1") as lock_c:  # C: a fresh file, free at once
        a_out.set()
        a.join()
        assert not b_in.wait(0.5), "B entered while C holds the lock"
        assert lock_c.fd >= 0
    assert b_in.wait(5), "B never got the lock after C left"
    b_out.set()
    b.join()


def test_lock_release_and_remove_is_idempotent(store: AttachmentStore) -> None:
    with store.lock("c1") as lock:
        lock.release_and_remove()
        lock.release_and_remove()
    assert lock.fd == -1
    assert os.listdir(store.locks_dir) == []


def test_lock_fd_is_close_on_exec(store: AttachmentStore) -> None:
    """A delegate must not inherit the lock (and keep it past multus's exit)."""
    with store.lock("c1") as lock:
        flags = fcntl.fcntl(lock.fd, fcntl.F_GETFD)
        assert flags & fcntl.FD_CLOEXEC
