"""DEL whatever state things are in: repeated, never added, netns gone, a delegate
binary gone, the record corrupt or half-written, multus killed mid-ADD; and STATUS
(RELIABILITY.md rows 14, 24, 27-29, 31)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from multus_cni.cache import AttachmentStore
from tests.fakes.harness import FakeDelegate, FakeWorld, wait_until
from tests.faults.checks import assert_error, assert_ok
from tests.support.cni import MULTUS, CniCall


def two(world: FakeWorld) -> tuple[FakeDelegate, FakeDelegate]:
    return world.delegate("d1"), world.delegate("d2", "fake2")


def test_del_twice_and_del_of_a_never_added_container(world: FakeWorld) -> None:
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()])
    assert_ok(world.run("DEL", conf), prints=False)  # never added
    assert_ok(world.run("ADD", conf))
    assert_ok(world.run("DEL", conf), prints=False)
    assert_ok(world.run("DEL", conf), prints=False)
    assert world.sequence() == [
        ("d2", "DEL"),
        ("d1", "DEL"),
        ("d1", "ADD"),
        ("d2", "ADD"),
        ("d2", "DEL"),
        ("d1", "DEL"),
        ("d2", "DEL"),
        ("d1", "DEL"),
    ]
    world.assert_nothing_left()


@pytest.mark.parametrize("netns", ["unset", "gone"])
def test_del_without_a_netns_still_reaches_every_delegate(world: FakeWorld, netns: str) -> None:
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()])
    assert_ok(world.run("ADD", conf))
    call = world.run("DEL", conf, netns="" if netns == "unset" else "/var/run/netns/mib-gone")
    assert_ok(call, prints=False)
    for fake in (d1, d2):
        [delete] = fake.calls("DEL")
        if netns == "unset":  # the recorded netns still exists: the delegates get it
            assert delete["env"]["CNI_NETNS"] == world.netns
        else:
            assert "CNI_NETNS" not in delete["env"]
        assert delete["stdin"]["prevResult"]["interfaces"][0]["sandbox"] == world.netns
    world.assert_nothing_left()


def test_binary_removed_before_del(world: FakeWorld) -> None:
    """Row 14: the others are still DEL'd, the error names the missing one, the record
    stays so that a DEL after the binary is back finishes the job."""
    d1, d2, d3 = world.delegate("d1"), world.delegate("d2", "fake2"), world.delegate("d3")
    conf = world.conf([d1.conf(), d2.conf(), d3.conf()])
    assert_ok(world.run("ADD", conf))
    os.unlink(world.bin_dir / "fake2")
    doc = assert_error(world.run("DEL", conf))
    assert "fake2" in doc["msg"] and "1 delegate(s)" in doc["msg"]
    assert world.sequence()[-2:] == [("d3", "DEL"), ("d1", "DEL")]
    assert d2.marker_names() == [f"{world.container_id}-net1"]
    assert world.record()["state"] == "added"
    world.install("fake2")
    assert_ok(world.run("DEL", conf), prints=False)
    # Only what is left: d3 and d1 were DEL'd the first time, and the record says so.
    assert world.sequence()[-1:] == [("d2", "DEL")]
    assert world.sequence()[-2] == ("d1", "DEL")
    world.assert_nothing_left()


@pytest.mark.parametrize(
    "content", [b"", b'{"kind": "multusAttachmentV1", "deleg', b"\x00\xff garbage", b"[]"]
)
def test_corrupt_record_is_quarantined_and_del_undoes_from_the_conf(
    world: FakeWorld, content: bytes
) -> None:
    """Row 27: never a silent rc 0 without DEL."""
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()])
    assert_ok(world.run("ADD", conf))
    record = world.records()[0]
    record.write_bytes(content)
    assert_ok(world.run("DEL", conf), prints=False)
    assert world.sequence()[-2:] == [("d2", "DEL"), ("d1", "DEL")]
    [quarantined] = (world.cni_dir / "quarantine").iterdir()
    assert quarantined.read_bytes() == content
    world.assert_nothing_left()


@pytest.mark.parametrize(
    "entries",
    [["x"], [{}], [{"network": None, "ifName": "eth0"}], [{"network": {}, "ifName": 0}],
     [{"network": {"type": "fake"}, "ifName": "eth0", "versions": "1.0.0"}]],
    ids=["string", "empty", "null-network", "int-ifname", "versions-string"],
)  # fmt: skip
def test_record_in_a_shape_del_cannot_use_is_treated_as_corrupt(
    world: FakeWorld, entries: list[Any]
) -> None:
    """Valid JSON of our kind, but damaged (or written by another layout): DEL must not
    fail the same way forever; it quarantines the record and undoes via the conf."""
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()])
    assert_ok(world.run("ADD", conf))
    world.records()[0].write_text(json.dumps({**world.record(), "delegates": entries}))
    assert_ok(world.run("DEL", conf), prints=False)
    assert world.sequence()[-2:] == [("d2", "DEL"), ("d1", "DEL")]
    assert len(list((world.cni_dir / "quarantine").iterdir())) == 1
    world.assert_nothing_left()


def test_add_over_a_corrupt_record_quarantines_it_and_proceeds(world: FakeWorld) -> None:
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()])
    records = world.cni_dir / "attachments"
    records.mkdir(parents=True)
    (records / f"{world.container_id}:eth0.json").write_bytes(b"{half")
    assert_ok(world.run("ADD", conf))
    assert world.record()["state"] == "added"
    assert len(list((world.cni_dir / "quarantine").iterdir())) == 1
    assert_ok(world.run("DEL", conf), prints=False)
    world.assert_nothing_left()


def test_second_add_without_del_is_refused_and_keeps_the_first(world: FakeWorld) -> None:
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()])
    assert_ok(world.run("ADD", conf))
    first = world.record()
    doc = assert_error(world.run("ADD", conf), 4)
    assert "already has eth0" in doc["msg"]
    assert world.record() == first
    assert len(d1.calls("ADD")) == 1
    assert_ok(world.run("DEL", conf), prints=False)
    world.assert_nothing_left()


def test_record_files_are_private_and_never_left_half_written(world: FakeWorld) -> None:
    """Row 29 (I3): 0700 directories, 0600 files, no temp files between calls."""
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()])
    assert_ok(world.run("ADD", conf))
    assert world.temp_files() == []
    for path in [world.cni_dir, *world.cni_dir.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    record = world.record()
    assert record["kind"] == "multusAttachmentV1" and record["state"] == "added"
    assert [d["ifName"] for d in record["delegates"]] == ["eth0", "net1"]
    assert_ok(world.run("DEL", conf), prints=False)
    world.assert_nothing_left()


def test_writer_killed_between_temp_write_and_rename(world: FakeWorld) -> None:
    """Row 29: the old record (or none) stays readable; the temp file is cleaned up by
    the DEL that follows."""
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()])
    assert_ok(world.run("ADD", conf))
    before = world.record()
    store = AttachmentStore(str(world.cni_dir))
    pid = os.fork()
    if pid == 0:  # the child dies exactly between the fsync and the rename
        os.rename = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        store.save({**before, "state": "adding", "delegates": []})
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert len(world.temp_files()) == 1
    assert world.record() == before
    assert_ok(world.run("DEL", conf), prints=False)
    assert world.sequence()[-2:] == [("d2", "DEL"), ("d1", "DEL")]
    world.assert_nothing_left()


@pytest.mark.parametrize(
    ("signum", "group"),
    [(signal.SIGKILL, True), (signal.SIGKILL, False), (signal.SIGTERM, False)],
    ids=["kill-9-group", "kill-9", "sigterm"],
)
def test_multus_killed_mid_add_then_del_leaves_nothing(
    world: FakeWorld, signum: int, group: bool
) -> None:
    """Row 28: multus (and its process group) die while delegate 2 is in its ADD; the
    delegate itself (its own group) lives on. The runtime's DEL stops it and undoes
    every delegate of the recorded plan."""
    d1, d2, d3 = world.delegate("d1"), world.delegate("d2", "fake2"), world.delegate("d3")
    d2.steer(ADD={"sleep": 600})
    conf = world.conf([d1.conf(), d2.conf(), d3.conf()])
    env = world.cni_env("ADD")
    proc = subprocess.Popen(
        [MULTUS],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(conf).encode())
    proc.stdin.close()
    try:
        assert wait_until(lambda: d2.marker_names() != [], 10)
    finally:
        if group:
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
        proc.wait()
    assert proc.returncode == -signum
    record = world.record()
    assert record["state"] == "adding"
    assert [d["calls"][0]["state"] for d in record["delegates"]] == [
        "succeeded",
        "started",
        "pending",
    ]
    assert world.processes(), "the sleeping delegate should have outlived multus"
    assert_ok(world.run("DEL", conf), prints=False)
    # d3 never started: it holds nothing and gets no DEL.
    assert world.sequence()[-2:] == [("d2", "DEL"), ("d1", "DEL")]
    assert ("d3", "DEL") not in world.sequence()
    world.assert_nothing_left()


def test_add_after_an_interrupted_add_undoes_it_first(world: FakeWorld) -> None:
    """A runtime that retries ADD (instead of DEL) after multus was killed: the "adding"
    record's plan is undone before the new ADD runs."""
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()])
    assert_ok(world.run("ADD", conf))
    AttachmentStore(str(world.cni_dir)).save({**world.record(), "state": "adding"})
    before = len(world.calls())
    assert_ok(world.run("ADD", conf))
    assert [(c["label"], c["command"]) for c in world.calls()[before:]] == [
        ("d2", "DEL"),
        ("d1", "DEL"),
        ("d1", "ADD"),
        ("d2", "ADD"),
    ]
    assert world.record()["state"] == "added"
    assert_ok(world.run("DEL", conf), prints=False)
    world.assert_nothing_left()


