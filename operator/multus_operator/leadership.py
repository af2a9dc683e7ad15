"""Leader election with a coordination.k8s.io Lease, so that one replica writes.

Every replica watches, keeps its state warm and serves the admission webhook; only
the holder of the Lease runs reconcile passes. The holder renews every `renew_every`
seconds. Standbys watch the Lease itself, so they see a renewal (or a release) the
moment it happens and time its expiry from when they saw it, on their own clock (as
client-go does: the holder's clock may differ). So:

- a graceful stop releases the Lease (holder cleared) and a standby takes it at once;
- after a crash, a standby takes it `duration` seconds after the last renewal it saw.

A patch carries the Lease's resourceVersion, so of two replicas racing for a free or
expired Lease the API server lets one win (409 for the other). A renewal that does
not succeed within the renew deadline (`duration - renew_every`) means not leading,
before a standby could hold the Lease while this replica still writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Callable
from typing import Any

from .kubeapi import ApiError, ConflictError, KubeApi
from .resources import LEASES
from .watching import Watch

logger = logging.getLogger("multus_operator")
Observed = tuple[str, str, float]  # holder, renewTime, leaseDurationSeconds


def _micro(now: datetime.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        identity: str,
        *,
        name: str = "multus-operator",
        duration: float = 15.0,
        renew_every: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.identity = identity
        self.name = name
        self.duration = duration
        self.renew_every = renew_every
        self.clock = clock
        self.leading = asyncio.Event()
        self.transitions = 0  # times this replica became the leader
        self._seen: Observed | None = None
        self._seen_at = clock()
        self._changed = asyncio.Event()

    # --- what the Lease watch shows ---------------------------------------------------

    def on_lease(self, event: str | None, body: dict[str, Any]) -> None:
        self._observe(None if event == "DELETED" else body)

    def _observe(self, lease: dict[str, Any] | None) -> None:
        spec = (lease or {}).get("spec") or {}
        seen: Observed | None = None
        if lease is not None:
            seen = (
                str(spec.get("holderIdentity") or ""),
                str(spec.get("renewTime") or ""),
                float(spec.get("leaseDurationSeconds") or self.duration),
            )
        if seen != self._seen:
            self._seen, self._seen_at = seen, self.clock()
            self._changed.set()

    def held_by_another_for(self) -> float:
        """Seconds until the Lease, as seen, is free for us (0: free now)."""
        if self._seen is None:
            return 0.0
        holder, _, duration = self._seen
        if not holder or holder == self.identity:
            return 0.0
        return max(0.0, self._seen_at + duration - self.clock())

    # --- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        watch = Watch(
            self.api,
            LEASES,
            self.on_lease,
            namespace=self.namespace,
            field_selector=f"metadata.name={self.name}",
            backoff=(0.5, 5.0),
        )
        watcher = asyncio.create_task(watch.run(), name="lease watch")
        try:
            with contextlib.suppress(TimeoutError):  # without the watch, GETs still work
                await asyncio.wait_for(watch.synced.wait(), self.renew_every)
            while True:
                if self.leading.is_set():
                    await asyncio.sleep(self.renew_every)
                    await self._attempt()
                    continue
                wait = self.held_by_another_for()
                if wait > 0:
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), wait + 0.01)
                    continue
                if not await self._attempt():
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), self.renew_every)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _attempt(self) -> bool:
        # A renewal must end well before the Lease would expire (client-go's renew
        # deadline): past it, a standby may hold the Lease while we still think we lead.
        deadline = max(self.duration - self.renew_every, self.renew_every)
        try:
            won = await asyncio.wait_for(self.try_acquire(), deadline)
        except Exception as exc:  # any failure (timeout, dropped connection): not leading
            logger.debug("lease %s: %s", self.name, str(exc) or type(exc).__name__)
            won = False
        if won and not self.leading.is_set():
            logger.info("lease %s acquired by %s", self.name, self.identity)
            self.transitions += 1
            self.leading.set()
        elif not won and self.leading.is_set():
            logger.warning("lease %s lost by %s", self.name, self.identity)
            self.leading.clear()
        return won

    async def try_acquire(self) -> bool:
        now = datetime.datetime.now(datetime.UTC)
        lease = await self.api.get(LEASES, self.name, namespace=self.namespace)
        self._observe(lease)
        spec: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.duration),
            "renewTime": _micro(now),
        }
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {**spec, "acquireTime": _micro(now), "leaseTransitions": 0},
            }
            try:
                await self.api.create(LEASES, body, namespace=self.namespace)
            except ConflictError:
                return False
            return True
        if self.held_by_another_for() > 0:
            return False
        current = lease.get("spec") or {}
        if current.get("holderIdentity") != self.identity:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0) + 1
        return await self._patch(lease, spec)

    async def _patch(self, lease: dict[str, Any], spec: dict[str, Any]) -> bool:
        patch: dict[str, Any] = {"spec": spec}
        version = (lease.get("metadata") or {}).get("resourceVersion")
        if version:
            patch["metadata"] = {"resourceVersion": version}
        try:
            await self.api.patch(LEASES, self.name, patch, namespace=self.namespace)
        except ConflictError:
            return False
        return True

    async def release(self) -> None:
        """Give the Lease up (a graceful stop), so a standby takes over at once."""
        if not self.leading.is_set():
            return
        self.leading.clear()
        now = _micro(datetime.datetime.now(datetime.UTC))
        try:
            lease = await self.api.get(LEASES, self.name, namespace=self.namespace)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = {"holderIdentity": None, "leaseDurationSeconds": 1, "renewTime": now}
            if await self._patch(lease, spec):
                logger.info("lease %s released by %s", self.name, self.identity)
        except ApiError as exc:
            logger.warning("lease %s: not released (%s); it expires by itself", self.name, exc)
