"""Inputs found in review that crashed the checks or that they let through wrongly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer

from multus_api.objects import NetworkStatus as NetworkStatusModel
from multus_operator import conditions
from multus_operator.kubeapi import KubeApi
from multus_operator.leadership import LeaderElector
from multus_operator.netstatus import NetworkStatus
from multus_operator.state import ClusterState
from multus_operator.validation import parse_settings, validate_object
from multusctl.main import main as multusctl
from tests.operator.apiclient import NAMESPACE, Client
from tests.operator.broken import nad, network
from tests.operator.conftest import SETTINGS_YAML, eventually, reconciler_for, running, settled
from tests.operator.emulator import Emulator

NODESTATES = "/apis/multus.cni.cncf.io/v1/nodestates"
DEEP = "[" * 50_000 + "]" * 50_000


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (network("deep", "bridge", DEEP), "args: is nested too deeply to parse"),
        (nad("deep", DEEP), "spec.config: is nested too deeply to parse"),
        # Deeper than any conf: the plugin refuses it (the encoder would overflow on it).
        (nad("d65", "[" * 65 + "]" * 65), "spec.config: is nested more than 64 levels deep"),
        # The plugin refuses these (Go's encoding/json too), so they are not Valid here.
        (nad("nan", '{"type": "bridge", "x": NaN}'), "spec.config: invalid JSON: NaN"),
        (nad("inf", '{"type": "bridge", "x": -Infinity}'), "spec.config: invalid JSON: -Inf"),
        (nad("big", '{"type": "bridge", "x": 1e999}'), "spec.config: invalid JSON: 1e999"),
        (network("digits", "bridge", "[" + "9" * 5000 + "]"), "args: invalid JSON: "),
    ],
)
def test_json_the_plugin_refuses_is_invalid_not_a_crash(
    obj: dict[str, object], message: str
) -> None:
    report = validate_object(obj)
    assert not report.valid
    assert report.summary().startswith(message), report.summary()


def test_deeply_nested_settings_are_a_problem_not_a_crash() -> None:
    """A raise here failed every reconcile pass: no node was rendered any more."""
    settings, problems = parse_settings("a: " + "[" * 5000 + "]" * 5000, "settings.yaml")
    assert settings is None
    assert [str(p) for p in problems] == ["settings.yaml: invalid YAML: nested too deeply"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00bad", "not UTF-8 text"),
        (("a: " + "[" * 5000 + "]" * 5000).encode(), "invalid YAML: nested too deeply"),
    ],
)
def test_multusctl_unreadable_file_is_named_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    assert multusctl(["validate", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"{path}: {message}")


def test_multusctl_metadata_not_a_mapping(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cm.yaml"
    path.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: multus-settings\n")
    assert multusctl(["validate", str(path)]) == 0
    assert "ConfigMap/#0: skipped" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("inventory", "message"),
    [("[1, 2]\n", "not an SR-IOV inventory"), ("pfs: [{numVfs: 2}]\n", "pfs[0].name: ")],
)
def test_multusctl_render_bad_inventory_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], inventory: str, message: str
) -> None:
    settings, inv = tmp_path / "settings.yaml", tmp_path / "inv.yaml"
    settings.write_text("mode: thin\n")
    inv.write_text(inventory)
    assert (
        multusctl(["render", "--settings", str(settings), "--node", "n1", "--inventory", str(inv)])
        == 1
    )
    assert capsys.readouterr().err.startswith(f"{inv}: {message}")


@pytest.mark.parametrize(
    "metadata",
    [
        "x",
        "{name: p, annotations: [1]}",
        "{name: p, annotations: {k8s.v1.cni.cncf.io/networks: 5}}",
        "{name: p, annotations: {k8s.v1.cni.cncf.io/networks: '" + "[" * 5000 + "'}}",
    ],
)
def test_multusctl_explain_odd_pod_is_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], metadata: str
) -> None:
    pod, net = tmp_path / "pod.yaml", tmp_path / "net.yaml"
    pod.write_text(f"apiVersion: v1\nkind: Pod\nmetadata: {metadata}\n")
    net.write_text("apiVersion: kubernetes.com/v1\nkind: Network\nmetadata: [1]\nplugin: bridge\n")
    assert multusctl(["explain", str(pod), str(net)]) in (0, 1)
    capsys.readouterr()


@pytest.mark.parametrize(
    "conf",
    [
        {"type": "bridge", "bridge": "x" * 100_000},
        {"type": "bridge", "x" * 100_000: 1},
        {"type": "x" * 100_000},
        {"type": "bridge", "ipam": {"type": "host-local", "subnet": "x" * 100_000}},
    ],
)
def test_condition_message_fits_the_crd(conf: dict[str, object]) -> None:
    """A message over 32768 characters was refused by the API server on every retry."""
    state = ClusterState("kube-system")
    state.on_network(None, nad("huge", conf))
    record = state.networks[("NetworkAttachmentDefinition", "default", "huge")]
    wanted = NetworkStatus(state, None, None).wanted_conditions(record)  # type: ignore[arg-type]
    merged = conditions.merge(None, wanted, 1, conditions.now_rfc3339())
    NetworkStatusModel.model_validate({"conditions": merged})  # the CRD's own limits
    assert merged[0]["message"] == record.report.summary()  # the webhook's message


def _huge_inventory(vfs: int) -> dict[str, Any]:
    """~124 bytes per VF rendered: 10,000 VFs are over the 1 MiB limit."""
    return {
        "pfs": [
            {
                "name": "enp2s0",
                "pciAddress": "0000:02:00.0",
                "totalVfs": vfs,
                "numVfs": vfs,
                "vfs": [
                    {"index": i, "pciAddress": f"0000:02:{i:06x}.0", "netdev": f"enp2s0v{i}"}
                    for i in range(vfs)
                ],
            }
        ]
    }


async def test_rendering_over_1mib_keeps_the_last_good_one(
    emulator: tuple[Emulator, Client],
) -> None:
    """RELIABILITY row 51: the API refuses data over 1 MiB; retrying it forever held every
    other change back by the pass-wide backoff (up to 60 s)."""
    _emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    state = {
        "apiVersion": "multus.cni.cncf.io/v1",
        "kind": "NodeState",
        "metadata": {"name": "node1"},
    }
    await client.create(NODESTATES, state)
    async with running(client.url) as op:
        await settled(op)
        good = (await client.configmap("node1"))["data"]
        await client.patch(f"{NODESTATES}/node1/status", {"status": _huge_inventory(10000)})

        async def reported() -> list[tuple[str, str]]:
            events = await client.get(f"/api/v1/namespaces/{NAMESPACE}/events")
            found = [(e["involvedObject"]["name"], e["reason"]) for e in events["items"]]
            return [e for e in found if e == ("node1", "RenderingTooLarge")]

        await eventually(reported)
        await client.add_node("node2")  # still handled promptly
        await eventually(lambda: client.configmap("node2"), timeout=5)
        await settled(op)
        assert (await client.configmap("node1"))["data"] == good
        assert len(await reported()) == 1
        assert op.nodes.oversized == {"node1": pytest.approx(1_238_000, rel=0.1)}
        await client.patch(f"{NODESTATES}/node1/status", {"status": _huge_inventory(2)})
        await eventually(lambda: "node1" not in op.nodes.oversized)
        await settled(op)
        assert (await client.configmap("node1"))["data"] != good


def test_multusctl_render_refuses_what_the_operator_would_not_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, inv = tmp_path / "settings.yaml", tmp_path / "inv.json"
    settings.write_text("mode: thin\n")
    inv.write_text(json.dumps(_huge_inventory(10000)))
    argv = ["render", "--settings", str(settings), "--node", "n1", "--inventory", str(inv)]
    assert multusctl(argv) == 1
    assert "over the API's ConfigMap limit of 1048576" in capsys.readouterr().err


@pytest.mark.parametrize("fault", ["disconnect", "hang"])
async def test_a_leader_cut_off_from_the_api_stops_leading(fault: str) -> None:
    """A dropped connection killed the elector task with `leading` still set, and a hung
    renewal kept it set for the client's 30 s timeout: either way a standby took the
    expired Lease while this replica went on writing."""

    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        if fault == "hang":
            await done.wait()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    api = KubeApi(kopf.ConnectionInfo(server=f"http://127.0.0.1:{port}"))
    elector = LeaderElector(api, NAMESPACE, "replica-a", duration=1.0, renew_every=0.3)
    elector.leading.set()  # it held the Lease until the API went away
    task = asyncio.create_task(elector.run())
    try:
        await eventually(lambda: not elector.leading.is_set(), timeout=3)
        assert not task.done()  # still trying, ready to lead again
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.close()
        done.set()
        server.close()
        await server.wait_closed()


async def test_bootstrap_survives_an_api_error_at_start(emulator: tuple[Emulator, Client]) -> None:
    """One 500 during the start-up LISTs left the operator running with no reconciler."""
    emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    failed: list[int] = []

    def first_settings_list(request: Any) -> bool:
        selector = request.params.get("fieldSelector") or ""
        if request.method.value != "GET" or "metadata.name=multus-settings" not in selector:
            return False
        if not failed:
            failed.append(id(request))
        return id(request) in failed

    emu.refuse(first_settings_list, 500)
    async with running(client.url) as op:
        await eventually(lambda: client.configmap("node1"))
        assert failed and op.synced.is_set()


@pytest.mark.parametrize(
    "edit",
    [
        {"metadata": {"labels": {"app.kubernetes.io/component": None}}},
        {"metadata": {"annotations": {"multus.cni.cncf.io/node": None}}},
        {
            "metadata": {
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": "node1", "uid": "stale"}
                ]
            }
        },
    ],
    ids=["label", "annotation", "owner"],
)
async def test_hand_edited_metadata_is_restored(
    emulator: tuple[Emulator, Client], edit: dict[str, Any]
) -> None:
    """Dropping our label or annotation hid the ConfigMap from the operator; a stale owner
    (another uid) let the garbage collector delete it later."""
    _emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    node = await client.add_node("node1")
    async with running(client.url) as op:
        written = await eventually(lambda: client.configmap("node1"))
        await settled(op)
        await client.patch(f"/api/v1/namespaces/{NAMESPACE}/configmaps/multus-node-node1", edit)

        async def restored() -> bool:
            meta = (await client.configmap("node1"))["metadata"]
            return (
                meta.get("labels") == written["metadata"]["labels"]
                and meta.get("annotations") == written["metadata"]["annotations"]
                and [r["uid"] for r in meta.get("ownerReferences") or []]
                == [node["metadata"]["uid"]]
            )

        await eventually(restored, timeout=5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("delegates: [{type: bridge, x: .nan}]", "s.delegates[0].x: nan is not a JSON number"),
        ("delegates: [{type: bridge, x: 2020-01-01}]", "s.delegates[0].x: a YAML date is not"),
        (
            "nodeOverrides: [{settings: {delegates: [{type: bridge, on: 1}]}}]",
            "s.nodeOverrides[0].settings.delegates[0]: key True is not a string",
        ),
    ],
)
def test_settings_json_cannot_carry_are_invalid(text: str, message: str) -> None:
    """NaN went into every node's 00-multus.conf (the plugin refuses it); a date made every
    node's rendering raise, on every retry, while the settings were said to be valid."""
    settings, problems = parse_settings(text, "s")
    assert settings is None
    assert str(problems[0]).startswith(message)