def status(world: FakeWorld, conf: dict[str, Any]) -> CniCall:
    return world.run("STATUS", conf, container_id="", netns="", ifname="")


def test_status_asks_the_master_only_when_it_speaks_1_1_0(world: FakeWorld) -> None:
    """Row 31."""
    d1, d2 = two(world)
    ready = world.root / "ready"
    ready.touch()
    conf = world.conf([d1.conf(), d2.conf()], "1.1.0", readinessindicatorfile=str(ready))
    assert_ok(status(world, conf), prints=False)
    assert world.sequence() == [("d1", "STATUS")]
    [call] = d1.calls("STATUS")
    assert call["stdin"]["cniVersion"] == "1.1.0" and "CNI_CONTAINERID" not in call["env"]
    d1.steer(STATUS={"error": {"code": 51, "msg": "degraded"}})
    doc = assert_error(status(world, conf), 51)
    assert "degraded" in doc["msg"]
    ready.unlink()
    before = len(world.calls())
    doc = assert_error(status(world, conf), 50)
    assert str(ready) in doc["msg"]
    assert world.calls()[before:] == []


def test_status_is_not_sent_to_a_master_below_1_1_0(world: FakeWorld) -> None:
    world.install("fake")
    world.steer_binary("fake", VERSION={"versions": ["0.4.0", "1.0.0"]})
    d1 = world.delegate("d1")
    d1.steer(STATUS={"error": {"code": 3, "msg": "missing containerID"}})
    assert_ok(status(world, world.conf([d1.conf()], "1.1.0")), prints=False)
    assert world.sequence() == []


