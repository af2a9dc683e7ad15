"""Switching from upstream Multus: pods it attached before the switch are DEL'd from its
cache (`cniDir/<containerID>` + libcni's `results/`), so their addresses and links are
freed, in real netns with the Debian plugins."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.support.cni import leases
from tests.support.lab import Node, bridge_delegate, ptp_delegate

CLUSTER = "10.204.0.0/24"
SECOND = "10.204.1.0/24"


def exec_plugin(
    node: Node, command: str, conf: dict[str, Any], cid: str, netns: str, ifname: str
) -> subprocess.CompletedProcess[bytes]:
    """Call a plugin the way libcni (inside upstream Multus) did, in the node netns."""
    env = {
        "PATH": os.environ["PATH"],
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_PATH": node.cni_path,
        "CNI_ARGS": "IgnoreUnknown=true;K8S_POD_NAMESPACE=default;K8S_POD_NAME=p",
    }
    plugin = os.path.join(node.cni_path, conf["type"])
    return subprocess.run(
        ["ip", "netns", "exec", node.name, plugin],
        input=json.dumps(conf).encode(),
        env=env,
        capture_output=True,
        check=False,
    )


def upstream_attach(
    node: Node, cid: str, netns: str, confs: list[dict[str, Any]], succeeded: list[bool]
) -> None:
    """What upstream Multus leaves on disk after an ADD: its delegates list, and a libcni
    result cache for each delegate whose ADD succeeded (`succeeded[i]` False: that one
    failed after it was saved, as after a failed ADD)."""
    delegates = []
    for index, conf in enumerate(confs):
        raw = json.dumps(conf).encode()
        delegates.append(
            {
                "Conf": {k: conf[k] for k in ("cniVersion", "name", "type") if k in conf},
                "ConfList": {"cniVersion": "", "name": "", "plugins": None},
                "Name": conf["name"],
                "ifnameRequest": "",
                "IsFilterV4Gateway": False,
                "IsFilterV6Gateway": False,
                "Bytes": base64.b64encode(raw).decode(),
            }
        )
        if not succeeded[index]:
            continue
        ifname = "eth0" if index == 0 else f"net{index}"
        proc = exec_plugin(node, "ADD", conf, cid, netns, ifname)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        results = node.cni_dir / "results"
        results.mkdir(mode=0o700, parents=True, exist_ok=True)  # as libcni makes it
        node.cni_dir.chmod(0o700)
        (results / f"{conf['name']}-{cid}-{ifname}").write_text(
            json.dumps(
                {
                    "kind": "cniCacheV1",
                    "containerId": cid,
                    "config": base64.b64encode(raw).decode(),
                    "ifName": ifname,
                    "networkName": conf["name"],
                    "cniArgs": [["IgnoreUnknown", "true"]],
                    "result": json.loads(proc.stdout),
                }
            )
        )
    node.cni_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (node.cni_dir / cid).write_text(json.dumps(delegates))


def upstream_confs(node: Node) -> list[dict[str, Any]]:
    bridge = node.add_bridge("micup0")
    return [
        {"cniVersion": "0.3.1", "name": "cbr0", **bridge_delegate(node, bridge, CLUSTER)},
        {"cniVersion": "0.3.1", "name": "default-second", **ptp_delegate(node, SECOND)},
    ]


def our_conf(node: Node) -> dict[str, Any]:
    """The conf after the switch: not what upstream attached the pod with."""
    return node.conf([ptp_delegate(node, "10.204.9.0/24")], cniVersion="1.0.0")


def test_pod_attached_by_upstream_multus_is_deleted_from_its_cache(node: Node) -> None:
    pod = node.add_pod("mic")
    upstream_attach(node, "c1", pod, upstream_confs(node), [True, True])
    assert len(leases(node.data_dir)) == 2 and {"eth0", "net1"} <= Node.pod_links(pod)
    call = node.run("DEL", our_conf(node), container_id="c1", netns=pod)
    assert call.rc == 0, call.stdout + call.stderr
    assert "upstream Multus" in call.stderr
    assert leases(node.data_dir) == []
    assert Node.pod_links(pod) == {"lo"}
    assert not (node.cni_dir / "c1").exists()
    assert list((node.cni_dir / "results").iterdir()) == []


def test_delegate_without_a_cached_result_is_deleted_best_effort(node: Node) -> None:
    """Upstream saved its delegates, then the second one's ADD failed (no result cache):
    it holds nothing known, so its failing DEL does not fail ours."""
    pod = node.add_pod("mic")
    confs = upstream_confs(node)
    confs[1] = {**confs[1], "type": "macvlan", "master": "micnosuch0"}
    upstream_attach(node, "c1", pod, confs, [True, False])
    call = node.run("DEL", our_conf(node), container_id="c1", netns=pod)
    assert call.rc == 0, call.stdout + call.stderr
    assert leases(node.data_dir) == []
    assert not (node.cni_dir / "c1").exists()


def test_a_held_delegate_whose_plugin_is_gone_fails_and_keeps_the_cache(
    node: Node, tmp_path: Path
) -> None:
    pod = node.add_pod("mic")
    upstream_attach(node, "c1", pod, upstream_confs(node), [True, True])
    bin_dir = tmp_path / "bin"
    shutil.copytree(node.cni_path, bin_dir)
    (bin_dir / "ptp").unlink()
    conf = {**our_conf(node), "binDir": str(bin_dir)}
    call = node.run("DEL", conf, container_id="c1", netns=pod, cni_path=str(bin_dir))
    assert call.rc != 0 and "'ptp'" in call.doc["msg"], call.stdout
    assert (node.cni_dir / "c1").exists()
    assert len(leases(node.data_dir)) == 1  # the bridge's was freed
    call = node.run("DEL", our_conf(node), container_id="c1", netns=pod)
    assert call.rc == 0, call.stdout + call.stderr
    assert leases(node.data_dir) == [] and not (node.cni_dir / "c1").exists()
