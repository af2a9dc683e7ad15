"""NAD validity where users look: conditions where the installed NAD CRD has the status
subresource, else one annotation written by merge patch; which one is looked up at run
time; a controller that keeps removing the annotation is not fought."""

from __future__ import annotations

import json
import logging
from typing import Any

import kopf
import pytest

from multus_operator.kubeapi import KubeApi
from multus_operator.state import VALIDITY_ANNOTATION
from tests.operator.apiclient import Client
from tests.operator.broken import BROKEN, fixed, nad
from tests.operator.conftest import eventually, reconciler_for, running, settled
from tests.operator.emulator import Emulator

NADS = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions"
NAD_RESOURCE = "k8s.cni.cncf.io/v1/network-attachment-definitions"


def _validity(obj: Any) -> dict[str, Any] | None:
    text = ((obj or {}).get("metadata", {}).get("annotations") or {}).get(VALIDITY_ANNOTATION)
    return json.loads(text) if text else None


async def test_a_nad_without_status_gets_one_annotation_by_merge_patch(
    emulator: tuple[Emulator, Client],
) -> None:
    emu, client = emulator
    await client.add_node("node1")
    obj, message = BROKEN["nad-type-path"]
    obj = json.loads(json.dumps(obj))
    obj["metadata"]["annotations"] = {"owner": "someone-else"}
    await client.create(NADS, obj)
    async with running(client.url) as op:
        assert not op.state.nad_has_status
        found = await eventually(lambda: _annotated(client, "nad-type-path"))
        assert _validity(found) == {
            "status": "False", "reason": "InvalidConfig", "message": message,
            "observedGeneration": 1,
        }  # fmt: skip
        assert found["metadata"]["annotations"]["owner"] == "someone-else"  # merged
        await settled(op)
        patches = [r for r in emu.requests_log if r.method == "PATCH" and "nad-type-path" in r.path]
        assert len(patches) == 1
        await client.patch(f"{NADS}/nad-type-path", {"spec": fixed("nad-type-path")["spec"]})

        async def fixed_reported() -> bool:
            value = _validity(await client.get(f"{NADS}/nad-type-path"))
            return bool(value) and value["status"] == "True" and value["observedGeneration"] == 2

        await eventually(fixed_reported)
        await settled(op)
    writes = [w for w in emu.writes() if "nad-type-path" in w and w.startswith("PATCH")]
    assert len(writes) == 3  # the test's spec change, and two annotations


async def _annotated(client: Client, name: str) -> Any:
    found = await client.get(f"{NADS}/{name}")
    return found if _validity(found) else None


async def test_the_status_subresource_is_looked_for_at_run_time(
    emulator: tuple[Emulator, Client],
) -> None:
    """Helm leaves an existing CRD alone: clusters differ, and an upgrade may add /status."""
    emu, client = emulator
    await client.add_node("node1")
    await client.create(NADS, BROKEN["nad-type-path"][0])
    async with running(client.url, nad_status_recheck=0.2) as op:
        await eventually(lambda: _annotated(client, "nad-type-path"))
        emu.resources[NAD_RESOURCE].subresources.add("status")

        async def conditions() -> Any:
            found = await client.get(f"{NADS}/nad-type-path")
            conds = (found.get("status") or {}).get("conditions") or []
            gone = VALIDITY_ANNOTATION not in (found["metadata"].get("annotations") or {})
            return conds if conds and gone else None

        conds = await eventually(conditions)
        assert op.state.nad_has_status
        assert [c["type"] for c in conds] == ["Valid", "Ready"]
        assert conds[0]["message"] == BROKEN["nad-type-path"][1]
    events = await client.get("/api/v1/namespaces/default/events")
    assert [e["reason"] for e in events["items"]] == ["Invalid"]  # once, not per place


async def test_another_writer_removing_the_annotation_is_not_fought(
    emulator: tuple[Emulator, Client], caplog: pytest.LogCaptureFixture
) -> None:
    """A controller that owns NADs (SR-IOV network operator, GitOps) may rewrite them
    without our annotation: rewritten after 1, 2, 4 s, then left until the spec changes."""
    _emu, client = emulator
    caplog.set_level(logging.WARNING, logger="multus_operator")
    await client.create(NADS, nad("owned", {"type": "bridge"}))
    now = [0.0]
    api = KubeApi(kopf.ConnectionInfo(server=client.url))
    state, rec = reconciler_for(api, clock=lambda: now[0])

    async def feed() -> Any:
        body = await client.get(f"{NADS}/owned")
        state.on_network(None, body)
        return body

    async def remove() -> None:
        await client.patch(
            f"{NADS}/owned", {"metadata": {"annotations": {VALIDITY_ANNOTATION: None}}}
        )
        await feed()

    try:
        await feed()
        await rec.reconcile_once()
        assert _validity(await feed())["status"] == "True"
        assert api.writes["patch network-attachment-definitions"] == 1
        for wait in (1, 2, 4):
            await remove()
            await rec.reconcile_once()  # deferred: not at once
            assert api.writes["patch network-attachment-definitions"] == 1 + (wait.bit_length() - 1)
            now[0] += wait
            rec.resync()
            await rec.reconcile_once()
            assert _validity(await feed()) is not None
        assert api.writes["patch network-attachment-definitions"] == 4
        await remove()
        for _ in range(3):
            now[0] += 100
            rec.resync()
            await rec.reconcile_once()
        assert _validity(await feed()) is None  # given up
        assert api.writes["patch network-attachment-definitions"] == 4
        assert not rec.retrying  # nothing left pending: the reconciler can be idle
        await client.patch(f"{NADS}/owned", {"spec": {"config": '{"type": "macvlan"}'}})
        await feed()
        await rec.reconcile_once()
        assert _validity(await feed())["observedGeneration"] == 2  # a new spec: told again
    finally:
        await api.close()
    warned = [r.getMessage() for r in caplog.records if "another writer" in r.getMessage()]
    assert len(warned) == 1 and "NAD default/owned" in warned[0]