def _ranges(*sets: list[dict[str, str]]) -> dict[str, Any]:
    return nad("ranges", {"type": "bridge", "ipam": {"type": "host-local", "ranges": list(sets)}})


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            _ranges([{"subnet": "10.1.0.0/24"}, {"subnet": "fd00::/64"}]),
            "spec.config.ipam.ranges[0]: mixed address families in one range set",
        ),
        (
            _ranges([{"subnet": "10.1.0.0/24"}], [{"subnet": "10.1.0.0/16"}]),
            "spec.config.ipam.ranges[1][0]: overlaps spec.config.ipam.ranges[0][0]",
        ),
        (
            _ranges(
                [
                    {"subnet": "10.1.0.0/24", "rangeEnd": "10.1.0.100"},
                    {"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.100"},
                ]
            ),
            "spec.config.ipam.ranges[0][1]: overlaps spec.config.ipam.ranges[0][0]",
        ),
        (
            _ranges([{"subnet": "10.1.0.7/31"}]),
            "spec.config.ipam.ranges[0][0].subnet: 10.1.0.7/31 is too small to allocate from",
        ),
    ],
)
def test_host_local_range_sets_it_refuses_are_warnings(obj: dict[str, Any], message: str) -> None:
    """host-local refuses these at ADD: multus attaches the network and runs it, so they
    are the delegate's verdict, a warning, not Invalid."""
    report = validate_object(obj)
    assert report.valid
    assert [str(p) for p in report.warnings] == [message]


