"""The operator's watches against a watch that behaves like the API server's: resumed
from the last resourceVersion, listed again after 410 Gone, bookmarks followed, pages
read, a resource that is not served waited for, nothing delivered twice or lost."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import kopf

from multus_operator.kubeapi import KubeApi
from multus_operator.resources import CONFIGMAPS, NADS, NODES
from multus_operator.watching import Watch
from tests.operator.apiclient import Client
from tests.operator.conftest import eventually
from tests.operator.emulator import Emulator

CMS = "/api/v1/namespaces/ns1/configmaps"


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str | None, str]] = []
        self.objects: dict[str, dict[str, Any]] = {}

    def __call__(self, kind: str | None, body: dict[str, Any]) -> None:
        name = body["metadata"]["name"]
        self.events.append((kind, name))
        if kind == "DELETED":
            self.objects.pop(name, None)
        else:
            self.objects[name] = body


@contextlib.asynccontextmanager
async def watching(client: Client, resource: Any, **kw: Any) -> AsyncIterator[tuple[Watch, Seen]]:
    api = KubeApi(kopf.ConnectionInfo(server=client.url))
    seen = Seen()
    watch = Watch(api, resource, seen, backoff=(0.05, 0.2), **kw)
    task = asyncio.create_task(watch.run())
    try:
        yield watch, seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.close()


def _cm(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}}


async def test_resumed_after_a_disconnect_without_loss_or_repeat(
    emulator: tuple[Emulator, Client],
) -> None:
    emu, client = emulator
    await client.create(CMS, _cm("a"))
    async with watching(client, CONFIGMAPS, namespace="ns1") as (watch, seen):
        await asyncio.wait_for(watch.synced.wait(), 5)
        await client.create(CMS, _cm("b"))
        await eventually(lambda: "b" in seen.objects)
        for _ in range(3):
            await emu.break_watches()  # the stream ends; the watch resumes
            await client.patch(f"{CMS}/a", {"data": {"k": "v"}})
            await client.delete(f"{CMS}/b")
            await client.create(CMS, _cm("b"))
        await eventually(lambda: len(seen.events) == 2 + 3 * 3)
        await asyncio.sleep(0.3)
    assert seen.events == [(None, "a"), ("ADDED", "b")] + [
        ("MODIFIED", "a"), ("DELETED", "b"), ("ADDED", "b")
    ] * 3  # fmt: skip
    lists = [r for r in emu.requests_log if r.info.verb == "list"]
    assert len(lists) == 1  # resumed, never listed again


async def test_410_lists_again_and_delivers_what_vanished(
    emulator: tuple[Emulator, Client],
) -> None:
    emu, client = emulator
    for name in ("a", "b", "c"):
        await client.create(CMS, _cm(name))
    async with watching(client, CONFIGMAPS, namespace="ns1") as (watch, seen):
        await asyncio.wait_for(watch.synced.wait(), 5)
        # Cut off (watches refused), while b goes, d comes and the history is compacted.
        lift = emu.refuse(lambda r: r.params.get("watch") == "true", 503)
        await emu.break_watches()
        await client.delete(f"{CMS}/b")
        await client.create(CMS, _cm("d"))
        emu.compact()
        lift()
        await eventually(lambda: set(seen.objects) == {"a", "c", "d"})
    assert ("DELETED", "b") in seen.events
    assert len([r for r in emu.requests_log if r.info.verb == "list"]) == 2
    assert any(r.status == 200 and r.info.verb == "watch" for r in emu.requests_log)


async def test_bookmarks_move_the_resource_version(emulator: tuple[Emulator, Client]) -> None:
    emu, client = emulator
    emu.bookmark_every = 0.1
    await client.create(CMS, _cm("a"))
    async with watching(client, CONFIGMAPS, namespace="ns1") as (watch, seen):
        await asyncio.wait_for(watch.synced.wait(), 5)
        listed = watch.resource_version
        await client.create("/api/v1/namespaces/other/configmaps", _cm("elsewhere"))
        await eventually(lambda: watch.resource_version != listed)
        assert seen.events == [(None, "a")]  # a bookmark, not an event
        assert all(r.params.get("allowWatchBookmarks") == "true"
                   for r in emu.requests_log if r.info.verb == "watch")  # fmt: skip


async def test_leaving_the_label_selector_is_a_deletion(emulator: tuple[Emulator, Client]) -> None:
    _emu, client = emulator
    await client.create(CMS, _cm("a", app="x"))
    async with watching(client, CONFIGMAPS, namespace="ns1", label_selector="app=x") as (
        watch,
        seen,
    ):
        await asyncio.wait_for(watch.synced.wait(), 5)
        await client.patch(f"{CMS}/a", {"metadata": {"labels": {"app": None}}})
        await eventually(lambda: not seen.objects)
        await client.patch(f"{CMS}/a", {"metadata": {"labels": {"app": "x"}}})
        await eventually(lambda: "a" in seen.objects)
    assert seen.events == [(None, "a"), ("DELETED", "a"), ("ADDED", "a")]


async def test_pages_are_read_to_the_end(emulator: tuple[Emulator, Client]) -> None:
    emu, client = emulator
    for i in range(1203):
        await client.add_node(f"n{i:04}")
    async with watching(client, NODES) as (watch, seen):
        await asyncio.wait_for(watch.synced.wait(), 20)
        assert len(seen.objects) == 1203
        assert all(b["kind"] == "Node" and b["apiVersion"] == "v1" for b in seen.objects.values())
    pages = [r for r in emu.requests_log if r.info.verb == "list"]
    assert len(pages) == 3 and all(r.params["limit"] == "500" for r in pages)


async def test_a_resource_not_served_is_waited_for(emulator: tuple[Emulator, Client]) -> None:
    """A NAD CRD installed after the operator started."""
    emu, client = emulator
    info = emu.resources["k8s.cni.cncf.io/v1/network-attachment-definitions"]
    del emu.resources["k8s.cni.cncf.io/v1/network-attachment-definitions"]
    async with watching(client, NADS, absent_recheck=0.2) as (watch, seen):
        await asyncio.wait_for(watch.synced.wait(), 5)  # synced: as empty
        assert watch.api.health.absent == {NADS.qualified} and not watch.api.health.failures
        emu.resources["k8s.cni.cncf.io/v1/network-attachment-definitions"] = info
        body = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": "late"}, "spec": {"config": "{}"}}  # fmt: skip
        path = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions"
        await client.create(path, body)
        await eventually(lambda: "late" in seen.objects, timeout=5)
        assert not watch.api.health.absent
