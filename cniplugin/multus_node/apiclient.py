"""The API client the engine gets in thick mode: reads served from the warm caches,
writes (network-status, Events) sent at once.

It is the engine's own stdlib client (`multus_cni.k8s.client.Client`, keep-alive, retry
and timeout rules included) with `get` answered from the watch caches of this node's
pods, the Networks and the NADs. A cache that cannot answer costs one GET: not synced
yet, an object it does not hold (a pod just created, a NAD just applied), or a pod
whose UID differs from the runtime's `K8S_POD_UID` (a StatefulSet pod re-created under
the same name, which the watch has not delivered yet). Clients (and their
connections) are pooled and reused call after call.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from multus_cni.k8s.client import Client
from multus_cni.k8s.kubeconfig import ApiConfig
from multus_cni.k8s.resolve import is_static_pod

from . import metrics
from .watching import WatchCache

_PODS = ("api", "v1", "namespaces", "*", "pods", "*")
_NETWORKS = ("apis", "kubernetes.com", "v1", "namespaces", "*", "networks", "*")
_NADS = ("apis", "k8s.cni.cncf.io", "v1", "namespaces", "*", "network-attachment-definitions", "*")


def _match(parts: list[str], shape: tuple[str, ...]) -> tuple[str, str] | None:
    if len(parts) != len(shape):
        return None
    if any(s != "*" and s != p for p, s in zip(parts, shape, strict=True)):
        return None
    wild = [p for p, s in zip(parts, shape, strict=True) if s == "*"]
    return wild[0], wild[1]


class Caches:
    """The watch caches an ADD reads; any may be absent (then every read is a GET)."""

    def __init__(
        self,
        pods: WatchCache | None = None,
        networks: WatchCache | None = None,
        nads: WatchCache | None = None,
        claims: WatchCache | None = None,
        slices: WatchCache | None = None,
    ) -> None:
        self.pods = pods
        self.networks = networks
        self.nads = nads
        self.claims = claims  # DRA ResourceClaims (read through multus_node.devices)
        self.slices = slices  # DRA ResourceSlices of this node

    def all(self) -> list[WatchCache]:
        caches = (self.pods, self.networks, self.nads, self.claims, self.slices)
        return [c for c in caches if c is not None]


class CachedClient(Client):
    def __init__(self, config: ApiConfig, caches: Caches, timeout: float) -> None:
        super().__init__(config, timeout=timeout)
        self.caches = caches
        self.expected_uid = ""

    def begin(self, expected_uid: str) -> None:
        """A new request: the pod UID the runtime gave (K8S_POD_UID), if any."""
        self.expected_uid = expected_uid

    def get(self, path: str) -> dict[str, Any] | None:
        parts = path.strip("/").split("/")
        for shape, cache, resource in (
            (_PODS, self.caches.pods, "pods"),
            (_NETWORKS, self.caches.networks, "networks"),
            (_NADS, self.caches.nads, "network-attachment-definitions"),
        ):
            where = _match(parts, shape)
            if where is None:
                continue
            if cache is None or not cache.synced.is_set():
                return self._read(path, resource, "not-synced")
            obj = cache.get(*where)
            if obj is None:
                return self._read(path, resource, "miss")
            if resource == "pods" and self.expected_uid:
                uid = str((obj.get("metadata") or {}).get("uid") or "")
                if uid != self.expected_uid and not is_static_pod(obj):
                    return self._read(path, resource, "uid-mismatch")
            return obj
        return self._read(path, "other", "uncached")

    def _read(self, path: str, resource: str, reason: str) -> dict[str, Any] | None:
        metrics.API_READS.labels(resource, reason).inc()
        return super().get(path)


class ClientPool:
    """Clients kept between requests, most recently used first: a request gets a warm
    keep-alive connection whichever worker thread serves it."""

    def __init__(self, config: ApiConfig, caches: Caches, timeout: float = 10.0) -> None:
        self.config = config
        self.caches = caches
        self.timeout = timeout
        self._idle: list[CachedClient] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def client(self, expected_uid: str) -> Iterator[CachedClient]:
        with self._lock:
            client = self._idle.pop() if self._idle else None
        if client is None:
            client = CachedClient(self.config, self.caches, self.timeout)
        client.begin(expected_uid)
        try:
            yield client
        finally:
            with self._lock:
                self._idle.append(client)
