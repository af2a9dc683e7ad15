"""What the agent puts on the host: the node's conf (from its ConfigMap, or generated
from the default network's), the inventory, the shim and the thin plugin; written
atomically and only when changed, never removed by a restart, removed by uninstall."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from multus_api.nodeconf import configmap_name
from multus_api.settings import MultusSettings, multus_conf
from tests.node.conftest import MULTUS_NODE, NODE_NAME, SHIMS, Daemon
from tests.node.emulator import CONFIGMAP, WatchApi
from tests.support.cni import CNI_PLUGINS, run_multus, wait_until
from tests.support.lab import Node

pytestmark = pytest.mark.usefixtures("c_shim")
CM_NAME = configmap_name(NODE_NAME)


def rendered(**settings: Any) -> str:
    return json.dumps(multus_conf(MultusSettings(**settings)), indent=2) + "\n"


def set_configmap(api: WatchApi, data: dict[str, str], name: str = CM_NAME) -> None:
    api.put(
        CONFIGMAP,
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "kube-system"},
            "data": data,
        },
    )


def text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


class Reader(threading.Thread):
    """Reads a file as fast as it can: every read must be a whole version of it."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.seen: set[str] = set()
        self.partial: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            content = text(self.path)
            if content is None:
                continue
            try:
                json.loads(content)
            except ValueError:
                self.partial.append(content[:80])
            self.seen.add(content)


def test_configmap_is_followed_atomically_and_kept(
    node: Node, api: WatchApi, tmp_path: Path, daemons: list[Daemon]
) -> None:
    conf_file = node.conf_dir / "00-multus.conf"
    inventory = node.conf_dir / "multus.d" / "sriov-inventory.json"
    daemon = Daemon(node, tmp_path, api, conf_source="configmap").start()
    daemons.append(daemon)
    status, body = daemon.http("/readyz")
    assert status == 503 and json.loads(body) == {"conf": False, "socket": True}
    assert not conf_file.exists()
    first = rendered(clusterNetwork="flannel-conf")
    set_configmap(api, {"00-multus.conf": first, "sriov-inventory.json": '{"pfs": []}\n'})
    wait_until(lambda: text(conf_file) == first, "the conf written")
    assert text(inventory) == '{"pfs": []}\n'
    assert sorted(p.name for p in node.conf_dir.iterdir()) == ["00-multus.conf", "multus.d"]
    assert oct(conf_file.stat().st_mode & 0o777) == "0o644"
    assert daemon.http("/readyz")[0] == 200
    # big versions in quick succession: a reader never sees half of one
    reader = Reader(conf_file)
    reader.start()
    versions = [
        rendered(clusterNetwork="flannel-conf", defaultNetworks=[f"net{i}-{'x' * 40000}"])
        for i in range(15)
    ]
    for version in versions:
        set_configmap(api, {"00-multus.conf": version})
        wait_until(lambda v=version: text(conf_file) == v, "a version written")
    reader.stop.set()
    reader.join()
    assert reader.partial == []
    assert reader.seen <= {first, *versions} and len(reader.seen) > 5
    last = versions[-1]
    # an unusable conf, or none, or the ConfigMap gone: the last good one stays
    set_configmap(api, {"00-multus.conf": '{"type": "bridge", "name": "x"}'})
    set_configmap(api, {"sriov-inventory.json": "{}"})
    api.delete(CONFIGMAP, "kube-system", CM_NAME)
    wait_until(lambda: "was deleted" in daemon.log(), "the deletion seen")
    assert "type 'bridge' is not a multus conf" in daemon.log()
    assert text(conf_file) == last
    assert daemon.metric("multus_node_conf_errors_total", reason="invalid") == 1
    # a restart keeps the file, and writes nothing when the ConfigMap says the same
    inode = conf_file.stat().st_ino
    assert daemon.stop() == 0
    assert text(conf_file) == last
    set_configmap(api, {"00-multus.conf": last})
    again = daemon.restarted().start()
    daemons.append(again)
    wait_until(lambda: again.http("/readyz")[0] == 200, "ready again")
    time.sleep(0.5)
    assert conf_file.stat().st_ino == inode
    # the other nodes' ConfigMaps are none of this agent's business
    set_configmap(api, {"00-multus.conf": first}, name=configmap_name("another-node"))
    time.sleep(1)
    assert text(conf_file) == last


