"""The operator end to end: kopf watching the emulator, writing status and ConfigMaps."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from multusctl.main import main as multusctl
from tests.operator.apiclient import NAMESPACE, Client, condition
from tests.operator.broken import BROKEN, EXAMPLES, SEED_NETWORKS, fixed, seed
from tests.operator.conftest import SETTINGS_YAML, eventually, running, settled
from tests.operator.emulator import Emulator

NETS = "/apis/kubernetes.com/v1/namespaces/default/networks"
NADS = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions"
CMS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"


async def test_seed_networks_become_valid(emulator: tuple[Emulator, Client]) -> None:
    _emu, client = emulator
    await client.add_node("node1")
    async with running(client.url):
        for name in SEED_NETWORKS:
            await client.create(NETS, seed(name))
        for name in SEED_NETWORKS:
            obj_name = seed(name)["metadata"]["name"]
            net = await eventually(lambda n=obj_name: _valid_set(client, n), timeout=10)
            valid = condition(net, "Valid")
            assert valid["status"] == "True" and valid["reason"] == "ChecksPassed"
            assert valid["observedGeneration"] == 1
        flannel = await client.network("flannel-conf")
        ready = condition(flannel, "Ready")
        assert ready["status"] == "True", ready
        sriov = await client.network("sriov-conf")
        ready = condition(sriov, "Ready")
        assert ready["status"] == "False" and ready["reason"] == "NoUsableNode"
        assert ready["message"] == "usable on 0 of 1 nodes; not on: node1 (no PF enp12s0f1)"


async def _valid_set(client: Client, name: str) -> Any:
    net = await client.network(name)
    return net if condition(net, "Valid") else None


async def test_broken_objects_flip_and_fixed_flip_back(emulator: tuple[Emulator, Client]) -> None:
    _emu, client = emulator
    await client.add_node("node1")
    async with running(client.url) as op:
        for obj, _ in BROKEN.values():
            path = NADS if obj["kind"] != "Network" else NETS
            await client.create(path, obj)
        for name, (obj, message) in BROKEN.items():
            if obj["kind"] != "Network":
                continue
            net = await eventually(lambda n=name: _valid_set(client, n))
            valid = condition(net, "Valid")
            assert (valid["status"], valid["reason"]) == ("False", "InvalidConfig")
            assert valid["message"] == message
            assert condition(net, "Ready")["status"] == "False"
        await settled(op)
        # The NAD has no /status in the NPWG CRD: an Event says it instead.
        events = await client.get("/api/v1/namespaces/default/events")
        reasons = {
            (e["involvedObject"]["name"], e["reason"], e["message"]) for e in events["items"]
        }
        assert ("nad-type-path", "Invalid", BROKEN["nad-type-path"][1]) in reasons
        assert ("two-confs", "Invalid", BROKEN["two-confs"][1]) in reasons
        before = {
            n: condition(await client.network(n), "Valid")
            for n, (o, _) in BROKEN.items()
            if o["kind"] == "Network"
        }
        for name, (obj, _) in BROKEN.items():
            good = fixed(name)
            path = (NADS if obj["kind"] != "Network" else NETS) + f"/{name}"
            await client.patch(path, {k: v for k, v in good.items() if k != "metadata"})
        for name, old in before.items():
            net = await eventually(lambda n=name: _flipped(client, n, "True"), timeout=10)
            valid = condition(net, "Valid")
            assert valid["observedGeneration"] == 2
            assert valid["lastTransitionTime"] >= old["lastTransitionTime"]
        await settled(op)
        events = await client.get("/api/v1/namespaces/default/events")
        assert any(
            e["involvedObject"]["name"] == "nad-type-path" and e["reason"] == "Valid"
            for e in events["items"]
        )


async def _flipped(client: Client, name: str, status: str) -> Any:
    net = await client.network(name)
    return net if condition(net, "Valid").get("status") == status else None


async def test_transition_time_moves_only_on_transition(
    emulator: tuple[Emulator, Client],
) -> None:
    _emu, client = emulator
    await client.add_node("node1")
    async with running(client.url) as op:
        obj, _ = BROKEN["bad-if0name"]
        await client.create(NETS, obj)
        first = condition(await eventually(lambda: _valid_set(client, "bad-if0name")), "Valid")
        # Still invalid, but differently: message and generation change, time does not.
        broken_more = json.loads(obj["args"])
        broken_more[0]["if0name"] = "x" * 16
        await client.patch(f"{NETS}/bad-if0name", {"args": json.dumps(broken_more)})

        async def regenerated() -> Any:
            cond = condition(await client.network("bad-if0name"), "Valid")
            return cond if cond.get("observedGeneration") == 2 else None

        second = await eventually(regenerated)
        assert second["status"] == "False"
        assert second["lastTransitionTime"] == first["lastTransitionTime"]
        assert "if0name: 'xxxxxxxxxxxxxxxx' is longer than 15 bytes" in second["message"]
        await settled(op)


async def test_nodes_appear_and_disappear(emulator: tuple[Emulator, Client]) -> None:
    _emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    async with running(client.url) as op:
        cm = await eventually(lambda: client.configmap("node1"))
        conf = json.loads(cm["data"]["00-multus.conf"])
        assert conf["type"] == "multus-py-shim" and conf["clusterNetwork"] == "flannel-conf"
        assert cm["metadata"]["labels"]["multus.cni.cncf.io/node"] == "node1"
        node1 = await client.get("/api/v1/nodes/node1")
        assert cm["metadata"]["ownerReferences"][0]["uid"] == node1["metadata"]["uid"]
        await client.add_node("node2")
        await eventually(lambda: client.configmap("node2"))
        await client.delete("/api/v1/nodes/node1")

        async def gone() -> bool:
            return await client.configmap("node1") is None

        await eventually(gone)
        assert await client.configmap("node2") is not None
        await settled(op)


async def test_settings_change_rerenders_all_and_invalid_keeps_last_good(
    emulator: tuple[Emulator, Client],
) -> None:
    emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    for i in range(3):
        await client.add_node(f"n{i}", {"pool": "debug"} if i == 0 else None)
    async with running(client.url) as op:
        await settled(op)
        assert all([await client.configmap(f"n{i}") for i in range(3)])
        writes = len(emu.writes())
        await client.set_settings(SETTINGS_YAML + "logLevel: verbose\n")  # 1 write by the test

        async def all_verbose() -> bool:
            for i in range(3):
                cm = await client.configmap(f"n{i}")
                if json.loads(cm["data"]["00-multus.conf"])["logLevel"] != "verbose":
                    return False
            return True

        await eventually(all_verbose)
        await settled(op)
        assert len(emu.writes()) - writes == 1 + 3  # the settings, then one patch per node
        # A per-node override touches only the node it selects.
        writes = len(emu.writes())
        override = (
            "nodeOverrides:\n- nodeSelector: {matchLabels: {pool: debug}}\n"
            "  settings: {logLevel: debug}\n"
        )
        await client.set_settings(SETTINGS_YAML + "logLevel: verbose\n" + override)
        await eventually(lambda: _log_level(client, "n0", "debug"))
        await settled(op)
        assert len(emu.writes()) - writes == 1 + 1
        # Invalid settings: nothing is rewritten; the reason is an Event and a condition.
        writes = len(emu.writes())
        await client.set_settings("logLevel: loud\n")
        await eventually(lambda: op.nodes.settings_condition.status == "False")
        await settled(op)
        assert op.nodes.settings_condition.reason == "InvalidSettings"
        assert "settings.yaml.logLevel" in op.nodes.settings_condition.message
        new_writes = emu.writes()[writes:]
        assert len(new_writes) == 2 and new_writes[1].startswith("POST /api/v1/namespaces/")
        assert await _log_level(client, "n0", "debug")


async def _log_level(client: Client, node: str, level: str) -> bool:
    cm = await client.configmap(node)
    return bool(cm) and json.loads(cm["data"]["00-multus.conf"])["logLevel"] == level


async def test_hand_edits_are_restored(emulator: tuple[Emulator, Client]) -> None:
    _emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    await client.add_node("node1")
    async with running(client.url) as op:
        cm = await eventually(lambda: client.configmap("node1"))
        good = dict(cm["data"])
        await client.patch(
            f"{CMS}/multus-node-node1",
            {"data": {"00-multus.conf": "{}", "extra": "x"}},
        )

        async def restored() -> bool:
            now = await client.configmap("node1")
            return bool(now) and now["data"] == good

        await eventually(restored)
        await client.delete(f"{CMS}/multus-node-node1")
        await eventually(restored)
        await settled(op)


async def test_inventory_change_rerenders_only_that_node(
    emulator: tuple[Emulator, Client],
) -> None:
    emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    for name in ("node1", "node2", "node3"):
        await client.add_node(name)
    await client.create(NETS, seed("sriov-vlanid-l2enable-conf.yaml"))
    async with running(client.url) as op:
        await settled(op)
        net = await client.network("sriov-vlanid-l2enable-conf")
        assert condition(net, "Ready")["reason"] == "NoUsableNode"
        writes = len(emu.writes())
        state = seed("nodestate-node1.yaml")
        state["metadata"]["name"] = "node2"
        await client.create("/apis/multus.cni.cncf.io/v1/nodestates", state)
        await client.patch(
            "/apis/multus.cni.cncf.io/v1/nodestates/node2/status", {"status": state["status"]}
        )

        async def rendered() -> Any:
            cm = await client.configmap("node2")
            inventory = json.loads(cm["data"]["sriov-inventory.json"])
            return inventory if inventory["pfs"] else None

        inventory = await eventually(rendered)
        assert inventory["networks"] == [
            {"network": "default/sriov-vlanid-l2enable-conf", "pfs": ["enp2s0"]}
        ]
        await settled(op)
        new = emu.writes()[writes + 2 :]
        cm_writes = [w for w in new if "/configmaps/" in w]
        assert cm_writes == [f"PATCH {CMS}/multus-node-node2"]
        ready = condition(await client.network("sriov-vlanid-l2enable-conf"), "Ready")
        assert ready["status"] == "True" and ready["reason"] == "UsableOnSomeNodes"
        assert ready["message"].startswith(
            "usable on 1 of 3 nodes: node2; not on: node1 (no PF enp2s0)"
        )


async def test_ready_says_which_node_lacks_a_plugin(emulator: tuple[Emulator, Client]) -> None:
    """A node whose NodeState lists its plugins makes every network node-specific: one
    whose delegate (or IPAM) plugin is missing there is not usable there."""
    _emu, client = emulator
    for name in ("node1", "node2", "node3"):
        await client.add_node(name)
    macvlan = {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "macvlan-conf", "namespace": "default"},
        "spec": {
            "config": json.dumps(
                {
                    "cniVersion": "1.0.0",
                    "type": "macvlan",
                    "master": "eth0",
                    "ipam": {"type": "whereabouts", "range": "10.1.0.0/24"},
                }
            )
        },
    }
    await client.create(NADS, macvlan)
    await client.create(NETS, seed("flannel-conf.yaml"))

    async def report(node: str, plugins: list[str]) -> None:
        path = "/apis/multus.cni.cncf.io/v1/nodestates"
        if await client.get(f"{path}/{node}") is None:
            await client.create(
                path,
                {
                    "apiVersion": "multus.cni.cncf.io/v1",
                    "kind": "NodeState",
                    "metadata": {"name": node},
                },
            )
        status = {"plugins": [{"name": p, "supportedVersions": ["1.0.0"]} for p in plugins]}
        await client.patch(f"{path}/{node}/status", {"status": status})

    async with running(client.url) as op:
        await settled(op)
        ready = condition(await client.network("flannel-conf"), "Ready")
        assert ready["message"] == "no node-specific requirement"
        await report("node1", ["flannel", "macvlan", "whereabouts"])
        await report("node2", ["flannel", "macvlan"])

        async def flannel_ready() -> Any:
            cond = condition(await client.network("flannel-conf"), "Ready")
            return cond if cond["message"] != "no node-specific requirement" else None

        ready = await eventually(flannel_ready)
        assert ready["status"] == "True" and ready["reason"] == "UsableOnAllNodes", ready
        assert ready["message"] == "usable on 3 of 3 nodes"  # node3 has not reported
        await report("node3", ["bridge"])
        await settled(op)
        ready = condition(await client.network("flannel-conf"), "Ready")
        assert ready["reason"] == "UsableOnSomeNodes", ready
        assert ready["message"] == (
            "usable on 2 of 3 nodes: node1, node2; not on: node3 (plugin flannel not installed)"
        )
        # NADs have no status subresource in this emulator: the operator's verdict
        key = ("NetworkAttachmentDefinition", "default", "macvlan-conf")
        assert op.networks is not None
        wanted = op.networks.wanted_conditions(op.state.networks[key])[1]
        assert wanted.status == "True" and wanted.reason == "UsableOnSomeNodes"
        assert wanted.message == (
            "usable on 1 of 3 nodes: node1; not on: node2 (plugin whereabouts not installed), "
            "node3 (plugins macvlan, whereabouts not installed)"
        )


async def test_noop_resync_and_restart_write_nothing(emulator: tuple[Emulator, Client]) -> None:
    emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    for name in ("node1", "node2"):
        await client.add_node(name)
    for name in SEED_NETWORKS:
        await client.create(NETS, seed(name))
    await client.create(NADS, BROKEN["nad-type-path"][0])
    async with running(client.url) as op:
        await settled(op)
        writes = len(emu.writes())
        op.reconciler.resync()
        await settled(op)
        assert emu.writes()[writes:] == []
    async with running(client.url) as op:  # a restart re-lists everything
        await settled(op)
        assert emu.writes()[writes:] == []


async def test_killed_mid_way_and_restarted_converges(emulator: tuple[Emulator, Client]) -> None:
    emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    names = [f"node{i:02}" for i in range(30)]
    for name in names:
        await client.add_node(name)
    async with running(client.url, concurrency=1) as op:

        async def some_written() -> bool:
            return sum(1 for w in emu.writes() if w.startswith(f"POST {CMS}")) >= 5

        await eventually(some_written)
        # Killed, not stopped: the reconciler's task dies wherever it is.
        await op.kill()
    async with running(client.url) as op:
        await settled(op)
        for name in names:
            cm = await client.configmap(name)
            assert cm is not None and cm["data"] == op.nodes.desired(name)
    creates = [w for w in emu.writes() if w.startswith(f"POST {CMS}")]
    assert len(creates) == len(names) + 1  # one per node, plus the settings


async def test_nad_gets_conditions_where_its_crd_has_status(
    emulator: tuple[Emulator, Client],
) -> None:
    emu, client = emulator
    # A cluster whose NAD CRD has the status subresource (not the NPWG one).
    emu.resources["k8s.cni.cncf.io/v1/network-attachment-definitions"].subresources.add("status")
    await client.add_node("node1")
    obj, message = BROKEN["nad-type-path"]
    async with running(client.url) as op:
        assert op.state.nad_has_status
        await client.create(NADS, obj)

        async def reported() -> Any:
            nad = await client.get(f"{NADS}/nad-type-path")
            return condition(nad, "Valid") or None

        valid = await eventually(reported)
        assert (valid["status"], valid["message"]) == ("False", message)
        await settled(op)


async def test_multusctl_render_equals_what_the_operator_wrote(
    emulator: tuple[Emulator, Client], capsys: pytest.CaptureFixture[str]
) -> None:
    _emu, client = emulator
    settings = yaml.safe_load((EXAMPLES / "multus-settings.yaml").read_text())
    await client.set_settings(settings["data"]["settings.yaml"])
    await client.add_node("node1", {"multus.cni.cncf.io/debug": "true"})
    state = seed("nodestate-node1.yaml")
    await client.create("/apis/multus.cni.cncf.io/v1/nodestates", state)
    await client.patch(
        "/apis/multus.cni.cncf.io/v1/nodestates/node1/status", {"status": state["status"]}
    )
    for name in SEED_NETWORKS:
        await client.create(NETS, seed(name))
    async with running(client.url) as op:
        await settled(op)
        written = (await client.configmap("node1"))["data"]
    args = ["render", "--settings", str(EXAMPLES / "multus-settings.yaml"), "--node", "node1"]
    args += ["--label", "multus.cni.cncf.io/debug=true"]
    args += ["--inventory", str(EXAMPLES / "nodestate-node1.yaml")]
    args += [str(EXAMPLES / n) for n in SEED_NETWORKS]
    capsys.readouterr()
    assert multusctl(args) == 0
    assert yaml.safe_load(capsys.readouterr().out)["data"] == written


async def test_failed_write_is_retried_alone(emulator: tuple[Emulator, Client]) -> None:
    """The API answers 500 to one create (after storing it, like a timeout after commit)."""
    emu, client = emulator
    await client.set_settings(SETTINGS_YAML)
    for name in ("node1", "node2", "node3"):
        await client.add_node(name)
    failed: set[int] = set()

    def first_node_cm_post(request: Any) -> bool:
        if request.method.value != "POST" or "multus-node-node2" not in request.text:
            return False
        if not failed:
            failed.add(id(request))
        return id(request) in failed

    emu[first_node_cm_post] << 500
    async with running(client.url) as op:
        await settled(op)  # not idle while a retry is pending
        assert failed
        for name in ("node1", "node2", "node3"):
            cm = await client.configmap(name)
            assert cm is not None and cm["data"] == op.nodes.desired(name)
        assert op.api is not None
        # 3 creates and no more: the watch showed the "failed" one stored, so the retry
        # found it equal.
        assert op.api.writes["create configmaps"] == 3
        assert sum(op.api.writes.values()) == 3
