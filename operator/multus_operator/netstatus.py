"""Each network object's verdict, written where users look for it.

A `Network` (and a NAD where the installed NAD CRD has the status subresource) gets
`status.conditions` Valid and Ready. NPWG's NAD CRD has no status subresource, so a
NAD there gets one annotation, `multus.cni.cncf.io/validity`, a JSON object with the
Valid condition's status, reason, message and observedGeneration, written by merge
patch (no resourceVersion: it never conflicts with another writer's update). A NAD is
often owned by another controller (the SR-IOV network operator, OVN-Kubernetes,
KubeVirt, GitOps); if one keeps removing the annotation, it is written again after 1,
2 and 4 s, then left alone until the NAD's spec changes.

An Event is posted when Valid flips, once: what is stored on the object (conditions or
annotation) is what a restarted or newly elected replica compares with, so nothing is
posted again for an object that did not change.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from . import conditions
from .events import EventPoster
from .kubeapi import KubeApi, NotFoundError
from .resources import NADS, NETWORKS
from .state import VALIDITY_ANNOTATION, ClusterState, NetworkKey, NetworkRecord

logger = logging.getLogger("multus_operator")
MAX_REWRITES = 3  # of an annotation another writer removed, per NAD generation


class Deferred(Exception):
    """Not now: try again after `wait` seconds (not a failure)."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"deferred {wait:.0f} s")
        self.wait = wait


