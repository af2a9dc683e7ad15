"""The devices kubelet gave a pod, for the NADs that ask for one by resource name
(`k8s.v1.cni.cncf.io/resourceName`: the SR-IOV VF's PCI address becomes the delegate's
`deviceID`), as multus-node finds them.

- Device plugins: kubelet's PodResources socket (`--kubelet-pod-resources`), asked per
  ADD (the thin plugin reads kubelet's checkpoint file instead). kubelet not answering
  is code 11: the runtime retries the ADD.
- DRA (`resource.k8s.io/v1`): the pod's ResourceClaims and this node's ResourceSlices
  from warm watch caches; a claim not cached yet (just allocated) or a driver's pool
  with no cached slice costs the GET/LIST the thin plugin makes, through the ADD's
  API client.

The engine's `PodDevices` does the rest, the same in both modes.
"""

from __future__ import annotations

import os
from typing import Any

from multus_cni.errors import TryAgainLater
from multus_cni.k8s.client import Client
from multus_cni.k8s.devices import ApiDra, PodDevices
from multus_sriov.podresources import PodResources, PodResourcesError

from .watching import WatchCache


class KubeletDevices:
    """A DevicePluginSource over kubelet's PodResources socket."""

    def __init__(self, socket_path: str) -> None:
        self.kubelet = PodResources(socket_path)

    def allocations(self, pod: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
        if not os.path.exists(self.kubelet.socket_path):
            return []  # no kubelet socket here: no device-plugin devices to hand out
        try:
            return self.kubelet.allocations(pod)
        except PodResourcesError as exc:
            raise TryAgainLater(str(exc)) from None


class CachedDra:
    """A DraSource from the watch caches, with the API as the fallback."""

    def __init__(self, claims: WatchCache | None, slices: WatchCache | None, api: Client) -> None:
        self.claims = claims
        self.slices_cache = slices
        self.api = ApiDra(api)

    def claim(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self.claims is not None and self.claims.synced.is_set():
            found = self.claims.get(namespace, name)
            if found is not None:
                return found
        return self.api.claim(namespace, name)

    def slices(self, driver: str, pool: str) -> list[dict[str, Any]]:
        if self.slices_cache is not None and self.slices_cache.synced.is_set():
            found = [
                s
                for s in self.slices_cache.values()
                if (s.get("spec") or {}).get("driver") == driver
                and ((s.get("spec") or {}).get("pool") or {}).get("name") == pool
            ]
            if found:
                return found
        return self.api.slices(driver, pool)


class NodeDevices:
    """What the engine calls per ADD (`devices` of multus_cni.main.run)."""

    def __init__(
        self, kubelet_socket: str, claims: WatchCache | None, slices: WatchCache | None
    ) -> None:
        self.kubelet = KubeletDevices(kubelet_socket)
        self.claims = claims
        self.slices = slices

    def __call__(self, pod: dict[str, Any], client: Client, raw: dict[str, Any]) -> PodDevices:
        return PodDevices(pod, self.kubelet, CachedDra(self.claims, self.slices, client))
