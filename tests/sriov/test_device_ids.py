"""deviceID for NADs annotated with a resourceName, through the real `multus` executable
in Kubernetes mode (the API emulator in the node netns) and our sriov delegate on the
simulated NIC: kubelet's checkpoint file (device plugins) and DRA ResourceClaims and
ResourceSlices. Several networks sharing one resourceName get distinct devices in
Multus's order; a DRA device Multus would skip fails the ADD, naming claim and device."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.conftest import Lab
from tests.k8s.emulator import NAD, POD, RESOURCECLAIM, RESOURCESLICE, Api
from tests.sriov.rig import FakeNic
from tests.support.lab import Node

RESOURCE = "intel.com/sriov_netdevice"
ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"


@pytest.fixture
def lab(node: Node, nic: FakeNic, tmp_path: Path) -> Iterator[Lab]:
    api = Api(f"/var/run/netns/{node.name}")
    try:
        yield Lab(node, api, tmp_path)
    finally:
        api.close()


def sriov_nad(lab: Lab, name: str, resource: str | None = RESOURCE, **extra: Any) -> None:
    config = {"cniVersion": "1.0.0", "type": "sriov", "name": name, **extra}
    lab.nad(name, config)
    if resource is not None:

        def annotate() -> None:
            obj = lab.api.emulator.objects[NAD, "default", name]
            raw = dict(obj.raw)
            raw["metadata"] = {**raw["metadata"], "annotations": {ANNOTATION: resource}}
            obj.create(raw)

        lab.api.call(annotate)


def k8s_conf(lab: Lab, **extra: Any) -> dict[str, Any]:
    master = {
        "type": "bridge",
        "name": "cluster",
        "bridge": lab.node.add_bridge("msrbr9"),
        "ipam": lab.node.host_local("10.99.0.0/24"),
    }
    return lab.conf([master], **extra)


def pod_with(lab: Lab, networks: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    pod = lab.pod("vfpod", annotations={"k8s.v1.cni.cncf.io/networks": networks})
    if status is not None:
        pod["status"] = status
        lab.api.put(POD, pod)
    return pod


def pod_vf_macs(lab: Lab, netns: str) -> dict[str, str]:
    links = json.loads(lab.node.pod_ip(netns, "-j", "link", "show"))
    return {link["ifname"]: link["address"] for link in links}


def test_checkpoint_devices_go_to_networks_sorted_per_container(lab: Lab, nic: FakeNic) -> None:
    sriov_nad(lab, "vf-a")
    sriov_nad(lab, "vf-b", vlan=11)
    pod = pod_with(lab, "vf-a, vf-b")
    vfs = nic.pfs[0].vfs
    checkpoint = lab.root / "kubelet_internal_checkpoint"
    checkpoint.write_text(
        json.dumps(
            {
                "Data": {
                    "PodDeviceEntries": [
                        {
                            "PodUID": "someone-else",
                            "ContainerName": "c",
                            "ResourceName": RESOURCE,
                            "DeviceIDs": {"0": [vfs[0].pci]},
                        },
                        # NUMA-keyed, unsorted: Multus's order is sorted per container
                        {
                            "PodUID": pod["metadata"]["uid"],
                            "ContainerName": "c",
                            "ResourceName": RESOURCE,
                            "DeviceIDs": {"0": [vfs[1].pci], "1": [vfs[3].pci]},
                        },
                    ],
                    "RegisteredDevices": {},
                },
                "Checksum": 1,
            }
        )
    )
    conf = k8s_conf(lab, kubeletCheckpointFile=str(checkpoint))
    netns = lab.node.add_pod("msrpod")
    macs_before = {vf.pci: nic.host_link(vf.netdev)["address"] for vf in vfs}  # type: ignore[arg-type,index]
    add = lab.run("ADD", conf, pod, netns=netns, container_id="cp1", extra_env=nic.env())
    assert add.rc == 0, add.stdout + add.stderr
    first, second = sorted([vfs[1].pci, vfs[3].pci])
    inside = pod_vf_macs(lab, netns)
    assert inside["net1"] == macs_before[first] and inside["net2"] == macs_before[second]
    index = {vf.pci: vf.index for vf in vfs}
    assert nic.vf_state("enp12s0f1", index[second])["vlan"] == 11
    assert lab.run("DEL", conf, pod, netns=netns, container_id="cp1", extra_env=nic.env()).rc == 0


def test_too_few_devices_for_the_networks_fails_before_anything_runs(
    lab: Lab, nic: FakeNic
) -> None:
    sriov_nad(lab, "vf-a")
    pod = pod_with(lab, "vf-a, vf-a@net9")
    checkpoint = lab.root / "ckpt"
    checkpoint.write_text(
        json.dumps(
            {
                "Data": {
                    "PodDeviceEntries": [
                        {
                            "PodUID": pod["metadata"]["uid"],
                            "ContainerName": "c",
                            "ResourceName": RESOURCE,
                            "DeviceIDs": [nic.pfs[0].vfs[0].pci],
                        },
                    ]
                }
            }
        )
    )
    conf = k8s_conf(lab, kubeletCheckpointFile=str(checkpoint))
    netns = lab.node.add_pod("msrpod")
    add = lab.run("ADD", conf, pod, netns=netns, container_id="cp2", extra_env=nic.env())
    assert add.rc == 1 and add.doc["code"] == 7
    assert (
        "NetworkAttachmentDefinition default/vf-a: needs a device of resource "
        f"'{RESOURCE}' ({ANNOTATION}) but pod default/vfpod has 1 allocated for 2 network(s)"
    ) in add.doc["msg"]
    assert lab.node.pod_links(netns) == {"lo"}


def slice_device(name: str, resource: str | None, device_id: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {"resource.kubernetes.io/pciBusID": {"string": device_id or ""}}
    if resource is not None:
        attributes["k8s.cni.cncf.io/resourceName"] = {"string": resource}
    if device_id is not None:
        attributes["k8s.cni.cncf.io/deviceID"] = {"string": device_id}
    return {"name": name, "attributes": attributes}


def dra_objects(lab: Lab, devices: list[dict[str, Any]], results: list[str]) -> None:
    driver = "sriovnetwork.k8snetworkplumbingwg.io"
    slice_obj = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceSlice",
        "metadata": {"name": "node1-sriov"},
        "spec": {
            "driver": driver,
            "nodeName": "node1",
            "pool": {"name": "node1", "generation": 1, "resourceSliceCount": 1},
            "devices": devices,
        },
    }
    other = {
        **slice_obj,
        "metadata": {"name": "gpu"},
        "spec": {
            "driver": "gpu.example.com",
            "pool": {"name": "node1"},
            "devices": [{"name": "vf-0", "attributes": {}}],
        },
    }
    claim = {
        "apiVersion": "resource.k8s.io/v1",
        "kind": "ResourceClaim",
        "metadata": {"name": "vfpod-vfs-x7k", "namespace": "default"},
        "spec": {"devices": {"requests": [{"name": "vfs"}]}},
        "status": {
            "allocation": {
                "devices": {
                    "results": [
                        {"request": "vfs", "driver": driver, "pool": "node1", "device": d}
                        for d in results
                    ]
                }
            }
        },
    }

    def store() -> None:
        for obj in (slice_obj, other):
            lab.api.emulator.objects[RESOURCESLICE, None, obj["metadata"]["name"]] = obj
        lab.api.emulator.objects[RESOURCECLAIM, "default", "vfpod-vfs-x7k"] = claim

    lab.api.call(store)


CLAIM_STATUS = {"resourceClaimStatuses": [{"name": "vfs", "resourceClaimName": "vfpod-vfs-x7k"}]}


def test_dra_claim_devices_go_to_networks_in_allocation_order(lab: Lab, nic: FakeNic) -> None:
    vfs = nic.pfs[1].vfs
    sriov_nad(lab, "vf-a", resource="sriov.example.com/net-a")
    dra_objects(
        lab,
        [
            slice_device("vf-1", "sriov.example.com/net-a", vfs[1].pci),
            slice_device("vf-0", "sriov.example.com/net-a", vfs[0].pci),
        ],
        ["vf-1", "vf-0"],
    )
    pod = pod_with(lab, "vf-a@left, vf-a@right", CLAIM_STATUS)
    conf = k8s_conf(lab, kubeletCheckpointFile=str(lab.root / "none"))
    netns = lab.node.add_pod("msrpod")
    macs = {vf.pci: nic.host_link(vf.netdev)["address"] for vf in vfs[:2]}  # type: ignore[arg-type,index]
    add = lab.run("ADD", conf, pod, netns=netns, container_id="dra1", extra_env=nic.env())
    assert add.rc == 0, add.stdout + add.stderr
    inside = pod_vf_macs(lab, netns)
    assert inside["left"] == macs[vfs[1].pci] and inside["right"] == macs[vfs[0].pci]
    dra = [(m, p) for m, p in lab.api.requests() if p.startswith("/apis/resource.k8s.io/")]
    assert dra == [
        ("GET", "/apis/resource.k8s.io/v1/namespaces/default/resourceclaims/vfpod-vfs-x7k"),
        ("GET", "/apis/resource.k8s.io/v1/resourceslices"),
    ]
    assert_allowed("plugin", [("resourceclaims", "get"), ("resourceslices", "list")])
    assert lab.run("DEL", conf, pod, netns=netns, container_id="dra1", extra_env=nic.env()).rc == 0


@pytest.mark.parametrize(
    ("device", "why"),
    [
        (
            slice_device("vf-0", "sriov.example.com/net-a", None),
            "no k8s.cni.cncf.io/deviceID attribute",
        ),
        (slice_device("vf-0", None, "0000:02:02.2"), "no k8s.cni.cncf.io/resourceName attribute"),
    ],
)
def test_dra_device_multus_would_skip_fails_the_add_naming_claim_and_device(
    lab: Lab, nic: FakeNic, device: dict[str, Any], why: str
) -> None:
    sriov_nad(lab, "vf-a", resource="sriov.example.com/net-a")
    dra_objects(lab, [device], ["vf-0"])
    pod = pod_with(lab, "vf-a", CLAIM_STATUS)
    conf = k8s_conf(lab, kubeletCheckpointFile=str(lab.root / "none"))
    netns = lab.node.add_pod("msrpod")
    add = lab.run("ADD", conf, pod, netns=netns, container_id="dra2", extra_env=nic.env())
    assert add.rc == 1 and add.doc["code"] == 7, add.stdout
    assert (
        "DRA devices skipped: ResourceClaim default/vfpod-vfs-x7k device vf-0 (driver "
        f"sriovnetwork.k8snetworkplumbingwg.io, pool node1): {why}"
    ) in add.doc["msg"]
    assert lab.node.pod_links(netns) == {"lo"}
    assert nic.records() == []


def test_extended_resource_mapping_that_disagrees_is_named(lab: Lab, nic: FakeNic) -> None:
    sriov_nad(lab, "vf-a", resource="sriov.example.com/net-a")
    dra_objects(lab, [slice_device("vf-0", "sriov.example.com/net-b", "0000:02:02.2")], ["vf-0"])
    status = {
        "extendedResourceClaimStatus": {
            "resourceClaimName": "vfpod-vfs-x7k",
            "requestMappings": [
                {
                    "containerName": "c",
                    "resourceName": "sriov.example.com/net-a",
                    "requestName": "vfs",
                }
            ],
        }
    }
    pod = pod_with(lab, "vf-a", status)
    conf = k8s_conf(lab, kubeletCheckpointFile=str(lab.root / "none"))
    netns = lab.node.add_pod("msrpod")
    add = lab.run("ADD", conf, pod, netns=netns, container_id="dra3", extra_env=nic.env())
    assert add.rc == 1 and add.doc["code"] == 7
    assert (
        "k8s.cni.cncf.io/resourceName is 'sriov.example.com/net-b', its extended resource "
        "mapping says 'sriov.example.com/net-a'"
    ) in add.doc["msg"]


def assert_allowed(component: str, needs: list[tuple[str, str]]) -> None:
    """rbac/rules.yaml grants the component what the code just asked the API for."""
    import yaml

    from tests.support.cni import REPO

    rules = yaml.safe_load((REPO / "rbac" / "rules.yaml").read_text())[component]
    for resource, verb in needs:
        assert any(
            "resource.k8s.io" in r["apiGroups"]
            and resource in r["resources"]
            and verb in r["verbs"]
            and r["scope"] == "cluster"
            for r in rules
        ), f"rbac/rules.yaml: {component} may not {verb} {resource}"
