"""A Kubernetes API for the plugin to talk to over real HTTP: kmock's emulator, run on
its own event loop in a background thread (the tests exec `multus` synchronously).

The subclass fills what these tests need and kmock 0.8 lacks: injected faults (an HTTP
status or a delay for matching requests, a given number of times), a log of every
request as (method, path) so tests and the benchmark can count API calls.
"""

from __future__ import annotations

import asyncio
import copy
import ctypes
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp.web
import attrs
import kmock

T = TypeVar("T")

POD = "v1/pods"
EVENT = "v1/events"
NETWORK = "kubernetes.com/v1/networks"
NAD = "k8s.cni.cncf.io/v1/network-attachment-definitions"
RESOURCECLAIM = "resource.k8s.io/v1/resourceclaims"
RESOURCESLICE = "resource.k8s.io/v1/resourceslices"


@dataclass
class Fault:
    """Answer `status` (or stall `delay` seconds) to requests matching method+path part."""

    method: str
    path: str
    status: int = 0
    delay: float = 0.0
    times: int = 1_000_000
    hits: int = field(default=0)

    def matches(self, method: str, path: str) -> bool:
        return (not self.method or self.method == method) and self.path in path


@attrs.define(kw_only=True)
class FaultyEmulator(kmock.KubernetesEmulator):
    faults: list[Fault] = attrs.field(factory=list)
    log: list[tuple[str, str]] = attrs.field(factory=list)
    auth: list[str] = attrs.field(factory=list)

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        method = str(request.method.value).upper()
        path = request.url.path
        self.log.append((method, path))
        self.auth.append(request.headers.get("Authorization", ""))
        for fault in self.faults:
            if fault.times > 0 and fault.matches(method, path):
                fault.times -= 1
                fault.hits += 1
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.status:
                    return aiohttp.web.json_response(
                        {
                            "apiVersion": "v1",
                            "kind": "Status",
                            "status": "Failure",
                            "code": fault.status,
                            "message": f"injected fault {fault.status}",
                        },
                        status=fault.status,
                    )
                break
        return await super()._handle(request)


CLONE_NEWNET = 0x40000000


def _enter_netns(path: str) -> None:
    """setns(2) for the calling thread only: the emulator listens inside the node netns
    where `multus` runs, while the test process stays where it is."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


class Api:
    """The emulator on a background loop (in `netns` when given), plus thread-safe
    helpers for tests."""

    def __init__(self, netns: str = "") -> None:
        self.loop = asyncio.new_event_loop()
        self.netns = netns
        self.thread = threading.Thread(target=self._thread_main, daemon=True)
        self.thread.start()
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._serving = asyncio.run_coroutine_threadsafe(self._serve(), self.loop)
        if not self._started.wait(10):
            raise RuntimeError("the API emulator did not start")

    def _thread_main(self) -> None:
        if self.netns:
            _enter_netns(self.netns)
        self.loop.run_forever()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        emulator = FaultyEmulator()
        emulator.resources.load_bundled()
        emulator.resources[NETWORK] = kmock.ResourceInfo(kind="Network", namespaced=True)
        emulator.resources[NAD] = kmock.ResourceInfo(
            kind="NetworkAttachmentDefinition", namespaced=True
        )
        # Dynamic Resource Allocation (GA in 1.34), for the SR-IOV deviceID lookups
        emulator.resources[RESOURCECLAIM] = kmock.ResourceInfo(
            kind="ResourceClaim", namespaced=True
        )
        emulator.resources[RESOURCESLICE] = kmock.ResourceInfo(
            kind="ResourceSlice", namespaced=False
        )
        async with emulator, kmock.Server(emulator) as server:
            self.emulator = emulator
            self.url = f"http://127.0.0.1:{server.port}"
            self._started.set()
            await self._stop.wait()

    def call(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def close(self) -> None:
        """Stop serving (the port refuses connections afterwards); idempotent."""
        if self.loop.is_closed():
            return
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        try:
            self._serving.result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()

    # ---- objects ----

    def put(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "default")
        meta.setdefault("uid", str(uuid.uuid4()))

        def store() -> None:
            self.emulator.objects[resource, meta["namespace"], meta["name"]] = obj

        self.call(store)
        return obj

    def put_copy(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """`put` a deep copy (the emulator keeps and mutates what it is given)."""
        return self.put(resource, copy.deepcopy(obj))

    def get(self, resource: str, namespace: str, name: str) -> dict[str, Any] | None:
        def fetch() -> dict[str, Any] | None:
            try:
                found = self.emulator.objects[resource, namespace, name]
            except KeyError:
                return None
            return None if found.deleted else dict(found.raw)

        return self.call(fetch)

    def delete(self, resource: str, namespace: str, name: str) -> None:
        def remove() -> None:
            del self.emulator.objects[resource, namespace, name]

        self.call(remove)

    def events(self, namespace: str) -> list[dict[str, Any]]:
        def listing() -> list[dict[str, Any]]:
            out = []
            for key in list(self.emulator.objects):
                res, ns, _ = key
                obj = self.emulator.objects[key]
                if ns == namespace and res.plural == "events" and not obj.deleted:
                    out.append(dict(obj.raw))
            return out

        return self.call(listing)

    # ---- faults and request log ----

    def fault(self, fault: Fault) -> Fault:
        self.call(lambda: self.emulator.faults.append(fault))
        return fault

    def clear_faults(self) -> None:
        self.call(self.emulator.faults.clear)

    def requests(self) -> list[tuple[str, str]]:
        return self.call(lambda: list(self.emulator.log))

    def forget(self) -> None:
        """Drop Events and kmock's own request history: the emulator scans its objects
        linearly per request, so a long benchmark would otherwise measure kmock slowing
        down rather than the plugin."""

        def clear() -> None:
            for key in list(self.emulator.objects):
                if key[0].plural == "events":
                    del self.emulator.objects[key]
            self.emulator._requests.clear()
            self.emulator.log.clear()
            self.emulator.auth.clear()

        self.call(clear)

    def authorizations(self) -> list[str]:
        return self.call(lambda: list(self.emulator.auth))

    def clear_log(self) -> None:
        def clear() -> None:
            self.emulator.log.clear()
            self.emulator.auth.clear()

        self.call(clear)

    def kubeconfig(self, directory: Path, token: str = "mid-test-token") -> Path:
        """A YAML kubeconfig (as kubeadm writes them) pointing at the emulator."""
        path = directory / "kubeconfig.yaml"
        path.write_text(
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            "- cluster:\n"
            f"    server: {self.url}\n"
            "  name: mid\n"
            "contexts:\n"
            "- context:\n"
            "    cluster: mid\n"
            "    user: mid-node\n"
            "  name: mid@node\n"
            "current-context: mid@node\n"
            "users:\n"
            "- name: mid-node\n"
            "  user:\n"
            f"    token: {token}\n"
        )
        return path


@contextmanager
def running_api(netns: str = "") -> Iterator[Api]:
    api = Api(netns)
    try:
        yield api
    finally:
        api.close()
