"""The agent's API side against the emulator over HTTP, in-process where a process is
not needed: the list+watch caches (resourceVersion, bookmarks, resume, 410 relist,
selectors), the NodeState writer (sections, debounce, retries), the installed-plugin
report, and the thin plugin's refreshed token."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multus_node.kubeapi import KubeApi, configuration
from multus_node.nodestate import NodeStateWriter
from multus_node.plugins import PluginScanner
from multus_node.watching import WatchCache
from tests.k8s.emulator import Fault
from tests.node.conftest import NODE_NAME, Daemon
from tests.node.emulator import NODE, NODESTATE, WatchApi
from tests.support.cni import CNI_PLUGINS, run_multus, wait_until
from tests.support.lab import Node

POD = "v1/pods"


@pytest.fixture
def host_api(tmp_path: Path) -> Iterator[tuple[WatchApi, KubeApi]]:
    """The emulator on this machine's loopback, and the agent's client for it."""
    emulator = WatchApi()
    emulator.emulator.bookmark_interval = 0.2
    client = KubeApi(configuration(str(emulator.kubeconfig(tmp_path))))
    try:
        yield emulator, client
    finally:
        client.close()
        emulator.close()


def pod(name: str, node: str = NODE_NAME, **annotations: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"nodeName": node},
    }


def test_cache_lists_watches_and_narrows(host_api: tuple[WatchApi, KubeApi]) -> None:
    api, client = host_api
    api.put(POD, pod("before"))
    api.put(POD, pod("elsewhere", node="other-node"))
    cache = WatchCache(
        client, "pods", "/api/v1/pods", field_selector=f"spec.nodeName={NODE_NAME}", watch_seconds=5
    )
    cache.start()
    wait_until(cache.synced.is_set, "synced")
    assert cache.get("default", "before") is not None
    assert cache.get("default", "elsewhere") is None
    api.put(POD, pod("after", a="1"))
    wait_until(lambda: cache.get("default", "after"), "a new pod seen")
    api.put(POD, pod("after", a="2"))
    wait_until(
        lambda: (cache.get("default", "after") or {})["metadata"]["annotations"] == {"a": "2"},
        "a change seen",
    )
    api.delete(POD, "default", "before")
    wait_until(lambda: cache.get("default", "before") is None, "a deletion seen")
    copy = cache.get("default", "after")
    assert copy is not None
    copy["metadata"]["annotations"]["a"] = "mutated"
    assert cache.get("default", "after")["metadata"]["annotations"]["a"] == "2", "a private copy"
    cache.stop()


def test_bookmarks_resume_and_410_relist(host_api: tuple[WatchApi, KubeApi]) -> None:
    api, client = host_api
    cache = WatchCache(client, "pods", "/api/v1/pods", watch_seconds=30)
    cache.start()
    wait_until(cache.synced.is_set, "synced")
    listed_at = int(cache.resource_version)
    # changes elsewhere move the resourceVersion on; bookmarks carry it to the cache
    api.put(
        "v1/configmaps",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "kube-system"},
        },
    )
    wait_until(lambda: int(cache.resource_version) > listed_at, "a bookmark")
    # a dropped connection resumes from the resourceVersion: no relist, nothing missed
    api.drop_watches()
    api.put(POD, pod("during-the-gap"))
    wait_until(lambda: cache.get("default", "during-the-gap"), "the gap's event")
    assert cache.relists == 1
    # disconnected while changes happen and the history is compacted: 410 Gone, relist
    api.put(POD, pod("deleted-in-the-gap"))
    wait_until(lambda: cache.get("default", "deleted-in-the-gap"), "seen")
    outage = api.fault(Fault("GET", "/api/v1/pods", status=503))
    api.drop_watches()
    wait_until(lambda: outage.hits >= 1, "the cache knocking on a down API")
    api.delete(POD, "default", "deleted-in-the-gap")
    api.put(POD, pod("added-in-the-gap"))
    api.compact()
    api.clear_faults()
    wait_until(lambda: cache.relists == 2, "a relist after 410")
    assert [r for r in api.queries() if r[2].get("watch") == "true"][-1][2]["resourceVersion"]
    assert cache.get("default", "deleted-in-the-gap") is None
    assert cache.get("default", "added-in-the-gap") is not None
    watches = [q for m, p, q in api.queries() if q.get("watch") == "true"]
    assert all(q["allowWatchBookmarks"] == "true" for q in watches)
    assert [q.get("resourceVersion") for q in watches][1] is not None
    cache.stop()


def test_cache_rides_out_api_errors_and_missing_resources(
    host_api: tuple[WatchApi, KubeApi],
) -> None:
    api, client = host_api
    api.put(POD, pod("there"))
    api.fault(Fault("GET", "/api/v1/pods", status=503, times=3))
    cache = WatchCache(client, "pods", "/api/v1/pods", watch_seconds=5)
    cache.start()
    wait_until(cache.synced.is_set, "synced after the 503s", timeout=20)
    assert cache.get("default", "there") is not None
    absent = WatchCache(client, "things", "/apis/example.com/v1/things")
    absent.start()
    wait_until(absent.synced.is_set, "an unserved resource is an empty, current cache")
    assert absent.get("default", "x") is None
    cache.stop()
    absent.stop()


def test_nodestate_sections_debounced_written_when_changed(
    host_api: tuple[WatchApi, KubeApi],
) -> None:
    api, client = host_api
    node = api.put(NODE, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE_NAME}})
    writer = NodeStateWriter(client, NODE_NAME, debounce=0.3)
    writer.start()
    for i in range(10):
        writer.update("plugins", [{"name": "bridge", "supportedVersions": [f"0.{i}.0"]}])
    writer.update("pfs", [])  # what the SR-IOV discovery will report, the same way
    wait_until(lambda: writer.writes == 1, "one write for the burst")
    state = api.get(NODESTATE, None, NODE_NAME)  # type: ignore[arg-type]
    assert state is not None
    assert state["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": NODE_NAME, "uid": node["metadata"]["uid"]}
    ]
    assert state["status"]["plugins"] == [{"name": "bridge", "supportedVersions": ["0.9.0"]}]
    assert state["status"]["pfs"] == [] and state["status"]["observedTime"].endswith("Z")
    writer.update("pfs", [])
    writer.update("plugins", [{"name": "bridge", "supportedVersions": ["0.9.0"]}])
    time.sleep(1)
    assert writer.writes == 1, "nothing changed: nothing written"
    api.fault(Fault("PATCH", "nodestates", status=500, times=2))
    writer.update("plugins", [])
    wait_until(lambda: writer.writes == 2, "written after the 500s", timeout=15)
    assert api.get(NODESTATE, None, NODE_NAME)["status"]["plugins"] == []  # type: ignore[index,arg-type]
    writer.stop()


def test_plugin_scan_reports_versions_and_rescans_only_changes(tmp_path: Path) -> None:
    extra = tmp_path / "bin"
    extra.mkdir()
    reports: list[list[dict[str, Any]]] = []
    scanner = PluginScanner((str(extra), CNI_PLUGINS), reports.append)
    (extra / "bridge").write_text('#!/bin/sh\necho \'{"supportedVersions": ["9.9.9"]}\'\n')
    (extra / "bridge").chmod(0o755)
    (extra / "notes.txt").write_text("not a plugin")
    (extra / "mute").write_text("#!/bin/sh\nexit 3\n")
    (extra / "mute").chmod(0o755)
    found = {p["name"]: p["supportedVersions"] for p in scanner.scan()}
    assert found["bridge"] == ["9.9.9"], "the first dir wins, as the engine finds it"
    assert found["mute"] == [] and "notes.txt" not in found
    assert "1.0.0" in found["macvlan"] and "host-local" in found
    started = time.monotonic()
    again = scanner.scan()
    assert time.monotonic() - started < 0.5, "known binaries are not asked again"
    assert {p["name"]: p["supportedVersions"] for p in again} == found


def test_daemon_reports_its_plugins(node: Node, api: WatchApi, thick: Daemon) -> None:
    # The daemon serves before its first plugin scan has reached the API.
    def reported() -> dict[str, Any] | None:
        state = api.get(NODESTATE, None, NODE_NAME)  # type: ignore[arg-type]
        return state if state and (state.get("status") or {}).get("plugins") else None

    state = wait_until(reported, "the NodeState with the plugins")
    plugins = {p["name"]: p["supportedVersions"] for p in state["status"]["plugins"]}
    assert {"bridge", "macvlan", "host-local", "multus-py-shim"} <= set(plugins)
    assert plugins["multus-py-shim"] == ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def test_thin_kubeconfig_token_follows_the_agents(
    node: Node, api: WatchApi, tmp_path: Path, daemons: list[Daemon]
) -> None:
    """The thin plugin on the host reads `tokenFile` at every call; the agent keeps
    that file equal to its own (rotating) service-account token."""
    token = tmp_path / "sa-token"
    token.write_text("token-one\n")
    daemon = Daemon(
        node, tmp_path, api, extra=("--token-file", str(token), "--token-refresh-interval", "0.2")
    )
    daemon.start()
    daemons.append(daemon)
    kubeconfig = node.conf_dir / "multus.d" / "multus.kubeconfig"
    token_copy = node.conf_dir / "multus.d" / "token"
    wait_until(token_copy.exists, "the token copied")
    assert oct(kubeconfig.stat().st_mode & 0o777) == "0o600"
    assert oct(token_copy.stat().st_mode & 0o777) == "0o600"
    bridge = node.add_bridge("mndtok0")
    conf = {
        "cniVersion": "1.0.0",
        "name": "mnd-tok",
        "type": "multus",
        "kubeconfig": str(kubeconfig),
        "cniDir": str(node.cni_dir),
        "binDir": CNI_PLUGINS,
        "delegates": [
            {"type": "bridge", "bridge": bridge, "ipam": node.host_local("10.206.50.0/24")}
        ],
    }
    pod_doc = api.put(POD, pod("tok"))
    args = (
        f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=tok;"
        f"K8S_POD_UID={pod_doc['metadata']['uid']}"
    )
    netns = node.add_pod("mnd")

    def add_and_del(cid: str) -> str:
        api.clear_log()
        added = run_multus(
            "ADD", conf, container_id=cid, netns=netns, cni_args=args, node=node.name
        )
        assert added.rc == 0, added.stdout + added.stderr
        used = {a for a in api.authorizations() if a}
        assert run_multus("DEL", conf, container_id=cid, netns=netns, node=node.name).rc == 0
        assert len(used) == 1
        return used.pop()

    assert add_and_del("mndtok1") == "Bearer token-one"
    token.write_text("token-two\n")  # kubelet rotated the agent's token
    wait_until(lambda: token_copy.read_text() == "token-two\n", "the token refreshed")
    assert add_and_del("mndtok2") == "Bearer token-two"
    server = json.dumps(kubeconfig.read_text())
    assert api.url in server
    assert os.path.basename(str(token_copy)) in kubeconfig.read_text()
