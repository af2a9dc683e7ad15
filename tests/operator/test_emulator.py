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


async def _raw(client: Client, method: str, path: str, token: str = "", body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with client.session.request(method, client.url + path, json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.json(content_type=None)


async def test_rbac_is_enforced_with_the_api_servers_words(
    emulator: tuple[Emulator, Client],
) -> None:
    emu, client = emulator
    token = "operator-token"  # the conftest's operator, with rbac/rules.yaml's rules
    status, _, body = await _raw(client, "GET", "/api/v1/configmaps", token)
    assert status == 403 and body["message"] == (
        'configmaps is forbidden: User "system:serviceaccount:kube-system:multus-operator"'
        ' cannot list resource "configmaps" in API group "" at the cluster scope'
    )
    status, _, _ = await _raw(client, "GET", "/api/v1/namespaces/kube-system/configmaps", token)
    assert status == 200  # its Role's namespace
    status, _, body = await _raw(
        client, "PATCH", "/api/v1/namespaces/default/pods/p/status", token, {}
    )
    assert status == 403 and 'cannot patch resource "pods" subresource "status"' in body["message"]
    for path in ("/api", "/apis", "/apis/k8s.cni.cncf.io/v1", "/version"):
        assert (await _raw(client, "GET", path, token))[0] == 200  # system:discovery
    assert [r.status for r in emu.requests_log[-4:]] == [200] * 4
    assert emu.requests_log[0].info.verb == "list" and emu.requests_log[0].subject


async def test_refusals_carry_retry_after_and_creation_is_201(
    emulator: tuple[Emulator, Client],
) -> None:
    emu, client = emulator
    lift = emu.refuse(lambda r: r.method.value == "POST", 429, retry_after=3)
    status, headers, _ = await _raw(client, "POST", NETS, body=_net("a"))
    assert status == 429 and headers["Retry-After"] == "3"
    lift()
    status, _, _ = await _raw(client, "POST", NETS, body=_net("a"))
    assert status == 201


async def test_field_selectors_and_pages(emulator: tuple[Emulator, Client]) -> None:
    emu, client = emulator
    for name in ("a", "b", "c"):
        await client.create(NETS, _net(name))
    listed = await client.get(f"{NETS}?fieldSelector=metadata.name%3Db")
    assert [i["metadata"]["name"] for i in listed["items"]] == ["b"]
    page = await client.get(f"{NETS}?limit=2")
    assert [i["metadata"]["name"] for i in page["items"]] == ["a", "b"]
    token = page["metadata"]["continue"]
    rest = await client.get(f"{NETS}?limit=2&continue={token}")
    assert [i["metadata"]["name"] for i in rest["items"]] == ["c"]
    assert "continue" not in rest["metadata"]
    await client.create(NETS, _net("d"))
    emu.compact()
    status, _, body = await _raw(client, "GET", f"{NETS}?limit=2&continue={token}")
    assert status == 410 and body["reason"] == "Expired"


async def test_watch_from_a_resource_version(emulator: tuple[Emulator, Client]) -> None:
    _emu, client = emulator
    first = await client.create(NETS, _net("a"))
    await client.patch(f"{NETS}/a", {"args": "[]"})
    await client.delete(f"{NETS}/a")
    since = first["metadata"]["resourceVersion"]
    url = f"{client.url}{NETS}?watch=true&resourceVersion={since}&timeoutSeconds=1"
    async with client.session.get(url) as resp:
        events = [json.loads(line) for line in (await resp.read()).splitlines() if line.strip()]
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]  # after `since`, not at it
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions) and versions[0] > int(since)