def test_auto_conf_from_the_default_network(
    node: Node, tmp_path: Path, daemons: list[Daemon]
) -> None:
    conf_file = node.conf_dir / "00-multus.conf"
    indicator = tmp_path / "flannel-ready"
    daemon = Daemon(
        node,
        tmp_path,
        None,
        conf_source="auto",
        extra=("--readiness-indicator-file", str(indicator)),
    ).start()
    daemons.append(daemon)
    # a leftover multus conf of another make is never the default network
    (node.conf_dir / "05-multus.conf").write_text(
        json.dumps({"cniVersion": "0.3.1", "name": "old", "type": "multus-shim"})
    )
    time.sleep(0.5)
    assert not conf_file.exists()
    default = node.conf_dir / "10-flannel.conflist"
    default.write_text(
        json.dumps(
            {
                "cniVersion": "0.4.0",
                "name": "cbr0",
                "plugins": [
                    {"type": "flannel", "delegate": {"isDefaultGateway": True}},
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                    {"type": "bandwidth", "capabilities": {"bandwidth": True, "other": False}},
                ],
            }
        )
    )
    time.sleep(1.5)
    assert not conf_file.exists(), "waits for the readiness indicator"
    assert daemon.http("/readyz")[0] == 503
    indicator.write_text("")
    wait_until(conf_file.exists, "the conf generated")
    conf = json.loads(conf_file.read_text())
    assert conf["type"] == "multus-py-shim" and conf["cniVersion"] == "0.4.0"
    assert conf["clusterNetwork"] == str(default)
    assert conf["daemonSocketDir"] == str(daemon.socket_dir)
    assert conf["capabilities"] == {"bandwidth": True, "portMappings": True}
    assert conf["readinessindicatorfile"] == str(indicator)
    # the default network's file changes: regenerated
    doc = json.loads(default.read_text())
    doc["cniVersion"] = "1.0.0"
    default.write_text(json.dumps(doc))
    wait_until(lambda: json.loads(conf_file.read_text())["cniVersion"] == "1.0.0", "regenerated")
    # an earlier default network appears: it is the runtime's choice, so ours too
    (node.conf_dir / "01-cilium.conf").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "cilium", "type": "cilium-cni"})
    )
    wait_until(
        lambda: json.loads(conf_file.read_text())["clusterNetwork"].endswith("01-cilium.conf"),
        "follows the first default network",
    )
    assert daemon.stop() == 0
    assert conf_file.exists()


