"""DEL always converges (the numbered cases of the issue), in real netns with the Debian
plugins: after each sequence, the runtime's DEL succeeds by its second try at most, and
nothing is left (the fixture checks: no lease, record, lock, temp file or stray link).

Each case failed before the per-call record states and the DEL model of `records`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from multus_cni.cache import AttachmentStore
from tests.fakes.harness import install_fake
from tests.support.cni import MULTUS, CniCall, cache_records, leases
from tests.support.lab import NETNS_DIR, Node, bridge_delegate, ptp_delegate, unique

CLUSTER = "10.203.0.0/24"
SECOND = "10.203.1.0/24"


def ok(call: CniCall) -> None:
    assert call.rc == 0, f"rc={call.rc} stdout={call.stdout} stderr={call.stderr[-2000:]}"


def failed(call: CniCall, code: int | None = None) -> dict[str, Any]:
    assert call.rc != 0, f"expected a failure: {call.stdout} {call.stderr[-1000:]}"
    doc: dict[str, Any] = call.doc
    if code is not None:
        assert doc["code"] == code, doc
    return doc


def del_converges(node: Node, conf: Any, cid: str, netns: str, **kw: Any) -> int:
    """The runtime's DEL, retried once; how many tries it took (asserts at most two)."""
    for attempt in (1, 2):
        call = node.run("DEL", conf, container_id=cid, netns=netns, **kw)
        if call.rc == 0:
            assert call.stdout == ""
            return attempt
    raise AssertionError(f"DEL failed twice: {call.stdout} {call.stderr[-2000:]}")


def cluster(node: Node) -> dict[str, Any]:
    return bridge_delegate(node, node.add_bridge("miccni0"), CLUSTER, isDefaultGateway=True)


def unmounted_netns(node: Node) -> str:
    """A netns path the runtime unmounted but left in place (an empty file now)."""
    name = unique("mic")
    path = f"{NETNS_DIR}/{name}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["umount", path], check=True)
    return path


