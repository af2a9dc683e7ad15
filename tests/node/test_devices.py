"""A NAD that asks for a device by resource name gets the pod's allocated device in thick
mode: device plugins through kubelet's PodResources socket (a real gRPC server here),
DRA from the agent's warm caches of ResourceClaims and ResourceSlices (no API read)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.harness import FakeDelegate, FakeWorld
from tests.node.conftest import NODE_NAME, Daemon, node_pod, vf_pod
from tests.node.emulator import WatchApi
from tests.node.test_thick_e2e import wait_cached
from tests.sriov.test_podresources import kubelet  # noqa: F401 (the fake kubelet fixture)
from tests.support.cni import CNI_PLUGINS, pod_args
from tests.support.lab import Node

pytestmark = pytest.mark.usefixtures("c_shim")
NAD = "k8s.cni.cncf.io/v1/network-attachment-definitions"
RESOURCE = "k8s.v1.cni.cncf.io/resourceName"


def vf_nad(api: WatchApi, fake: FakeDelegate, resource: str, namespace: str) -> None:
    config = {"cniVersion": "1.0.0", **fake.conf(), "capabilities": {"deviceID": True}}
    api.put(
        NAD,
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {
                "name": "vfnet",
                "namespace": namespace,
                "annotations": {RESOURCE: resource},
            },
            "spec": {"config": json.dumps(config)},
        },
    )


def attach(node: Node, daemon: Daemon, pod: dict[str, Any], cid: str) -> Any:
    conf = {
        "cniVersion": "1.0.0",
        "name": "mnd-dev",
        "kubeconfig": "/x",
        "delegates": [
            {
                "type": "bridge",
                "bridge": node.add_bridge("mnddev0"),
                "ipam": node.host_local("10.206.70.0/24"),
            }
        ],
    }
    netns = node.add_pod("mnd")
    added = daemon.shim(
        "c", "ADD", conf, container_id=cid, netns=netns, cni_args=pod_args(pod, cid)
    )
    assert added.rc == 0, added.stdout + added.stderr
    assert (
        daemon.shim("c", "DEL", conf, container_id=cid, netns=netns, cni_args=pod_args(pod, cid)).rc
        == 0
    )
    return added


def fakes(tmp_path: Path) -> FakeWorld:
    (tmp_path / "fw").mkdir()
    return FakeWorld(tmp_path / "fw", "")


def test_device_plugin_devices_from_kubelet(
    node: Node,
    api: WatchApi,
    tmp_path: Path,
    daemons: list[Daemon],
    kubelet: str,  # noqa: F811
) -> None:
    world = fakes(tmp_path)
    vf = world.delegate("vf")
    vf_nad(api, vf, "intel.com/vf", "team")
    daemon = Daemon(
        node,
        tmp_path,
        api,
        extra=(
            "--kubelet-pod-resources",
            kubelet,
            "--cni-path",
            f"{CNI_PLUGINS}:{world.bin_dir}",
        ),
    ).start()
    daemons.append(daemon)
    pod = vf_pod(api, "vfnet, vfnet@vf1")
    wait_cached(api, daemon)
    attach(node, daemon, pod, "mnddevplugin")
    sent = [c["stdin"] for c in vf.calls("ADD")]
    # containers in pod order (init first), device IDs sorted: as Multus hands them out
    assert [s["deviceID"] for s in sent] == ["0000:0c:02.3", "0000:0c:02.7"]
    assert [s["runtimeConfig"]["deviceID"] for s in sent] == ["0000:0c:02.3", "0000:0c:02.7"]


def test_dra_devices_from_warm_caches(
    node: Node, api: WatchApi, tmp_path: Path, daemons: list[Daemon]
) -> None:
    world = fakes(tmp_path)
    vf = world.delegate("vf")
    vf_nad(api, vf, "sriov.example.com/vf", "default")
    api.put(
        "resource.k8s.io/v1/resourceslices",
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceSlice",
            "metadata": {"name": "node-1-vfs"},
            "spec": {
                "driver": "sriov.example.com",
                "nodeName": NODE_NAME,
                "pool": {"name": "p0", "generation": 1, "resourceSliceCount": 1},
                "devices": [
                    {
                        "name": "vf-3",
                        "attributes": {
                            "k8s.cni.cncf.io/resourceName": {"string": "sriov.example.com/vf"},
                            "k8s.cni.cncf.io/deviceID": {"string": "0000:3b:02.3"},
                        },
                    }
                ],
            },
        },
    )
    api.put(
        "resource.k8s.io/v1/resourceslices",
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceSlice",
            "metadata": {"name": "other-node-vfs"},
            "spec": {
                "driver": "sriov.example.com",
                "nodeName": "other-node",
                "pool": {"name": "p9"},
                "devices": [],
            },
        },
    )
    api.put(
        "resource.k8s.io/v1/resourceclaims",
        {
            "apiVersion": "resource.k8s.io/v1",
            "kind": "ResourceClaim",
            "metadata": {"name": "drapod-vfs", "namespace": "default"},
            "status": {
                "allocation": {
                    "devices": {
                        "results": [
                            {
                                "request": "vf",
                                "driver": "sriov.example.com",
                                "pool": "p0",
                                "device": "vf-3",
                            }
                        ]
                    }
                }
            },
        },
    )
    daemon = Daemon(
        node,
        tmp_path,
        api,
        extra=(
            "--cni-path",
            f"{CNI_PLUGINS}:{world.bin_dir}",
            "--kubelet-pod-resources",
            str(tmp_path / "no-kubelet.sock"),
        ),
    ).start()
    daemons.append(daemon)
    pod = node_pod(api, "drapod", "vfnet", claims={"vfs": "drapod-vfs"})
    wait_cached(api, daemon)
    daemon.wait_for(
        lambda: (
            daemon.metric("multus_node_cache_objects", resource="resourceslices") == 1
            and daemon.metric("multus_node_cache_objects", resource="resourceclaims") == 1
        ),
        "DRA cached",
    )
    mark = len(api.queries())
    attach(node, daemon, pod, "mnddra")
    assert api.reads(mark) == [], "claims and slices came from the caches"
    (sent,) = [c["stdin"] for c in vf.calls("ADD")]
    assert sent["deviceID"] == "0000:3b:02.3"