def test_host_local_disjoint_ranges_of_one_subnet_are_valid() -> None:
    obj = _ranges(
        [
            {"subnet": "10.1.0.0/24", "rangeEnd": "10.1.0.99"},
            {"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.100"},
        ],
        [{"subnet": "fd00::/64"}],
    )
    assert validate_object(obj).valid


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"type": "bridge", "mtu": "1500"}, "spec.config.mtu: input should be a valid integer"),
        ({"type": "bridge", "mtu": 1500.0}, "spec.config.mtu: input should be a valid integer"),
        (
            {"type": "bridge", "isGateway": "true"},
            "spec.config.isGateway: input should be a valid boolean",
        ),
        (
            {"type": "bridge", "isGateway": 1},
            "spec.config.isGateway: input should be a valid boolean",
        ),
        ({"type": "sriov", "vlan": "210"}, "spec.config.vlan: input should be a valid integer"),
        (
            {
                "type": "x",
                "ipam": {"type": "static", "routes": [{"dst": "0.0.0.0/0", "mtu": "9000"}]},
            },
            "spec.config.ipam.routes[0].mtu: input should be a valid integer",
        ),
    ],
)
def test_values_the_plugin_cannot_unmarshal_are_warnings(
    conf: dict[str, Any], message: str
) -> None:
    """Coerced by pydantic's lax mode, they were silently fine; Go's encoding/json in the
    delegate refuses them at ADD, so the condition warns (multus itself attaches them)."""
    report = validate_object(nad("typed", conf))
    assert report.valid
    assert any(str(w).startswith(message) for w in report.warnings), report.summary()