def test_lock_file_of_another_container_is_left_alone(world: FakeWorld) -> None:
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()])
    other = world.cni_dir / "locks" / "mib-other.lock"
    assert_ok(world.run("ADD", conf))
    other.touch()
    assert_ok(world.run("DEL", conf), prints=False)
    assert other.exists()
    assert [p.name for p in Path(world.cni_dir / "locks").iterdir()] == ["mib-other.lock"]
    other.unlink()
    world.assert_nothing_left()


def test_del_that_hangs_times_out_keeps_the_record_and_a_later_del_finishes(
    world: FakeWorld,
) -> None:
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()], delegateTimeout=1)
    assert_ok(world.run("ADD", conf))
    d2.steer(DEL={"sleep": 600, "effect": False})
    doc = assert_error(world.run("DEL", conf), 11)
    assert "timed out" in doc["msg"] and "fake2" in doc["msg"]
    assert world.sequence()[-2:] == [("d2", "DEL"), ("d1", "DEL")]  # d1 still cleaned
    assert world.record()["state"] == "added"
    assert wait_until(lambda: not world.processes(), 5), "the hung DEL was not killed"
    d2.steer()
    assert_ok(world.run("DEL", conf), prints=False)
    world.assert_nothing_left()


def test_parallel_adds_share_the_cache_dir_safely(world: FakeWorld) -> None:
    """20 pods at once on a cold cache: every ADD and DEL succeeds, the shared
    plugin-versions.json ends up valid, no temp file or lock is left."""
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()])
    cids = [f"{world.container_id}-{i}" for i in range(20)]

    def cycle(command: str, cid: str) -> CniCall:
        return world.run(command, conf, container_id=cid)

    with ThreadPoolExecutor(max_workers=20) as pool:
        for call in pool.map(lambda cid: cycle("ADD", cid), cids):
            assert_ok(call)
        assert len(world.records()) == 20
        for call in pool.map(lambda cid: cycle("DEL", cid), cids):
            assert_ok(call, prints=False)
    versions = json.loads((world.cni_dir / "plugin-versions.json").read_text())
    assert sorted(os.path.basename(path) for path in versions) == ["fake", "fake2"]
    assert len(d1.calls("ADD")) == len(d2.calls("DEL")) == 20
    assert list((world.cni_dir / "locks").iterdir()) == []
    world.assert_nothing_left()


