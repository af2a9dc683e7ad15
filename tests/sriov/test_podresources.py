"""kubelet's PodResources gRPC API, served for real on a unix socket by a test server that
encodes with the protobuf runtime (from the API's message definitions), read by our
client with its own small decoder, and handed to the same PodDevices the plugin uses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from multus_cni.k8s.devices import PodDevices
from multus_cni.netconf import DelegateNetwork
from multus_sriov.podresources import PodResources, PodResourcesError


def _api_messages() -> dict[str, Any]:
    """k8s.io/kubelet/pkg/apis/podresources/v1/api.proto, the messages we read."""
    proto = descriptor_pb2.FileDescriptorProto(
        name=f"podresources-{uuid.uuid4().hex}.proto", package="v1"
    )
    string, message, int64 = (
        descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
        descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    )
    repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL

    def add(name: str, *fields: tuple[str, int, int, int, str]) -> None:
        msg = proto.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            field = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = type_name

    add("TopologyInfo")
    add(
        "ContainerDevices",
        ("resource_name", 1, string, optional, ""),
        ("device_ids", 2, string, repeated, ""),
        ("topology", 3, message, optional, ".v1.TopologyInfo"),
    )
    add(
        "ContainerResources",
        ("name", 1, string, optional, ""),
        ("devices", 2, message, repeated, ".v1.ContainerDevices"),
        ("cpu_ids", 3, int64, repeated, ""),
    )
    add(
        "PodResources",
        ("name", 1, string, optional, ""),
        ("namespace", 2, string, optional, ""),
        ("containers", 3, message, repeated, ".v1.ContainerResources"),
    )
    add("ListPodResourcesResponse", ("pod_resources", 1, message, repeated, ".v1.PodResources"))
    add(
        "GetPodResourcesRequest",
        ("pod_name", 1, string, optional, ""),
        ("pod_namespace", 2, string, optional, ""),
    )
    add("GetPodResourcesResponse", ("pod_resources", 1, message, optional, ".v1.PodResources"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    names = (
        "PodResources",
        "ListPodResourcesResponse",
        "GetPodResourcesRequest",
        "GetPodResourcesResponse",
    )
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"v1.{n}")) for n in names
    }


MSG = _api_messages()
PODS = [
    {
        "name": "other",
        "namespace": "default",
        "containers": [
            {
                "name": "c",
                "devices": [{"resource_name": "intel.com/vf", "device_ids": ["0000:0c:02.0"]}],
            }
        ],
    },
    {
        "name": "vfpod",
        "namespace": "team",
        "containers": [
            {
                "name": "sidecar",
                "devices": [
                    {
                        "resource_name": "intel.com/vf",
                        "device_ids": ["0000:0c:02.7", "0000:0c:02.3"],
                    }
                ],
            },
            {
                "name": "app",
                "cpu_ids": [2, 3],
                "devices": [
                    {
                        "resource_name": "intel.com/vf",
                        "device_ids": ["0000:0c:02.5", "0000:0c:02.1"],
                    },
                    {"resource_name": "nvidia.com/gpu", "device_ids": ["GPU-1"]},
                ],
            },
        ],
    },
]


def _pod_message(doc: dict[str, Any]) -> Any:
    return MSG["PodResources"](**doc)


@pytest.fixture(params=["Get", "List only"])
def kubelet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A PodResources server on a unix socket: the current API, or an old kubelet's
    (List only: Get answers UNIMPLEMENTED)."""
    sock = tmp_path / "kubelet.sock"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))

    def get(raw: bytes, context: grpc.ServicerContext) -> bytes:
        req = MSG["GetPodResourcesRequest"].FromString(raw)
        for doc in PODS:
            if (doc["namespace"], doc["name"]) == (req.pod_namespace, req.pod_name):
                return bytes(
                    MSG["GetPodResourcesResponse"](
                        pod_resources=_pod_message(doc)
                    ).SerializeToString()
                )
        context.abort(
            grpc.StatusCode.NOT_FOUND, f"pod {req.pod_namespace}/{req.pod_name} not found"
        )
        return b""

    def listing(raw: bytes, context: grpc.ServicerContext) -> bytes:
        answer = MSG["ListPodResourcesResponse"](pod_resources=[_pod_message(d) for d in PODS])
        return bytes(answer.SerializeToString())

    handlers = {"List": grpc.unary_unary_rpc_method_handler(listing)}
    if request.param == "Get":
        handlers["Get"] = grpc.unary_unary_rpc_method_handler(get)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("v1.PodResourcesLister", handlers),)
    )
    server.add_insecure_port(f"unix://{sock}")
    server.start()
    try:
        yield str(sock)
    finally:
        server.stop(None)


POD = {
    "metadata": {"name": "vfpod", "namespace": "team", "uid": "u1"},
    "spec": {"initContainers": [{"name": "sidecar"}], "containers": [{"name": "app"}]},
}


def test_pod_resources_read_over_grpc(kubelet: str) -> None:
    found = PodResources(kubelet).allocations(POD)
    assert found == [
        ("sidecar", "intel.com/vf", ["0000:0c:02.7", "0000:0c:02.3"]),
        ("app", "intel.com/vf", ["0000:0c:02.5", "0000:0c:02.1"]),
        ("app", "nvidia.com/gpu", ["GPU-1"]),
    ]
    assert PodResources(kubelet).pod("team", "nobody") is None


def test_networks_sharing_a_resource_get_devices_in_multus_order(kubelet: str) -> None:
    """Containers in pod order (init first), device IDs sorted per container."""
    devices = PodDevices(POD, PodResources(kubelet), None)
    nad = {"metadata": {"annotations": {"k8s.v1.cni.cncf.io/resourceName": "intel.com/vf"}}}
    got = []
    for i in range(4):
        net = DelegateNetwork(f"n{i}", "1.0.0", [{"type": "sriov"}], is_list=False, source="t")
        devices.assign(net, nad, f"net{i}")
        assert net.plugins[0]["deviceID"] == net.plugins[0]["pciBusID"]
        assert net.runtime_config == {"deviceID": net.plugins[0]["deviceID"]}
        got.append(net.plugins[0]["deviceID"])
    assert got == ["0000:0c:02.3", "0000:0c:02.7", "0000:0c:02.1", "0000:0c:02.5"]


def test_kubelet_unreachable_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        PodResourcesError, match=r"kubelet PodResources at .*: Get team/vfpod: UNAVAILABLE"
    ):
        PodResources(str(tmp_path / "absent.sock"), timeout=1).allocations(POD)
