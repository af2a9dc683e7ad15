"""The thick-mode server under pressure and faults, on real netns and plugins: the
bounded queue, a daemon killed mid-ADD, 50 pods at once, the daemon in its own mount
namespace, the record sweep, a clean stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.harness import FakeWorld
from tests.node.conftest import Daemon, nad, node_pod
from tests.node.emulator import WatchApi
from tests.support.cni import CNI_PLUGINS, CniCall, leases, pod_args, wait_until
from tests.support.lab import Node

pytestmark = pytest.mark.usefixtures("c_shim")
CLUSTER = "10.206.20.0/22"
SIDE = "10.206.24.0/22"


def fakes(tmp_path: Path, node: Node) -> FakeWorld:
    """Fake delegates (tests/fakes) in their own bin dir, for the daemon's --cni-path."""
    (tmp_path / "fw").mkdir()
    return FakeWorld(tmp_path / "fw", "")


def shim_in_background(daemon: Daemon, command: str, conf: dict[str, Any], **kwargs: Any) -> Any:
    """Start a shim call without waiting; `.communicate()` gives its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
    env.update(
        CNI_COMMAND=command,
        CNI_CONTAINERID=kwargs["container_id"],
        CNI_IFNAME="eth0",
        CNI_PATH="/opt/cni/bin",
        CNI_ARGS=kwargs.get("cni_args", ""),
    )
    if kwargs.get("netns"):
        env["CNI_NETNS"] = kwargs["netns"]
    body = json.dumps({**conf, "type": "multus-py-shim", "daemonSocketDir": str(daemon.socket_dir)})
    proc = subprocess.Popen(
        ["ip", "netns", "exec", daemon.node.name, str(daemon.bin_dir / "multus-py-shim")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None
    proc.stdin.write(body.encode())
    proc.stdin.close()
    return proc


def finished(proc: Any, timeout: float = 60) -> CniCall:
    proc.wait(timeout)
    return CniCall(proc.returncode, proc.stdout.read().decode(), proc.stderr.read().decode())


def test_overflow_answers_add_with_11_and_still_serves_del(
    node: Node, tmp_path: Path, daemons: list[Daemon]
) -> None:
    world = fakes(tmp_path, node)
    slow = world.delegate("slow")
    slow.steer(ADD={"sleep": 1.5})
    daemon = Daemon(
        node,
        tmp_path,
        None,
        extra=(
            "--workers",
            "1",
            "--max-queue",
            "2",
            "--cni-path",
            f"{CNI_PLUGINS}:{world.bin_dir}",
        ),
    ).start()
    daemons.append(daemon)
    conf = {"cniVersion": "1.0.0", "name": "mnd-slow", "delegates": [slow.conf()]}
    netns = node.add_pod("mnd")
    first = shim_in_background(daemon, "ADD", conf, container_id="mndq1", netns=netns)
    wait_until(lambda: slow.calls("ADD"), "the first ADD running")
    queued = [
        shim_in_background(daemon, "ADD", conf, container_id=f"mndq{i}", netns=netns)
        for i in (2, 3)
    ]
    time.sleep(0.3)
    started = time.monotonic()
    shed = daemon.shim("c", "ADD", conf, container_id="mndq4", netns=netns)
    assert time.monotonic() - started < 2
    assert shed.rc == 1 and shed.doc["code"] == 11 and "busy" in shed.doc["msg"], shed.stdout
    # DELs are never shed, even past the bound
    dels = [shim_in_background(daemon, "DEL", conf, container_id=f"mndd{i}") for i in range(4)]
    for proc in [first, *queued, *dels]:
        done = finished(proc)
        assert done.rc == 0, done.stdout + done.stderr
    assert daemon.metric("multus_node_shed_requests_total", command="ADD") == 1
    for cid in ("mndq1", "mndq2", "mndq3"):
        assert daemon.shim("c", "DEL", conf, container_id=cid, netns=netns).rc == 0
    assert slow.marker_names() == []


def test_daemon_killed_mid_add_then_del_leaves_nothing(
    node: Node, tmp_path: Path, daemons: list[Daemon]
) -> None:
    world = fakes(tmp_path, node)
    hang = world.delegate("hang")
    hang.steer(ADD={"sleep": 60})
    bridge = node.add_bridge("mndkill0")
    daemon = Daemon(
        node, tmp_path, None, extra=("--cni-path", f"{CNI_PLUGINS}:{world.bin_dir}")
    ).start()
    daemons.append(daemon)
    conf = {
        "cniVersion": "1.0.0",
        "name": "mnd-kill",
        "delegates": [
            {"type": "bridge", "bridge": bridge, "ipam": node.host_local(CLUSTER)},
            hang.conf(),
        ],
    }
    netns = node.add_pod("mnd")
    adding = shim_in_background(daemon, "ADD", conf, container_id="mndkill", netns=netns)
    wait_until(lambda: hang.calls("ADD"), "the hanging delegate running")
    assert leases(node.data_dir), "the bridge's IP was taken"
    daemon.kill()
    answered = finished(adding, 15)
    assert answered.rc == 1 and answered.doc["code"] == 11, answered.stdout
    # the runtime's DEL while the daemon is down: a record exists, so try again later
    assert daemon.shim("c", "DEL", conf, container_id="mndkill", netns=netns).doc["code"] == 11
    again = daemon.restarted().start()
    daemons.append(again)
    deleted = again.shim("c", "DEL", conf, container_id="mndkill", netns=netns)
    assert deleted.rc == 0, deleted.stdout + deleted.stderr
    pid = hang.calls("ADD")[0]["pid"]
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), "the stray delegate killed", 5)
    assert hang.marker_names() == [] and leases(node.data_dir) == []
    assert Node.pod_links(netns) == {"lo"}


def test_fifty_pods_at_once(node: Node, api: WatchApi, thick: Daemon) -> None:
    bridge = node.add_bridge("mndfifty0")
    nad(api, "side", {"cniVersion": "1.0.0", "type": "ptp", "ipam": node.host_local(SIDE)})
    conf = {
        "cniVersion": "1.0.0",
        "name": "mnd-fifty",
        "kubeconfig": "/x",
        "delegates": [{"type": "bridge", "bridge": bridge, "ipam": node.host_local(CLUSTER)}],
    }
    pods = []
    for i in range(50):
        pod = node_pod(api, f"p{i}", "side")
        pods.append((pod, node.add_pod("mnd"), f"mndp{i}"))

    def call(command: str, item: tuple[dict[str, Any], str, str]) -> CniCall:
        pod, netns, cid = item
        return thick.shim(
            "c", command, conf, container_id=cid, netns=netns, cni_args=pod_args(pod, cid)
        )

    with ThreadPoolExecutor(50) as pool:
        added = list(pool.map(lambda item: call("ADD", item), pods))
    assert all(a.rc == 0 for a in added), [a.stdout for a in added if a.rc]
    addresses = {a.doc["ips"][0]["address"] for a in added}
    assert len(addresses) == 50
    assert len(leases(node.data_dir)) == 100
    with ThreadPoolExecutor(50) as pool:
        deleted = list(pool.map(lambda item: call("DEL", item), pods))
    assert all(d.rc == 0 for d in deleted), [d.stdout for d in deleted if d.rc]
    assert leases(node.data_dir) == []


def test_daemon_in_its_own_mount_namespace(
    node: Node, tmp_path: Path, daemons: list[Daemon]
) -> None:
    """As in a DaemonSet pod: the daemon's own filesystem is not the host's (here the
    IPAM data dir is hidden under an empty tmpfs in its mount namespace), the host's
    root is mounted into it with HostToContainer propagation (`--host-root`), and a
    pod netns created after it started must still be attached. Delegates run in the
    host's root, so the leases land in the host's data dir; our own plugins
    (`--own-plugins`, from the agent's image) run in the agent's container."""
    host_root = tmp_path / "hostroot"
    host_root.mkdir()
    node.data_dir.mkdir(parents=True)
    world = fakes(tmp_path, node)
    ours = world.delegate("ours", binary="mnd-own")
    ours.steer(ADD={"sleep": 1.0})
    script = (
        f"mount --rbind / {host_root} && mount -t tmpfs mnd-not-the-host {node.data_dir} "
        '&& exec "$@"'
    )
    wrapper = ("unshare", "-m", "--propagation", "slave", "sh", "-c", script, "sh")
    daemon = Daemon(
        node,
        tmp_path,
        None,
        wrapper=wrapper,
        extra=("--host-root", str(host_root), "--own-plugins", str(world.bin_dir / "mnd-own")),
    ).start()
    daemons.append(daemon)
    bridge = node.add_bridge("mndmnt0")
    conf = {
        "cniVersion": "1.0.0",
        "name": "mnd-mnt",
        "delegates": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isDefaultGateway": True,
                "ipam": node.host_local(CLUSTER),
            },
            ours.conf(),
        ],
    }
    netns = node.add_pod("mnd")  # after the daemon started
    adding = shim_in_background(daemon, "ADD", conf, container_id="mndmnt", netns=netns)
    pid = wait_until(lambda: ours.calls("ADD") and ours.calls("ADD")[0]["pid"], "ours running")
    assert os.readlink(f"/proc/{pid}/root") == "/", "our own plugin is not chrooted"
    added = finished(adding)
    assert added.rc == 0, added.stdout + daemon.log()[-2000:]
    assert Node.pod_addresses(netns)["eth0"] == [added.doc["ips"][0]["address"]]
    assert len(leases(node.data_dir)) == 1, "the lease is in the host's data dir"
    assert daemon.shim("c", "DEL", conf, container_id="mndmnt", netns=netns).rc == 0
    assert leases(node.data_dir) == [] and ours.marker_names() == []


def test_sweep_dels_what_the_runtime_forgot(
    node: Node, api: WatchApi, tmp_path: Path, daemons: list[Daemon]
) -> None:
    world = fakes(tmp_path, node)
    flaky = world.delegate("flaky")
    flaky.steer(DEL={"error": {"code": 11, "msg": "not now"}})
    bridge = node.add_bridge("mndswp0")
    daemon = Daemon(
        node,
        tmp_path,
        api,
        extra=(
            "--sweep-interval",
            "0.3",
            "--sweep-grace",
            "0",
            "--cni-path",
            f"{CNI_PLUGINS}:{world.bin_dir}",
        ),
    ).start()
    daemons.append(daemon)
    conf = {
        "cniVersion": "1.0.0",
        "name": "mnd-sweep",
        "kubeconfig": "/x",
        "delegates": [{"type": "bridge", "bridge": bridge, "ipam": node.host_local(CLUSTER)}],
    }
    flaky_conf = {**conf, "name": "mnd-flaky", "delegates": [flaky.conf()]}

    gone, alive, failing = (node_pod(api, name) for name in ("gone", "alive", "failing"))
    netns = {name: node.add_pod("mnd") for name in ("gone", "alive", "failing")}
    for name, p, c in (
        ("gone", gone, conf),
        ("alive", alive, conf),
        ("failing", failing, flaky_conf),
    ):
        added = daemon.shim(
            "c",
            "ADD",
            c,
            container_id=f"mnd{name}",
            netns=netns[name],
            cni_args=pod_args(p, f"mnd{name}"),
        )
        assert added.rc == 0, added.stdout
    records = node.cni_dir / "attachments"
    # netns gone and pod gone: swept. Netns gone, pod still there: kept.
    for name in ("gone", "alive", "failing"):
        node.delete_pod(netns[name])
    api.delete("v1/pods", "default", "gone")
    api.delete("v1/pods", "default", "failing")
    wait_until(lambda: not (records / "mndgone:eth0.json").exists(), "the gone pod swept")
    assert len(leases(node.data_dir)) == 1  # alive's
    wait_until(
        lambda: daemon.metric("multus_node_sweep_records_total", outcome="kept") >= 1,
        "the failing DEL counted",
    )
    assert (records / "mndfailing:eth0.json").exists()
    assert (records / "mndalive:eth0.json").exists()
    assert daemon.metric("multus_node_sweep_records_total", outcome="swept") == 1
    flaky.steer()  # its DEL works again: the next sweep finishes it
    wait_until(lambda: not (records / "mndfailing:eth0.json").exists(), "the failing one swept")
    assert flaky.marker_names() == []
    api.delete("v1/pods", "default", "alive")
    wait_until(lambda: not (records / "mndalive:eth0.json").exists(), "the last one swept")
    assert leases(node.data_dir) == []


def test_sigterm_finishes_what_runs_and_keeps_the_conf(
    node: Node, tmp_path: Path, daemons: list[Daemon]
) -> None:
    world = fakes(tmp_path, node)
    slow = world.delegate("slow")
    slow.steer(ADD={"sleep": 1.0})
    (node.conf_dir / "10-default.conf").write_text(
        json.dumps({"cniVersion": "1.0.0", "name": "default", "type": "bridge"})
    )
    daemon = Daemon(
        node,
        tmp_path,
        None,
        conf_source="auto",
        extra=("--cni-path", f"{CNI_PLUGINS}:{world.bin_dir}"),
    ).start()
    daemons.append(daemon)
    conf_file = node.conf_dir / "00-multus.conf"
    wait_until(conf_file.exists, "the conf generated")
    conf = {"cniVersion": "1.0.0", "name": "mnd-term", "delegates": [slow.conf()]}
    netns = node.add_pod("mnd")
    adding = shim_in_background(daemon, "ADD", conf, container_id="mndterm", netns=netns)
    wait_until(lambda: slow.calls("ADD"), "the ADD running")
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    done = finished(adding)
    assert done.rc == 0, done.stdout
    assert daemon.proc.wait(30) == 0
    assert conf_file.exists(), "the conf stays when the agent stops"
    assert not (daemon.socket_dir / "multus.sock").exists()
    later = daemon.shim("c", "ADD", conf, container_id="mndlater", netns=netns)
    assert later.doc["code"] == 11
    assert daemon.shim("c", "DEL", conf, container_id="mndlater").rc == 0
    restarted = daemon.restarted().start()
    daemons.append(restarted)
    assert restarted.shim("c", "DEL", conf, container_id="mndterm", netns=netns).rc == 0
    assert slow.marker_names() == []
