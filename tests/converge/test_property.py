"""The DEL convergence property, by random interleavings (hypothesis, stateful).

For three containers on one node (real netns, the Debian plugins copied into a private
bin dir, and the fake delegate for a slow ADD to kill): any interleaving of ADD, DEL,
CHECK, GC, conf edits (a delegate refusing its conf, the clusterNetwork file moved
away), plugin removal and `kill -9` of multus mid-ADD ends, once the removed plugins
are back and one final DEL per container has run, with every final DEL returning 0 by
its second try and nothing left: no lease, record, lock, stray link, marker or process.
While a plugin is missing, a DEL that fails names it (never a silent leak).

`make test` runs a fixed, derandomized set (MULTUS_PROPERTY_EXAMPLES raises it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.fakes.harness import install_fake, kill_processes_with, processes_with, wait_until
from tests.support.cni import MULTUS, CniCall, cache_records, leases
from tests.support.lab import Node, bridge_delegate, ptp_delegate

CONTAINERS = ("a", "b", "c")
REMOVABLE = ("ptp", "host-local", "bridge")
EXAMPLES = int(os.environ.get("MULTUS_PROPERTY_EXAMPLES", "25"))


class DelConverges(RuleBasedStateMachine):
    steps: list[str] = []  # every rule run, across examples (the test checks coverage)

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        root = Path(self.stack.enter_context(tempfile.TemporaryDirectory(prefix="mip-")))
        self.node = self.stack.enter_context(Node.create("mip", root))
        self.root = root
        self.bin_dir = root / "bin"
        self.away = root / "away"
        self.away.mkdir()
        self.bin_dir.mkdir()
        for plugin in ("bridge", "ptp", "host-local", "macvlan"):
            shutil.copy2(Path(self.node.cni_path) / plugin, self.bin_dir / plugin)
        install_fake(self.bin_dir, "fake")
        self.debug = root / "slow.json"
        self.debug.write_text(
            json.dumps({"label": "slow", "log": str(root / "calls.jsonl"),
                        "markers": str(root / "markers"), "ADD": {"sleep": 60}})
        )  # fmt: skip
        self.bridge = self.node.add_bridge("mipcni0")
        self.cluster_file = self.node.write_conf(
            "10-cluster.conf",
            {"cniVersion": "1.0.0", "name": "mip-cluster",
             **bridge_delegate(self.node, self.bridge, "10.205.0.0/24")},
        )  # fmt: skip
        # Container ids unique to this example: the stray-process checks match on them.
        self.cids = {c: f"mip-{os.path.basename(root)}-{c}" for c in CONTAINERS}
        self.pods = {c: self.node.add_pod("mip") for c in CONTAINERS}
        self.removed: set[str] = set()
        self.variant = "good"

    # ---- confs ----

    def conf(self, variant: str) -> dict[str, Any]:
        cluster = bridge_delegate(self.node, self.bridge, "10.205.0.0/24")
        second = ptp_delegate(self.node, "10.205.1.0/24")
        delegates = {
            "good": [cluster, second],
            "refusing": [cluster, {"type": "macvlan", "master": "mipnosuch0",
                                   "ipam": self.node.host_local("10.205.2.0/24")}],
            "slow": [cluster, {"type": "fake", "debugFile": str(self.debug)}],
        }  # fmt: skip
        if variant == "cluster-file":
            conf = self.node.conf([], cniVersion="1.1.0", clusterNetwork=str(self.cluster_file))
            del conf["delegates"]
        else:
            conf = self.node.conf(delegates[variant], cniVersion="1.1.0")
        conf["binDir"] = str(self.bin_dir)
        conf["delegateTimeout"] = 20
        return conf

    def run(self, command: str, cid: str, conf: dict[str, Any] | None = None) -> CniCall:
        return self.node.run(
            command,
            conf or self.conf(self.variant),
            container_id=self.cids[cid],
            netns=self.pods[cid],
            cni_path=str(self.bin_dir),
        )

    def check_failure(self, call: CniCall) -> None:
        """A DEL that fails must do so because a plugin is missing, and say which."""
        assert "Traceback" not in call.stdout + call.stderr
        if call.rc == 0:
            return
        assert self.removed, f"DEL failed with every plugin in place: {call.stdout}"
        msg = call.doc["msg"]
        assert any(repr(p) in msg or f'"{p}"' in msg for p in self.removed), msg

    # ---- rules ----

    @rule(
        cid=st.sampled_from(CONTAINERS),
        variant=st.sampled_from(["good", "refusing", "cluster-file"]),
    )
    def add(self, cid: str, variant: str) -> None:
        self.steps.append("add")
        call = self.run("ADD", cid, self.conf(variant))
        self.steps.append("added" if call.rc == 0 else "ADD refused")
        assert "Traceback" not in call.stdout + call.stderr
        if call.rc != 0:
            assert call.doc["code"]  # exactly one CNI error document

    @rule(cid=st.sampled_from(CONTAINERS))
    def add_killed_mid_way(self, cid: str) -> None:
        self.steps.append("add_killed_mid_way")
        marker = self.root / "markers" / f"{self.cids[cid]}-net1"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        env.update(CNI_COMMAND="ADD", CNI_CONTAINERID=self.cids[cid], CNI_NETNS=self.pods[cid],
                   CNI_IFNAME="eth0", CNI_PATH=str(self.bin_dir))  # fmt: skip
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.node.name, MULTUS],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(self.conf("slow")).encode())
        proc.stdin.close()
        wait_until(lambda: marker.exists() or proc.poll() is not None, 10)
        proc.kill()  # kill -9 of multus; a sleeping delegate, if any, lives on
        proc.wait()
        self.steps.append("killed mid-ADD" if marker.exists() else "ADD ended before the kill")

    @rule(cid=st.sampled_from(CONTAINERS))
    def delete(self, cid: str) -> None:
        self.steps.append("delete")
        self.check_failure(self.run("DEL", cid))

    @rule(cid=st.sampled_from(CONTAINERS))
    def check(self, cid: str) -> None:
        self.steps.append("check")
        call = self.run("CHECK", cid)
        assert "Traceback" not in call.stdout + call.stderr

    @rule(valid=st.sets(st.sampled_from(CONTAINERS)))
    def gc(self, valid: set[str]) -> None:
        self.steps.append("gc")
        conf = self.conf(self.variant)
        wanted = {self.cids[c] for c in valid}
        conf["cni.dev/valid-attachments"] = [{"containerID": c, "ifname": "eth0"} for c in wanted]
        call = self.node.run("GC", conf, cni_path=str(self.bin_dir))
        assert "Traceback" not in call.stdout + call.stderr
        kept = {p.name.split(":")[0] for p in cache_records(self.node.cni_dir)}
        if call.rc == 0:  # (every conf variant has the same network name)
            assert kept <= wanted, (kept, wanted)

    @rule(variant=st.sampled_from(["good", "refusing", "cluster-file"]))
    def edit_conf(self, variant: str) -> None:
        self.steps.append("edit_conf")
        self.variant = variant

    @precondition(lambda self: self.cluster_file.exists())
    @rule()
    def move_cluster_file_away(self) -> None:
        self.steps.append("move_cluster_file_away")
        self.cluster_file.rename(self.away / "cluster.conf")

    @rule(plugin=st.sampled_from(REMOVABLE))
    def remove_plugin(self, plugin: str) -> None:
        self.steps.append("remove_plugin")
        if (self.bin_dir / plugin).exists():
            (self.bin_dir / plugin).rename(self.away / plugin)
            self.removed.add(plugin)

    @rule()
    def restore(self) -> None:
        self.steps.append("restore")
        for plugin in list(self.removed):
            (self.away / plugin).rename(self.bin_dir / plugin)
        self.removed.clear()
        if (self.away / "cluster.conf").exists():
            (self.away / "cluster.conf").rename(self.cluster_file)

    @invariant()
    def records_are_whole(self) -> None:
        """Atomic writes: every record parses, no temp file outlives its writer."""
        for path in cache_records(self.node.cni_dir):
            assert json.loads(path.read_text())["kind"] == "multusAttachmentV1"
        assert list(self.node.cni_dir.rglob("*.tmp")) == []

    # ---- the end: plugins back, one final DEL per container ----

    def teardown(self) -> None:
        try:
            self.restore()
            self.variant = "good"
            for cid in CONTAINERS:
                calls = [self.run("DEL", cid) for _ in range(2)]
                assert calls[0].rc == 0 or calls[1].rc == 0, (
                    f"final DEL of {cid} failed twice: {calls[1].stdout}"
                )
            assert leases(self.node.data_dir) == []
            assert cache_records(self.node.cni_dir) == []
            locks = self.node.cni_dir / "locks"
            assert not locks.exists() or list(locks.iterdir()) == []
            assert not (self.root / "markers").exists() or not list(
                (self.root / "markers").iterdir()
            )
            for cid in self.cids.values():
                assert wait_until(lambda c=cid: not processes_with(f"CNI_CONTAINERID={c}"), 5)
            for netns in self.pods.values():
                self.node.delete_pod(netns)
            deadline = time.monotonic() + 5
            while self.node.links() != self.node.expected_links and time.monotonic() < deadline:
                time.sleep(0.05)
            assert self.node.links() == self.node.expected_links
        finally:
            for cid in self.cids.values():
                kill_processes_with(f"CNI_CONTAINERID={cid}")
            self.stack.close()


@pytest.mark.root
def test_any_interleaving_ends_with_del_converging() -> None:
    runner = DelConverges.TestCase
    runner.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=12,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    DelConverges.steps.clear()
    runner().runTest()
    done = DelConverges.steps
    print({step: done.count(step) for step in sorted(set(done))})
    assert len(done) >= EXAMPLES * 8, "the interleavings were too short to mean much"
    assert {"added", "ADD refused", "delete", "gc", "remove_plugin", "killed mid-ADD"} <= set(done)
