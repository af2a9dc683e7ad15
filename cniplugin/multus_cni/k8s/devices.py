"""Which device (VF) each network of a pod gets: a NAD annotated with
`k8s.v1.cni.cncf.io/resourceName` gets `deviceID` (and `pciBusID`, and
`runtimeConfig.deviceID` where the plugin declares that capability) injected, taken from
the devices kubelet allocated to the pod for that resource, as Multus does:

- device plugins: per container (init containers first, then containers, in pod order),
  device IDs sorted, one per network in the order the networks are attached; read from
  kubelet's checkpoint file (thin mode) or its PodResources socket (multus-node);
- Dynamic Resource Allocation (`resource.k8s.io/v1`): the pod's ResourceClaims
  (`status.resourceClaimStatuses`, and `status.extendedResourceClaimStatus` request
  mappings), each allocated device looked up in its driver's ResourceSlices, whose
  attributes `k8s.cni.cncf.io/resourceName` and `k8s.cni.cncf.io/deviceID` say which
  resource it serves and its PCI address.

Where Multus skips a DRA device whose attributes are missing or name another resource
(and the delegate fails later without a word about why), a network left without a device
fails the ADD here, naming the claims and devices that were skipped and why.

The sources are small interfaces (`DevicePluginSource`, `DraSource`): thin mode reads the
checkpoint file and the API; multus-node feeds the same `PodDevices` from its caches.
"""

from __future__ import annotations