class NetworkStatus:
    def __init__(
        self,
        state: ClusterState,
        api: KubeApi,
        events: EventPoster,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.api = api
        self.events = events
        self.clock = clock
        self.written = {"statuses written": 0, "NAD annotations written": 0, "Events posted": 0}
        self._announced: dict[NetworkKey, str] = {}  # the Valid status our last Event told
        self._written: dict[NetworkKey, tuple[int | None, dict[str, Any]]] = {}
        self._removals: dict[NetworkKey, tuple[int | None, int]] = {}  # generation, count
        self._rewrite_at: dict[NetworkKey, float] = {}

    def forget(self, key: NetworkKey) -> None:
        self._announced.pop(key, None)
        self._written.pop(key, None)
        self._removals.pop(key, None)
        self._rewrite_at.pop(key, None)

    def has_status(self, kind: str) -> bool:
        return kind == "Network" or self.state.nad_has_status

    # --- what the conditions say ------------------------------------------------------

    def wanted_conditions(self, record: NetworkRecord) -> list[conditions.Wanted]:
        return [self.valid(record), self.ready(record)]

    @staticmethod
    def valid(record: NetworkRecord) -> conditions.Wanted:
        report = record.report
        if report.valid:
            reason = "ChecksPassedWithWarnings" if report.warnings else "ChecksPassed"
            return conditions.Wanted("Valid", "True", reason, report.summary())
        return conditions.Wanted("Valid", "False", "InvalidConfig", report.summary())

    def ready(self, record: NetworkRecord) -> conditions.Wanted:
        if record.view is None:
            return conditions.Wanted("Ready", "False", "Invalid", "not usable: see Valid")
        nodes = self.state.nodes
        total = len(nodes)
        if total == 0:
            return conditions.Wanted("Ready", "False", "NoNodes", "no nodes in the cluster")
        if not record.view.is_sriov and not self.state.plugins:
            return conditions.Wanted(
                "Ready", "True", "UsableOnAllNodes", "no node-specific requirement"
            )
        missing: list[str] = []
        usable_on: list[str] = []
        unusable = 0
        for name in self.state.sorted_nodes():
            why = self.state.why_not_ready(record.view, name)
            if why is not None:
                unusable += 1
                if len(missing) < 10:
                    missing.append(f"{name} ({why})")
            elif len(usable_on) < 11:
                usable_on.append(name)
        usable = total - unusable
        message = f"usable on {usable} of {total} nodes"
        if 0 < usable < total:  # where, when not everywhere (10 names at most)
            more = f" and {usable - 10} more" if usable > 10 else ""
            message += f": {', '.join(usable_on[:10])}{more}"
        if missing:
            more = f" and {unusable - 10} more" if unusable > 10 else ""
            message += f"; not on: {', '.join(missing)}{more}"
        if usable == 0:
            return conditions.Wanted("Ready", "False", "NoUsableNode", message)
        reason = "UsableOnAllNodes" if usable == total else "UsableOnSomeNodes"
        return conditions.Wanted("Ready", "True", reason, message)

    # --- writing them -----------------------------------------------------------------

    async def sync(self, key: NetworkKey) -> None:
        record = self.state.networks.get(key)
        if record is None:
            self.forget(key)
            return
        if record.deleting:
            return  # being deleted: nothing left to tell
        if self.has_status(record.kind):
            await self._sync_conditions(record)
        else:
            await self._sync_annotation(record)

    async def _sync_conditions(self, record: NetworkRecord) -> None:
        merged = conditions.merge(
            record.conditions,
            self.wanted_conditions(record),
            record.generation,
            conditions.now_rfc3339(),
        )
        if merged != record.conditions:
            valid = merged[0]
            before = next((c for c in record.conditions or [] if c.get("type") == "Valid"), None)
            await self._announce(record, before.get("status") if before else None, valid)
            try:
                await self.api.patch(
                    NETWORKS if record.kind == "Network" else NADS,
                    record.name,
                    {"status": {"conditions": merged}},
                    namespace=record.namespace,
                    subresource="status",
                )
            except NotFoundError:
                return  # deleted meanwhile: nothing to report on
            self.written["statuses written"] += 1
            record.conditions = merged
        if record.validity is not None and record.kind != "Network":
            # The CRD gained /status: the annotation that stood in for it would go stale.
            await self._patch_annotation(record, None)

    def desired_validity(self, record: NetworkRecord) -> dict[str, Any]:
        valid = self.valid(record)
        return {
            "status": valid.status,
            "reason": valid.reason,
            "message": valid.message,
            "observedGeneration": record.generation,
        }

    async def _sync_annotation(self, record: NetworkRecord) -> None:
        key = record.key
        want = self.desired_validity(record)
        if record.validity == want:
            self._rewrite_at.pop(key, None)
            return
        removed = self._removals.get(key)
        if removed is not None and removed[0] == record.generation and removed[1] > MAX_REWRITES:
            return  # given up until the spec changes
        if self._written.get(key) == (record.generation, want) and not self._rewrite_due(record):
            return
        stored = (record.validity or {}).get("status")
        await self._announce(record, stored, want)
        await self._patch_annotation(record, want)

    def _rewrite_due(self, record: NetworkRecord) -> bool:
        """We wrote exactly this and it is gone again: another writer owns the object.
        True when the rewrite is due now; raises Deferred while it is not; False once
        given up (after MAX_REWRITES, until the spec changes)."""
        key = record.key
        due = self._rewrite_at.get(key)
        if due is not None:
            if self.clock() < due:
                raise Deferred(due - self.clock())
            del self._rewrite_at[key]
            return True
        generation, count = self._removals.get(key, (record.generation, 0))
        count = count + 1 if generation == record.generation else 1
        self._removals[key] = (record.generation, count)
        if count > MAX_REWRITES:
            logger.warning(
                "NAD %s/%s: another writer removed annotation %s %d times; not writing"
                " it again until the NAD's spec changes (Events still tell its validity)",
                record.namespace,
                record.name,
                VALIDITY_ANNOTATION,
                MAX_REWRITES,
            )
            return False
        wait = float(2 ** (count - 1))
        self._rewrite_at[key] = self.clock() + wait
        raise Deferred(wait)

    async def _patch_annotation(self, record: NetworkRecord, want: dict[str, Any] | None) -> None:
        value = None if want is None else json.dumps(want, separators=(",", ":"))
        try:
            await self.api.patch(
                NADS,
                record.name,
                {"metadata": {"annotations": {VALIDITY_ANNOTATION: value}}},
                namespace=record.namespace,
            )
        except NotFoundError:
            return
        self.written["NAD annotations written"] += 1
        record.validity = want
        if want is None:
            self._written.pop(record.key, None)
        else:
            self._written[record.key] = (record.generation, want)

    async def _announce(
        self, record: NetworkRecord, before: str | None, valid: dict[str, Any]
    ) -> None:
        """Post the Valid/Invalid Event of a transition, once (not again on a retry)."""
        status = str(valid["status"])
        if before == status or self._announced.get(record.key) == status:
            return
        good = status == "True"
        # A first verdict of Valid is routine; a network turning invalid, or fixed, is news.
        log = logger.warning if not good else logger.info if before else logger.debug
        log(
            "%s %s/%s is %s: %s",
            record.kind,
            record.namespace,
            record.name,
            "valid" if good else "invalid",
            valid["message"],
        )
        await self.events.post(
            record.involved,
            "Normal" if good else "Warning",
            "Valid" if good else "Invalid",
            str(valid["message"]),
        )
        self.written["Events posted"] += 1
        self._announced[record.key] = status
