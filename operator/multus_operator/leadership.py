"""Leader election with a coordination.k8s.io Lease, so that one replica writes.

Every replica watches, keeps its state warm and serves the admission webhook; only
the holder of the Lease runs reconcile passes. A replica that stops renewing loses
the Lease after `duration` seconds and another takes over. The patch carries the
Lease's resourceVersion, so of two replicas racing for an expired Lease the API
server lets one win (409 for the other).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from .kubeapi import ApiError, KubeApi, path_for

logger = logging.getLogger("multus_operator")
LEASES = ("coordination.k8s.io", "v1", "leases")


def _micro(now: datetime.datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.UTC)
        except ValueError:
            continue
    return None


class LeaderElector:
    def __init__(
        self,
        namespace: str,
        identity: str,
        *,
        name: str = "multus-operator",
        duration: float = 15.0,
        renew_every: float = 5.0,
    ) -> None:
        self.namespace = namespace
        self.identity = identity
        self.name = name
        self.duration = duration
        self.renew_every = renew_every
        self.leading = asyncio.Event()

    async def run(self, api: KubeApi) -> None:
        # A renewal must end well before the Lease would expire (client-go's renew
        # deadline): past it, a standby may hold the Lease while we still think we lead.
        deadline = max(self.duration - self.renew_every, self.renew_every)
        while True:
            try:
                won = await asyncio.wait_for(self.try_acquire(api), deadline)
            except Exception as exc:  # any failure (timeout, dropped connection): not leading
                logger.warning("lease %s: %s", self.name, str(exc) or type(exc).__name__)
                won = False
            if won and not self.leading.is_set():
                logger.info("lease %s acquired by %s", self.name, self.identity)
                self.leading.set()
            elif not won and self.leading.is_set():
                logger.warning("lease %s lost by %s", self.name, self.identity)
                self.leading.clear()
            await asyncio.sleep(self.renew_every)

    async def try_acquire(self, api: KubeApi) -> bool:
        now = datetime.datetime.now(datetime.UTC)
        path = path_for(*LEASES, self.namespace, self.name)
        lease = await api.get(path)
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
                await api.create(path_for(*LEASES, self.namespace), body)
            except ApiError as exc:
                if exc.status == 409:
                    return False
                raise
            return True
        current = lease.get("spec") or {}
        holder = current.get("holderIdentity")
        renewed = _parse(current.get("renewTime"))
        held_for = float(current.get("leaseDurationSeconds") or self.duration)
        expired = renewed is None or (now - renewed).total_seconds() > held_for
        if holder != self.identity and not expired:
            return False
        if holder != self.identity:
            spec["acquireTime"] = _micro(now)
            spec["leaseTransitions"] = int(current.get("leaseTransitions") or 0) + 1
        version = (lease.get("metadata") or {}).get("resourceVersion")
        patch: dict[str, Any] = {"spec": spec}
        if version:
            patch["metadata"] = {"resourceVersion": version}
        try:
            await api.patch(path, patch)
        except ApiError as exc:
            if exc.status == 409:
                return False
            raise
        return True