from .. import cnijson
from ..errors import CniError, InvalidConfig
from ..logs import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    from ..netconf import DelegateNetwork
    from .resolve import ObjectReader

    class DevicePluginSource(Protocol):
        def allocations(self, pod: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
            """(container name, resource name, device IDs) of the pod, any order."""

    class DraSource(Protocol):
        def claim(self, namespace: str, name: str) -> dict[str, Any] | None:
            """A ResourceClaim, None when there is none."""

        def slices(self, driver: str, pool: str) -> list[dict[str, Any]]:
            """The ResourceSlices of one driver's pool."""


RESOURCE_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
DEVICE_ID_ATTRIBUTE = "k8s.cni.cncf.io/deviceID"
RESOURCE_NAME_ATTRIBUTE = "k8s.cni.cncf.io/resourceName"
CHECKPOINT = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint"
RESOURCE_API = "/apis/resource.k8s.io/v1"
MAX_CHECKPOINT_BYTES = 16 << 20


class CheckpointFile:
    """kubelet's device-manager checkpoint: `Data.PodDeviceEntries[]` with `PodUID`,
    `ContainerName`, `ResourceName` and `DeviceIDs` (a list, or since kubelet 1.20 a map
    NUMA node -> list)."""

    def __init__(self, path: str = CHECKPOINT) -> None:
        self.path = path

    def allocations(self, pod: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
        uid = str((pod.get("metadata") or {}).get("uid") or "")
        try:
            with open(self.path, "rb") as handle:
                data = handle.read(MAX_CHECKPOINT_BYTES + 1)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise CniError(f"kubelet checkpoint {self.path}: {exc.strerror}", code=5) from None
        try:
            doc = cnijson.loads(data)
            entries = doc["Data"]["PodDeviceEntries"] or []
        except (ValueError, KeyError, TypeError):
            raise CniError(
                f"kubelet checkpoint {self.path}: not a device-manager checkpoint", code=5
            ) from None
        found: list[tuple[str, str, list[str]]] = []
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or entry.get("PodUID") != uid:
                continue
            ids = entry.get("DeviceIDs")
            if isinstance(ids, dict):  # per NUMA node
                flat = [d for key in sorted(ids, key=str) for d in (ids[key] or [])]
            else:
                flat = list(ids or [])
            found.append(
                (
                    str(entry.get("ContainerName", "")),
                    str(entry.get("ResourceName", "")),
                    [str(d) for d in flat],
                )
            )
        return found


class ApiDra:
    """DRA objects straight from the API (thin mode: one GET per claim, one LIST per
    driver; cached for the rest of the call)."""

    def __init__(self, client: ObjectReader) -> None:
        self.client = client
        self._slices: dict[str, list[dict[str, Any]]] = {}

    def claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.client.get(f"{RESOURCE_API}/namespaces/{namespace}/resourceclaims/{name}")

    def slices(self, driver: str, pool: str) -> list[dict[str, Any]]:
        if driver not in self._slices:
            items: list[dict[str, Any]] = []
            token = ""
            while True:
                query = f"?fieldSelector=spec.driver%3D{driver}&limit=500"
                if token:
                    query += f"&continue={token}"
                page = self.client.get(f"{RESOURCE_API}/resourceslices{query}") or {}
                items += [i for i in page.get("items") or [] if isinstance(i, dict)]
                token = str((page.get("metadata") or {}).get("continue") or "")
                if not token:
                    break
            self._slices[driver] = items
        return [
            s
            for s in self._slices[driver]
            if (s.get("spec") or {}).get("driver") == driver
            and ((s.get("spec") or {}).get("pool") or {}).get("name") == pool
        ]


def _attribute(device: dict[str, Any], key: str) -> str | None:
    value = (device.get("attributes") or {}).get(key)
    if isinstance(value, dict):
        value = value.get("string")
    return value if isinstance(value, str) and value else None


class PodDevices:
    """The pod's allocated devices per resource name, handed out one per network."""

    def __init__(
        self,
        pod: dict[str, Any],
        device_plugins: DevicePluginSource,
        dra: DraSource | None,
    ) -> None:
        self.pod = pod
        meta = pod.get("metadata") or {}
        self.ref = f"{meta.get('namespace')}/{meta.get('name')}"
        self.device_plugins = device_plugins
        self.dra = dra
        self._map: dict[str, list[str]] | None = None
        self._skipped: list[str] = []  # DRA devices that serve no network, and why
        self._used: dict[str, int] = {}

    def assign(self, network: DelegateNetwork, nad: dict[str, Any], where: str) -> None:
        annotations = (nad.get("metadata") or {}).get("annotations") or {}
        resource = annotations.get(RESOURCE_ANNOTATION) if isinstance(annotations, dict) else None
        if not resource:
            return
        if not isinstance(resource, str):
            raise InvalidConfig(f"{where}: annotation {RESOURCE_ANNOTATION} must be a string")
        devices = self.resource_map().get(resource, [])
        index = self._used.get(resource, 0)
        if index >= len(devices):
            have = ", ".join(f"{k} ({len(v)})" for k, v in sorted(self.resource_map().items()))
            skipped = f"; DRA devices skipped: {'; '.join(self._skipped)}" if self._skipped else ""
            raise InvalidConfig(
                f"{where}: needs a device of resource {resource!r} ({RESOURCE_ANNOTATION}) but "
                f"pod {self.ref} has {len(devices)} allocated for {index + 1} network(s) asking "
                f"for it (allocated: {have or 'none'}{skipped})"
            )
        device = devices[index]
        self._used[resource] = index + 1
        for plugin in network.plugins:
            plugin["deviceID"] = device
            plugin["pciBusID"] = device
        network.runtime_config = {**(network.runtime_config or {}), "deviceID": device}
        log.verbose(f"{where}: device {device} of resource {resource} for pod {self.ref}")

    def resource_map(self) -> dict[str, list[str]]:
        if self._map is None:
            self._map = {}
            self._from_device_plugins(self._map)
            if self.dra is not None:
                self._from_dra(self._map, self.dra)
        return self._map

    def _from_device_plugins(self, found: dict[str, list[str]]) -> None:
        spec = self.pod.get("spec") or {}
        order = [
            str(c.get("name"))
            for key in ("initContainers", "containers")
            for c in spec.get(key) or []
            if isinstance(c, dict)
        ]
        rank = {name: i for i, name in enumerate(order)}
        entries = self.device_plugins.allocations(self.pod)
        # Containers in pod order (unknown names last, by name), IDs sorted per container.
        entries.sort(key=lambda e: (rank.get(e[0], len(rank)), e[0]))
        for _container, resource, ids in entries:
            found.setdefault(resource, []).extend(sorted(ids))

    def _from_dra(self, found: dict[str, list[str]], dra: DraSource) -> None:
        status = self.pod.get("status") or {}
        namespace = str((self.pod.get("metadata") or {}).get("namespace") or "")
        for entry in status.get("resourceClaimStatuses") or []:
            name = entry.get("resourceClaimName") if isinstance(entry, dict) else None
            if not name:
                continue  # no claim was generated for it (not needed by this pod)
            for resource, device_id in self._claim_devices(dra, namespace, str(name), None):
                found.setdefault(resource, []).append(device_id)
        extended = status.get("extendedResourceClaimStatus")
        if isinstance(extended, dict) and extended.get("resourceClaimName"):
            mappings = {
                str(m.get("requestName")): str(m.get("resourceName"))
                for m in extended.get("requestMappings") or []
                if isinstance(m, dict)
            }
            claim = str(extended["resourceClaimName"])
            for resource, device_id in self._claim_devices(dra, namespace, claim, mappings):
                found.setdefault(resource, []).append(device_id)

    def _claim_devices(
        self, dra: DraSource, namespace: str, name: str, mappings: dict[str, str] | None
    ) -> list[tuple[str, str]]:
        claim = dra.claim(namespace, name)
        where = f"ResourceClaim {namespace}/{name}"
        if claim is None:
            self._skipped.append(f"{where}: not found")
            return []
        allocation = (claim.get("status") or {}).get("allocation") or {}
        results = (allocation.get("devices") or {}).get("results") or []
        if not results:
            self._skipped.append(f"{where}: not allocated")
        found: list[tuple[str, str]] = []
        for result in results:
            if not isinstance(result, dict):
                continue
            driver, pool, device_name = (
                str(result.get("driver")),
                str(result.get("pool")),
                str(result.get("device")),
            )
            label = f"{where} device {device_name} (driver {driver}, pool {pool})"
            device = next(
                (
                    d
                    for s in dra.slices(driver, pool)
                    for d in (s.get("spec") or {}).get("devices") or []
                    if isinstance(d, dict) and d.get("name") == device_name
                ),
                None,
            )
            if device is None:
                self._skipped.append(f"{label}: in no ResourceSlice")
                continue
            resource = _attribute(device, RESOURCE_NAME_ATTRIBUTE)
            device_id = _attribute(device, DEVICE_ID_ATTRIBUTE)
            expected = mappings.get(str(result.get("request"))) if mappings is not None else None
            if resource is None:
                self._skipped.append(f"{label}: no {RESOURCE_NAME_ATTRIBUTE} attribute")
                continue
            if expected is not None and resource != expected:
                self._skipped.append(
                    f"{label}: {RESOURCE_NAME_ATTRIBUTE} is {resource!r}, its extended resource "
                    f"mapping says {expected!r}"
                )
                continue
            if device_id is None:
                self._skipped.append(f"{label}: no {DEVICE_ID_ATTRIBUTE} attribute")
                continue
            found.append((resource, device_id))
        return found


def thin_devices(pod: dict[str, Any], client: ObjectReader, raw: dict[str, Any]) -> PodDevices:
    """Thin mode: kubelet's checkpoint file (`kubeletCheckpointFile` in the conf, for
    kubelets with a non-default root) and DRA objects from the API."""
    path = raw.get("kubeletCheckpointFile")
    return PodDevices(
        pod, CheckpointFile(path if isinstance(path, str) and path else CHECKPOINT), ApiDra(client)
    )
