"""kubelet's PodResources API (`/var/lib/kubelet/pod-resources/kubelet.sock`, gRPC,
package `v1`): which devices each container of a pod was allocated by device plugins.

For the long-running side only (multus-node): grpcio is imported here, never by an exec'd
plugin (thin mode reads kubelet's checkpoint file instead). The handful of messages are
decoded with a small protobuf wire-format reader, so no generated code or protobuf
runtime is needed; `Get` (one pod) is used, and `List` where the kubelet is too old for it.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SOCKET = "/var/lib/kubelet/pod-resources/kubelet.sock"
SERVICE = "/v1.PodResourcesLister"
MAX_MESSAGE = 16 << 20  # as Multus: large nodes have large answers
TIMEOUT = 10.0


class PodResourcesError(Exception):
    """kubelet could not be asked, or answered something we cannot read."""


# ---- protobuf wire format: just what these messages use ----


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise PodResourcesError("truncated protobuf varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise PodResourcesError("protobuf varint too long")


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varint/fixed fields, bytes for the rest."""
    out: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            out.append((number, value))
        elif wire == 2:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise PodResourcesError("truncated protobuf field")
            out.append((number, data[at : at + size]))
            at += size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            out.append((number, int.from_bytes(data[at : at + width], "little")))
            at += width
        else:
            raise PodResourcesError(f"unsupported protobuf wire type {wire}")
    return out


def _string(number: int, text: str) -> bytes:
    raw = text.encode()
    return _key(number, 2) + _encode_varint(len(raw)) + raw


def _key(number: int, wire: int) -> bytes:
    return _encode_varint(number << 3 | wire)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def encode_get_request(namespace: str, name: str) -> bytes:
    """GetPodResourcesRequest{pod_name=1, pod_namespace=2}."""
    return _string(1, name) + _string(2, namespace)


def _text(value: int | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else ""


def decode_pod(data: bytes) -> dict[str, Any]:
    """PodResources{name=1, namespace=2, containers=3{name=1, devices=2{resource_name=1,
    device_ids=2}}} as plain dicts."""
    pod: dict[str, Any] = {"name": "", "namespace": "", "containers": []}
    for number, value in fields(data):
        if number == 1:
            pod["name"] = _text(value)
        elif number == 2:
            pod["namespace"] = _text(value)
        elif number == 3 and isinstance(value, bytes):
            container: dict[str, Any] = {"name": "", "devices": []}
            for cnum, cvalue in fields(value):
                if cnum == 1:
                    container["name"] = _text(cvalue)
                elif cnum == 2 and isinstance(cvalue, bytes):
                    device: dict[str, Any] = {"resourceName": "", "deviceIds": []}
                    for dnum, dvalue in fields(cvalue):
                        if dnum == 1:
                            device["resourceName"] = _text(dvalue)
                        elif dnum == 2:
                            device["deviceIds"].append(_text(dvalue))
                    container["devices"].append(device)
            pod["containers"].append(container)
    return pod


def decode_get_response(data: bytes) -> dict[str, Any] | None:
    """GetPodResourcesResponse{pod_resources=1}."""
    for number, value in fields(data):
        if number == 1 and isinstance(value, bytes):
            return decode_pod(value)
    return None


def decode_list_response(data: bytes) -> list[dict[str, Any]]:
    """ListPodResourcesResponse{pod_resources=1 (repeated)}."""
    return [decode_pod(v) for n, v in fields(data) if n == 1 and isinstance(v, bytes)]


class PodResources:
    """A `DevicePluginSource` (see multus_cni.k8s.devices) backed by kubelet's socket."""

    def __init__(self, socket_path: str = SOCKET, timeout: float = TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        import grpc

        options = [("grpc.max_receive_message_length", MAX_MESSAGE)]
        with grpc.insecure_channel(f"unix://{self.socket_path}", options=options) as channel:
            get = channel.unary_unary(
                f"{SERVICE}/Get",
                request_serializer=lambda raw: raw,
                response_deserializer=lambda raw: raw,
            )
            try:
                answer = get(encode_get_request(namespace, name), timeout=self.timeout)
                return decode_get_response(answer)
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.NOT_FOUND:
                    return None
                if code != grpc.StatusCode.UNIMPLEMENTED:
                    raise PodResourcesError(
                        f"kubelet PodResources at {self.socket_path}: Get {namespace}/{name}: "
                        f"{code.name}: {exc.details()}"
                    ) from None
            listing = channel.unary_unary(
                f"{SERVICE}/List",
                request_serializer=lambda raw: raw,
                response_deserializer=lambda raw: raw,
            )
            try:
                pods = decode_list_response(listing(b"", timeout=self.timeout))
            except grpc.RpcError as exc:
                raise PodResourcesError(
                    f"kubelet PodResources at {self.socket_path}: List: {exc.code().name}: "
                    f"{exc.details()}"
                ) from None
        return next((p for p in pods if (p["namespace"], p["name"]) == (namespace, name)), None)

    def allocations(self, pod: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
        meta = pod.get("metadata") or {}
        found = self.pod(str(meta.get("namespace") or ""), str(meta.get("name") or ""))
        if found is None:
            return []
        return [
            (container["name"], device["resourceName"], list(device["deviceIds"]))
            for container in found["containers"]
            for device in container["devices"]
        ]