async def _posted_events(name: str, failing_writes: int) -> list[dict[str, Any]]:
    """The Events a reconciler posts for a broken Network `name` while a bare HTTP API
    refuses its status write `failing_writes` times (500)."""
    posted: list[dict[str, Any]] = []

    async def refuse(_: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "code": 500}, status=500)

    async def event(request: web.Request) -> web.Response:
        posted.append(await request.json())
        return web.json_response(posted[-1], status=201)

    app = web.Application()
    app.router.add_patch(
        f"/apis/kubernetes.com/v1/namespaces/default/networks/{name}/status", refuse
    )
    app.router.add_post("/api/v1/namespaces/default/events", event)
    async with TestServer(app) as server:
        api = KubeApi(kopf.ConnectionInfo(server=str(server.make_url("/"))))
        state, rec = reconciler_for(api)
        try:
            state.on_network(None, network(name, "bridge", "[{"))
            for _ in range(failing_writes):
                rec.resync()  # retry now, not after the backoff
                assert await rec.reconcile_once() == 1  # refused, to be retried
        finally:
            await api.close()
    return posted


async def test_a_retried_status_write_posts_one_event() -> None:
    """The transition's Event went out before the status write; each retry of a refused
    write posted it again."""
    posted = await _posted_events("bad", 3)
    assert [e["reason"] for e in posted] == ["Invalid"]


async def test_event_name_fits_for_a_253_char_object_name() -> None:
    posted = await _posted_events("a" * 235 + "-" + "b" * 17, 1)
    name = posted[0]["metadata"]["name"]
    assert len(name) <= 253 and re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", name), name
    assert ".-" not in name and "-." not in name


async def test_settings_configmap_without_its_key_is_invalid(
    emulator: tuple[Emulator, Client], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo in the key (settings.yml) rendered the defaults onto every node, said valid."""
    _emu, client = emulator
    await client.add_node("node1")
    cm = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "multus-settings", "namespace": NAMESPACE},
        "data": {"settings.yml": "mode: thin\n"},
    }
    await client.create(f"/api/v1/namespaces/{NAMESPACE}/configmaps", cm)
    async with running(client.url) as op:
        await settled(op)
        cond = op.nodes.settings_condition
        assert (cond.status, cond.reason) == ("False", "InvalidSettings")
        assert cond.message.startswith("data['settings.yaml']: required key is missing")
        assert await client.configmap("node1") is None
    path = tmp_path / "settings.yaml"
    path.write_text(yaml.safe_dump(cm))
    assert multusctl(["render", "--settings", str(path), "--node", "node1"]) == 1
    assert "data['settings.yaml']: required key is missing" in capsys.readouterr().err
