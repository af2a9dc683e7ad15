"""The gap-filling emulator itself: the behaviour the operator tests rely on."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from tests.operator.apiclient import Client
from tests.operator.emulator import Emulator, selector_matches

NETS = "/apis/kubernetes.com/v1/namespaces/default/networks"


def _net(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "kubernetes.com/v1",
        "kind": "Network",
        "metadata": {"name": name},
        "plugin": "flannel",
        "status": {"sneaky": True},
    }


async def test_stamping_and_status_subresource(emulator: tuple[Emulator, Client]) -> None:
    _emu, client = emulator
    created = await client.create(NETS, _net("a"))
    meta = created["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["generation"] == 1
    assert "status" not in created  # dropped on create, as the API server does
    after = await client.patch(f"{NETS}/a/status", {"plugin": "evil", "status": {"x": 1}})
    assert after["plugin"] == "flannel" and after["status"] == {"x": 1}
    assert after["metadata"]["generation"] == 1
    assert int(after["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])
    after = await client.patch(f"{NETS}/a", {"plugin": "bridge", "status": {"x": 2}})
    assert after["plugin"] == "bridge" and after["status"] == {"x": 1}
    assert after["metadata"]["generation"] == 2
    assert after["metadata"]["uid"] == meta["uid"]


async def test_put_replaces(emulator: tuple[Emulator, Client]) -> None:
    _emu, client = emulator
    await client.create(NETS, _net("a"))
    await client.patch(f"{NETS}/a/status", {"status": {"x": 1}})
    body = {**_net("a"), "plugin": "macvlan", "args": "[]"}
    replaced = await client.request("PUT", f"{NETS}/a", body)
    assert replaced["plugin"] == "macvlan" and replaced["status"] == {"x": 1}
    assert replaced["metadata"]["generation"] == 2
    fetched = await client.get(f"{NETS}/a")
    assert fetched["args"] == "[]"


def test_selector_matches() -> None:
    labels = {"a": "1", "b": "2"}
    assert selector_matches("a=1,b==2", labels)
    assert selector_matches("a,!c,b!=3", labels)
    assert not selector_matches("a=2", labels)
    assert not selector_matches("!a", labels)


async def test_label_selectors_on_list_and_watch(emulator: tuple[Emulator, Client]) -> None:
    _emu, client = emulator
    path = "/api/v1/namespaces/ns/configmaps"
    for name, labels in (("x", {"k": "v"}), ("y", {"k": "w"})):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}
        body["metadata"]["labels"] = labels
        await client.create(path, body)
    listed = await client.get(f"{path}?labelSelector=k%3Dv")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["x"]
    timeout = aiohttp.ClientTimeout(total=2)
    url = f"{client.url}{path}?watch=true&labelSelector=k%3Dw"
    seen: list[str] = []
    async with client.session.get(url, timeout=timeout) as resp:
        try:
            async for line in resp.content:
                if line.strip():
                    seen.append(json.loads(line)["object"]["metadata"]["name"])
        except TimeoutError:
            pass
    assert seen == ["y"]


async def test_a_refused_write_is_not_applied(emulator: tuple[Emulator, Client]) -> None:
    emu, client = emulator
    lift = emu.refuse(lambda r: r.method.value == "POST" and '"a"' in r.text, 503)
    async with client.session.post(client.url + NETS, json=_net("a")) as resp:
        assert resp.status == 503
    assert await client.get(f"{NETS}/a") is None and emu.writes() == []
    lift()
    await client.create(NETS, _net("a"))
    assert await client.get(f"{NETS}/a") is not None