def test_uninstall_restores_the_default_network(
    node: Node, api: WatchApi, tmp_path: Path, daemons: list[Daemon]
) -> None:
    default = node.conf_dir / "10-calico.conflist"
    default.write_text(
        json.dumps(
            {"cniVersion": "1.0.0", "name": "k8s-pod-network", "plugins": [{"type": "calico"}]}
        )
    )
    token = tmp_path / "sa-token"
    token.write_text("agent-token-1")
    daemon = Daemon(
        node,
        tmp_path,
        api,
        conf_source="auto",
        extra=("--token-file", str(token), "--thin-python", "/usr/bin/python3"),
    ).start()
    daemons.append(daemon)
    wait_until((node.conf_dir / "00-multus.conf").exists, "the conf generated")
    wait_until((node.conf_dir / "multus.d" / "token").exists, "the token written")
    assert sorted(os.listdir(daemon.bin_dir)) == ["multus", "multus-py-shim"]
    first = sorted(node.conf_dir.iterdir())[0].name
    assert first == "00-multus.conf"
    assert daemon.stop() == 0
    done = subprocess.run(
        [MULTUS_NODE, "uninstall", *daemon.argv()[1:], "--token-file", str(token)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "removed" in done.stdout
    assert sorted(p.name for p in node.conf_dir.iterdir()) == ["10-calico.conflist"]
    assert os.listdir(daemon.bin_dir) == []
    again = subprocess.run(
        [MULTUS_NODE, "uninstall", *daemon.argv()[1:]], capture_output=True, text=True, check=False
    )
    assert again.returncode == 0 and "0 files removed" in again.stdout


def test_binaries_are_replaced_atomically_and_only_when_changed(
    node: Node, tmp_path: Path, daemons: list[Daemon]
) -> None:
    daemon = Daemon(node, tmp_path, None).start()
    daemons.append(daemon)
    installed = daemon.bin_dir / "multus-py-shim"
    inode = installed.stat().st_ino
    assert installed.read_bytes() == Path(SHIMS["c"]).read_bytes()
    assert daemon.stop() == 0
    daemons.append(daemon.restarted().start())
    assert installed.stat().st_ino == inode, "unchanged: not rewritten"
    daemons[-1].stop()
    # a new shim while the old one is being executed all the time: never a failed exec
    newer = tmp_path / "newer-shim"
    newer.write_bytes(Path(SHIMS["c"]).read_bytes() + b"\0" * 4096)
    failures: list[str] = []
    stop = threading.Event()

    def exec_loop() -> None:
        while not stop.is_set():
            done = subprocess.run(
                [str(installed)], env={"CNI_COMMAND": "VERSION"}, capture_output=True, check=False
            )
            if done.returncode != 0 or b"supportedVersions" not in done.stdout:
                failures.append(done.stderr.decode() or f"rc {done.returncode}")

    loops = [threading.Thread(target=exec_loop) for _ in range(3)]
    for loop in loops:
        loop.start()
    for i in range(4):
        source = newer if i % 2 == 0 else Path(SHIMS["c"])
        d = Daemon(node, tmp_path, None, extra=("--shim-binary", str(source))).start()
        daemons.append(d)
        assert installed.read_bytes() == source.read_bytes()
        d.stop()
    stop.set()
    for loop in loops:
        loop.join()
    assert failures == []
    assert [p.name for p in daemon.bin_dir.iterdir()] == ["multus-py-shim"], "no temp left"


def test_thin_plugin_installed_for_hosts_with_python(
    node: Node, tmp_path: Path, daemons: list[Daemon]
) -> None:
    daemon = Daemon(node, tmp_path, None, extra=("--thin-python", "/usr/bin/python3")).start()
    daemons.append(daemon)
    thin = daemon.bin_dir / "multus"
    assert thin.read_bytes().startswith(b"#!/usr/bin/python3 -I\n")
    version = run_multus("VERSION", b"", executable=str(thin))
    assert version.rc == 0 and "1.1.0" in json.loads(version.stdout)["supportedVersions"]
    bridge = node.add_bridge("mndthin0")
    conf = {
        "cniVersion": "1.0.0",
        "name": "mnd-thin",
        "type": "multus",
        "cniDir": str(node.cni_dir),
        "binDir": CNI_PLUGINS,
        "delegates": [
            {"type": "bridge", "bridge": bridge, "ipam": node.host_local("10.206.40.0/24")}
        ],
    }
    netns = node.add_pod("mnd")
    added = run_multus(
        "ADD", conf, container_id="mndthin", netns=netns, executable=str(thin), node=node.name
    )
    assert added.rc == 0, added.stdout + added.stderr
    assert (
        run_multus(
            "DEL", conf, container_id="mndthin", netns=netns, executable=str(thin), node=node.name
        ).rc
        == 0
    )
    inode = thin.stat().st_ino
    daemon.stop()
    daemons.append(
        Daemon(node, tmp_path, None, extra=("--thin-python", "/usr/bin/python3")).start()
    )
    assert thin.stat().st_ino == inode, "the same sources give the same bytes: not rewritten"