def private_plugins(node: Node, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A copy of the plugins (so one can be removed) and a two-network conf using it."""
    bin_dir = tmp_path / "bin"
    shutil.copytree(node.cni_path, bin_dir)
    conf = node.conf([cluster(node), ptp_delegate(node, SECOND)], cniVersion="1.0.0")
    conf["binDir"] = str(bin_dir)
    return bin_dir, conf


# ---- 1. a delegate that rejects its own conf ----

BAD_DELEGATES = {
    "macvlan-master-missing": lambda n: {
        "type": "macvlan",
        "master": "micnosuch0",
        "ipam": n.host_local(SECOND),
    },
    "bridge-mtu-string": lambda n: {
        "type": "bridge",
        "bridge": "micbr1",
        "mtu": "1500",
        "ipam": n.host_local(SECOND),
    },
    "ptp-slash-33": lambda n: ptp_delegate(n, "10.203.1.0/33"),
    "host-local-range-outside": lambda n: {
        "type": "ptp",
        "ipam": n.host_local(SECOND, rangeStart="10.99.0.5"),
    },
}


@pytest.mark.parametrize("bad", sorted(BAD_DELEGATES))
def test_1_delegate_refusing_its_conf_then_del_and_the_conf_fixed(node: Node, bad: str) -> None:
    conf = node.conf([cluster(node), BAD_DELEGATES[bad](node)], cniVersion="1.0.0")
    pod = node.add_pod("mic")
    doc = failed(node.run("ADD", conf, container_id="c1", netns=pod))
    assert "delegates[1]" in doc["msg"], doc
    # The rollback freed eth0; net1 refused its conf on ADD and DEL alike: nothing held.
    assert cache_records(node.cni_dir) == [] and leases(node.data_dir) == []
    assert del_converges(node, conf, "c1", pod) == 1
    fixed = node.conf([conf["delegates"][0], ptp_delegate(node, SECOND)], cniVersion="1.0.0")
    assert del_converges(node, fixed, "c1", pod) == 1


def test_1_record_kept_by_a_transient_failure_still_converges(node: Node, tmp_path: Path) -> None:
    """The rollback keeps the record (delegate 1's DEL fails once with 11); the runtime's
    DEL then replays the cached, bad macvlan conf: refused exactly as at ADD, so dropped,
    while delegate 1 is DEL'd for real."""
    fakes = tmp_path / "fakebin"
    install_fake(fakes, "fake")
    debug = tmp_path / "d1.json"
    log = tmp_path / "calls.jsonl"

    def steer(**commands: Any) -> None:
        debug.write_text(json.dumps({"label": "d1", "log": str(log), **commands}))

    steer(DEL={"error": {"code": 11, "msg": "busy"}, "effect": False})
    conf = node.conf(
        [{"type": "fake", "debugFile": str(debug)}, BAD_DELEGATES["macvlan-master-missing"](node)],
        cniVersion="1.0.0",
    )
    pod = node.add_pod("mic")
    path = f"{fakes}:{node.cni_path}"
    failed(node.run("ADD", conf, container_id="c1", netns=pod, cni_path=path))
    [record] = [json.loads(p.read_text()) for p in cache_records(node.cni_dir)]
    assert record["state"] == "failed"
    assert [d["calls"][0]["state"] for d in record["delegates"]] == ["succeeded", "deleted"]
    steer()
    assert del_converges(node, conf, "c1", pod, cni_path=path) == 1
    commands = [json.loads(line)["command"] for line in log.read_text().splitlines()]
    assert commands[-1] == "DEL"


# ---- 2. CNI_NETNS that exists but is no network namespace ----


def test_2_netns_path_left_after_unmount(node: Node) -> None:
    conf = node.conf([cluster(node), ptp_delegate(node, SECOND)], cniVersion="1.0.0")
    stale = unmounted_netns(node)
    try:
        doc = failed(node.run("ADD", conf, container_id="c0", netns=stale), 8)
        assert "not a namespace" in doc["msg"]
        pod = node.add_pod("mic")
        ok(node.run("ADD", conf, container_id="c1", netns=pod))
        assert len(leases(node.data_dir)) == 2
        # The runtime tears the pod's netns down but leaves the path (a plain file now).
        subprocess.run(["umount", pod], check=True)
        node.pods.remove(os.path.basename(pod))
        assert del_converges(node, conf, "c1", pod) == 1
        assert leases(node.data_dir) == []
        os.unlink(pod)
    finally:
        os.unlink(stale)


# ---- 3. CNI_NETNS = the plugin's own (host) namespace on DEL ----


def test_3_del_never_hands_the_host_netns_to_a_delegate(node: Node) -> None:
    uplink, peer = node.add_veth("eth0", "micuplink")
    conf = node.conf([cluster(node)], cniVersion="1.0.0")
    pod = node.add_pod("mic")
    ok(node.run("ADD", conf, container_id="c1", netns=pod))
    # multus runs in the node netns: /proc/self/ns/net is the node's own namespace.
    assert del_converges(node, conf, "c1", "/proc/self/ns/net") == 1
    assert {uplink, peer} <= node.links(), "the node's eth0 was deleted"
    assert leases(node.data_dir) == []


# ---- 4. clusterNetwork file gone between ADD and DEL ----


def test_4_cluster_network_file_moved_away(node: Node) -> None:
    path = node.write_conf(
        "10-cluster.conf", {"cniVersion": "1.0.0", "name": "cl", **cluster(node)}
    )
    conf = node.conf([], clusterNetwork=str(path), cniVersion="1.0.0")
    del conf["delegates"]
    pod = node.add_pod("mic")
    ok(node.run("ADD", conf, container_id="c1", netns=pod))
    path.rename(path.with_suffix(".moved"))
    assert del_converges(node, conf, "c1", pod) == 1
    assert leases(node.data_dir) == []


# ---- 5. a second CNI_IFNAME for an attached container ----


def test_5_second_ifname_colliding_with_a_live_attachment_is_refused_first(node: Node) -> None:
    conf = node.conf([cluster(node), ptp_delegate(node, SECOND)], cniVersion="1.0.0")
    pod = node.add_pod("mic")
    ok(node.run("ADD", conf, container_id="c1", netns=pod))
    before = sorted(p.name for p in leases(node.data_dir))
    doc = failed(node.run("ADD", conf, container_id="c1", netns=pod, ifname="eth1"), 7)
    assert "'net1'" in doc["msg"] and "already attached" in doc["msg"], doc
    assert sorted(p.name for p in leases(node.data_dir)) == before
    assert {"eth0", "net1"} <= Node.pod_links(pod), "the first attachment was touched"
    assert del_converges(node, conf, "c1", pod, ifname="eth1") == 1
    assert del_converges(node, conf, "c1", pod) == 1


# ---- 6. GC ----


def gc(node: Node, conf: dict[str, Any]) -> CniCall:
    return node.run("GC", conf)


def test_6_gc_without_the_valid_attachments_key_is_refused(node: Node) -> None:
    conf = node.conf([cluster(node)], cniVersion="1.1.0")
    pod = node.add_pod("mic")
    ok(node.run("ADD", conf, container_id="c1", netns=pod))
    doc = failed(gc(node, conf), 7)
    assert "cni.dev/valid-attachments" in doc["msg"]
    assert len(cache_records(node.cni_dir)) == 1 and len(leases(node.data_dir)) == 1
    ok(gc(node, {**conf, "cni.dev/valid-attachments": None}))  # null: none is valid
    assert cache_records(node.cni_dir) == [] and leases(node.data_dir) == []


def test_6_gc_reports_an_unreadable_record(node: Node) -> None:
    conf = node.conf([cluster(node)], cniVersion="1.1.0")
    pod = node.add_pod("mic")
    ok(node.run("ADD", conf, container_id="c1", netns=pod))
    [record] = cache_records(node.cni_dir)
    record.write_bytes(record.read_bytes()[:40])
    doc = failed(gc(node, {**conf, "cni.dev/valid-attachments": []}))
    assert "c1:eth0" in doc["msg"] and "quarantine" in doc["msg"], doc
    assert len(list((node.cni_dir / "quarantine").iterdir())) == 1
    assert del_converges(node, conf, "c1", pod) == 1  # from the conf, best effort


# ---- 7. DEL after an ADD refused before anything ran ----

REFUSED_BEFORE_ANYTHING: dict[str, Any] = {
    "plugin-not-installed": ({"delegates": [{"type": "micnosuchplugin"}]}, {}),
    "path-like-type": ({"delegates": [{"type": "../../bin/sh"}]}, {}),
    "no-type": ({"delegates": [{"name": "x"}]}, {}),
    "two-masters": (
        {
            "delegates": [
                {"type": "ptp", "masterplugin": True},
                {"type": "ptp", "masterplugin": True},
            ]
        },
        {},
    ),
    "version-0.2.0": ({"cniVersion": "0.2.0"}, {}),
    "version-2.0.0": ({"cniVersion": "2.0.0"}, {}),
    "version-empty": ({"cniVersion": ""}, {}),
    "cni-args-malformed": ({}, {"cni_args": "K8S_POD_NAME=x;FOO=a=b"}),
    "ifname-not-utf8": ({}, {"ifname": "net\udcff"}),
}


@pytest.mark.parametrize("case", sorted(REFUSED_BEFORE_ANYTHING))
def test_7_del_after_an_add_refused_before_anything_ran(node: Node, case: str) -> None:
    changes, env = REFUSED_BEFORE_ANYTHING[case]
    conf = {**node.conf([ptp_delegate(node, SECOND)], cniVersion="1.0.0"), **changes}
    pod = node.add_pod("mic")
    failed(node.run("ADD", conf, container_id="c1", netns=pod, **env))
    assert del_converges(node, conf, "c1", pod, **env) == 1
    assert not (node.cni_dir / "locks" / "c1.lock").exists()


def test_7_cni_dir_a_regular_file(node: Node, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    conf = node.conf([ptp_delegate(node, SECOND)], cniVersion="1.0.0", cniDir=str(blocker))
    pod = node.add_pod("mic")
    failed(node.run("ADD", conf, container_id="c1", netns=pod), 5)
    assert del_converges(node, conf, "c1", pod) == 1
    assert blocker.read_text() == "x"


def test_7_failed_del_and_check_of_an_unknown_container_leave_no_lock(node: Node) -> None:
    conf = node.conf([cluster(node)], cniVersion="1.0.0")
    pod = node.add_pod("mic")
    failed(node.run("CHECK", conf, container_id="nobody", netns=pod), 3)
    assert not (node.cni_dir / "locks" / "nobody.lock").exists()


# ---- 8. a read-only cniDir ----


def test_8_read_only_cni_dir_still_lets_del_free_everything(node: Node) -> None:
    conf = node.conf([cluster(node), ptp_delegate(node, SECOND)], cniVersion="1.0.0")
    pod = node.add_pod("mic")
    ok(node.run("ADD", conf, container_id="c1", netns=pod))
    cni_dir = str(node.cni_dir)
    subprocess.run(["mount", "--bind", cni_dir, cni_dir], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", cni_dir], check=True)
        assert del_converges(node, conf, "c1", pod) == 1
        assert leases(node.data_dir) == [], "the delegates were not called"
        assert Node.pod_links(pod) == {"lo"}
    finally:
        subprocess.run(["umount", cni_dir], check=True)
    # The record could not be removed then; the next DEL (or GC) finishes the bookkeeping.
    assert len(cache_records(node.cni_dir)) == 1
    assert del_converges(node, conf, "c1", pod) == 1


# ---- 9. a record that parses but fails the replay checks ----

TAMPERED = {
    "cached-version-unsupported": lambda d: d["network"].__setitem__("cniVersion", "0.2.0"),
    "bad-versions-entry": lambda d: d.__setitem__("versions", ["9.9.9"]),
    "path-like-cached-type": lambda d: d["network"].__setitem__("type", "/bin/sh"),
    "unknown-call-state": lambda d: d["calls"][0].__setitem__("state", "maybe"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_9_untrustworthy_record_is_quarantined_and_del_falls_back(node: Node, case: str) -> None:
    conf = node.conf([cluster(node)], cniVersion="1.0.0")
    pod = node.add_pod("mic")
    ok(node.run("ADD", conf, container_id="c1", netns=pod))
    [path] = cache_records(node.cni_dir)
    record = json.loads(path.read_text())
    TAMPERED[case](record["delegates"][0])
    AttachmentStore(str(node.cni_dir)).save(record)
    assert del_converges(node, conf, "c1", pod) == 1
    assert len(list((node.cni_dir / "quarantine").iterdir())) == 1
    assert leases(node.data_dir) == []  # the conf's bridge was DEL'd


# ---- 10. the smaller ones ----


def test_10_deep_nesting_is_a_decode_failure(node: Node) -> None:
    conf = node.conf([cluster(node)], cniVersion="1.0.0")
    conf["delegates"][0]["x"] = "DEEP"
    stdin = json.dumps(conf).replace('"DEEP"', '{"a": ' * 990 + "1" + "}" * 990)
    pod = node.add_pod("mic")
    doc = failed(node.run("ADD", stdin, container_id="c1", netns=pod), 6)
    assert "nested" in doc["msg"]
    assert del_converges(node, stdin, "c1", pod) == 1


def test_10_five_megabytes_of_stdin(node: Node) -> None:
    conf = node.conf([cluster(node)], cniVersion="1.0.0", padding="x" * (5 << 20))
    pod = node.add_pod("mic")
    doc = failed(node.run("ADD", conf, container_id="c1", netns=pod), 6)
    assert doc["msg"].endswith("larger than 1048576 bytes"), doc
    assert "1048577" not in doc["msg"]


def test_10_status_with_the_master_plugin_missing_is_50(node: Node, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    conf = node.conf([{"type": "bridge", "ipam": node.host_local(CLUSTER)}], cniVersion="1.1.0")
    conf["binDir"] = str(bin_dir)
    doc = failed(node.run("STATUS", conf, cni_path=str(bin_dir), ifname=""), 50)
    assert "'bridge' not found" in doc["msg"]


def test_10_del_during_the_readiness_wait_waits_for_the_add(node: Node, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    conf = node.conf(
        [cluster(node)], cniVersion="1.0.0", readinessindicatorfile=str(ready), readinessTimeout=20
    )
    pod = node.add_pod("mic")
    results: dict[str, CniCall] = {}
    adder = threading.Thread(
        target=lambda: results.__setitem__(
            "add", node.run("ADD", conf, container_id="c1", netns=pod)
        )
    )
    adder.start()
    time.sleep(1.0)  # the ADD holds the lock while it waits
    deleter = threading.Thread(
        target=lambda: results.__setitem__(
            "del", node.run("DEL", conf, container_id="c1", netns=pod)
        )
    )
    deleter.start()
    time.sleep(1.0)
    assert "del" not in results, "DEL did not wait for the ADD"
    ready.touch()
    adder.join(30)
    deleter.join(30)
    ok(results["add"])
    ok(results["del"])
    assert leases(node.data_dir) == [] and cache_records(node.cni_dir) == []


def test_del_of_a_plugin_that_is_gone_fails_naming_it_until_it_is_back(
    node: Node, tmp_path: Path
) -> None:
    """The other side of convergence: a succeeded delegate holds a lease, so DEL fails
    while its plugin is missing, naming it and what it holds, and succeeds once back."""
    bin_dir, conf = private_plugins(node, tmp_path)
    pod = node.add_pod("mic")
    ok(node.run("ADD", conf, container_id="c1", netns=pod, cni_path=str(bin_dir)))
    (bin_dir / "ptp").rename(tmp_path / "ptp.away")
    for _ in range(2):
        doc = failed(node.run("DEL", conf, container_id="c1", netns=pod, cni_path=str(bin_dir)))
        assert "'ptp'" in doc["msg"] and "not found" in doc["msg"], doc
        assert "10.203.1." in doc["msg"], "it should say what is still held"
    assert len(leases(node.data_dir)) == 1  # eth0's was freed the first time
    (tmp_path / "ptp.away").rename(bin_dir / "ptp")
    assert del_converges(node, conf, "c1", pod, cni_path=str(bin_dir)) == 1


# ---- the escape hatch: multusctl records / forget ----

MULTUSCTL = str(Path(MULTUS).with_name("multusctl"))


def multusctl(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MULTUSCTL, *args], input=stdin, capture_output=True, text=True, check=False
    )


def test_records_kept_by_a_failing_del_are_listed_and_can_be_forgotten(
    node: Node, tmp_path: Path
) -> None:
    bin_dir, conf = private_plugins(node, tmp_path)
    pod = node.add_pod("mic")
    ok(node.run("ADD", conf, container_id="c1", netns=pod, cni_path=str(bin_dir)))
    pod2 = node.add_pod("mic")
    ok(node.run("ADD", conf, container_id="c2", netns=pod2, cni_path=str(bin_dir)))
    cni_dir = str(node.cni_dir)
    listing = multusctl("records", "--cni-dir", cni_dir)
    assert (listing.returncode, listing.stdout.strip()) == (0, "no records kept by a failing DEL")
    assert "c1" in multusctl("records", "--cni-dir", cni_dir, "--all").stdout

    (bin_dir / "ptp").rename(tmp_path / "ptp.away")
    failed(node.run("DEL", conf, container_id="c1", netns=pod, cni_path=str(bin_dir)))
    listing = multusctl("records", "--cni-dir", cni_dir)
    assert listing.returncode == 0, listing.stderr
    assert "c1" in listing.stdout and "c2" not in listing.stdout
    assert "net1 ptp (succeeded): it may hold 10.203.1." in listing.stdout
    assert "last DEL error:" in listing.stdout and "'ptp'" in listing.stdout
    assert "eth0 bridge" not in listing.stdout  # undone by that DEL already

    kept = multusctl("forget", "c1:eth0", "--cni-dir", cni_dir, stdin="n\n")
    assert kept.returncode == 1 and "kept" in kept.stdout
    assert len(cache_records(node.cni_dir)) == 2
    gone = multusctl("forget", "c1:eth0", "--cni-dir", cni_dir, stdin="y\n")
    assert gone.returncode == 0, gone.stderr
    assert "forgotten" in gone.stdout
    assert [p.name for p in cache_records(node.cni_dir)] == ["c2:eth0.json"]
    assert multusctl("forget", "c1:eth0", "--cni-dir", cni_dir, "--yes").returncode == 1
    # Forgotten: DEL has no record now and succeeds; with the plugin back, its best-effort
    # DEL from the conf frees the lease the record listed.
    (tmp_path / "ptp.away").rename(bin_dir / "ptp")
    assert del_converges(node, conf, "c1", pod, cni_path=str(bin_dir)) == 1
    assert del_converges(node, conf, "c2", pod2, cni_path=str(bin_dir)) == 1