def test_stray_killing_spares_the_caller_that_is_itself_in_an_add(world: FakeWorld) -> None:
    """multus as the delegate of another meta-plugin: that parent, in its own ADD for the
    same container (so its environment says CNI_COMMAND=ADD), times us out and DELs us
    as its rollback. Stopping our interrupted ADD's strays must not kill the parent."""
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()])
    assert_ok(world.run("ADD", conf))
    AttachmentStore(str(world.cni_dir)).save({**world.record(), "state": "adding"})
    parent = (
        "import os, subprocess, sys\n"
        "env = dict(os.environ, CNI_COMMAND='DEL')\n"
        "proc = subprocess.run([sys.argv[1]], input=sys.stdin.buffer.read(), env=env,\n"
        "                      capture_output=True, process_group=0)\n"
        "print(proc.returncode)\n"
    )
    env = world.cni_env("ADD")
    proc = subprocess.run(
        [sys.executable, "-c", parent, MULTUS],
        input=json.dumps(conf).encode(),
        env=env,
        capture_output=True,
        start_new_session=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, f"the parent was killed ({proc.returncode})"
    assert proc.stdout.strip() == b"0"
    world.assert_nothing_left()


def test_longest_container_id_fits_every_cache_file_name(world: FakeWorld) -> None:
    """200 bytes (the limit) through ADD, a corrupt record's quarantine, and DEL."""
    d1, d2 = two(world)
    conf = world.conf([d1.conf(), d2.conf()])
    cid = "c" * 200
    assert_ok(world.run("ADD", conf, container_id=cid))
    world.records()[0].write_bytes(b"{")
    assert_ok(world.run("DEL", conf, container_id=cid), prints=False)
    assert len(list((world.cni_dir / "quarantine").iterdir())) == 1
    assert world.sequence()[-2:] == [("d2", "DEL"), ("d1", "DEL")]
    world.assert_nothing_left()


def test_unusable_cache_dir_is_an_io_error_before_anything_runs(world: FakeWorld) -> None:
    d1 = world.delegate("d1")
    blocker = world.root / "a-file"
    blocker.write_text("not a directory")
    conf = world.conf([d1.conf()], cniDir=str(blocker))
    doc = assert_error(world.run("ADD", conf), 5)
    assert "cniDir" in doc["msg"] and str(blocker) in doc["msg"]
    assert world.sequence() == []
    # No ADD can have recorded anything there: CHECK knows no such container, and DEL
    # (best effort from the conf) succeeds rather than fail for ever.
    assert assert_error(world.run("CHECK", conf), 3)
    assert_ok(world.run("DEL", conf), prints=False)
    assert blocker.read_text() == "not a directory"
