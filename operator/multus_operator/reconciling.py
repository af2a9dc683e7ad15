"""The loop that makes the cluster match the operator's memory of it.

Woken by the watches' marks (debounced, so a burst lands in one pass), a pass takes
the settings, then syncs every dirty node's ConfigMap and every dirty network's
status. A write that fails is retried on its own after its own backoff (the server's
Retry-After at least): one object the API keeps refusing delays nothing else. Only
the holder of the Lease runs passes; a standby keeps its memory warm and, once it
leads, re-checks everything (which writes nothing where nothing changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from .kubeapi import ApiError
from .netstatus import Deferred, NetworkStatus
from .nodeconfig import NodeConfigs
from .retries import Retries
from .state import ClusterState, NetworkKey

logger = logging.getLogger("multus_operator")
K = TypeVar("K", bound=Hashable)


class Reconciler:
    def __init__(
        self,
        state: ClusterState,
        nodes: NodeConfigs,
        networks: NetworkStatus,
        *,
        debounce: float = 0.2,
        concurrency: int = 16,
    ) -> None:
        self.state = state
        self.nodes = nodes
        self.networks = networks
        self.debounce = debounce
        self.concurrency = concurrency
        self.passes = 0
        self.last_pass_seconds = 0.0
        self.idle = asyncio.Event()  # converged: nothing marked, nothing waiting for a retry
        self._node_retries: Retries[str] = Retries()
        self._network_retries: Retries[NetworkKey] = Retries()
        self._reported: dict[Hashable, str] = {}  # the failure last logged per item
        self._backoff = 0.0

    def resync(self) -> None:
        """Re-check everything against the state seen, failed items too, now (at start and
        when this replica becomes the leader)."""
        self._node_retries.hurry()
        self._network_retries.hurry()
        self.state.mark_everything()

    @property
    def retrying(self) -> int:
        """How many failed items wait for their next try."""
        return len(self._node_retries) + len(self._network_retries)

    def _next_retry_in(self) -> float | None:
        times = (self._node_retries.next_in(), self._network_retries.next_in())
        return min((t for t in times if t is not None), default=None)

    async def run(self, leader: asyncio.Event | None = None) -> None:
        """Reconcile on every wake-up; only while `leader` is set, if given."""
        wake = self.state.wake
        self.resync()
        while True:
            with contextlib.suppress(TimeoutError):  # a failed item is due: a pass for it
                await asyncio.wait_for(wake.wait(), self._next_retry_in())
            self.idle.clear()
            if leader is not None and not leader.is_set():
                await leader.wait()
                self.resync()  # the cluster may have moved on while another replica led
            await asyncio.sleep(self.debounce)  # let a burst of events land first
            wake.clear()
            started = time.monotonic()
            try:
                await self.reconcile_once()
            except Exception:  # a bug: the whole pass again, after a while
                logger.exception("reconcile pass failed")
                self.state.mark_everything()
                self._backoff = min(self._backoff * 2, 60.0) if self._backoff else 1.0
                await asyncio.sleep(self._backoff)
                continue
            self._backoff = 0.0
            self.passes += 1
            self.last_pass_seconds = time.monotonic() - started
            if not wake.is_set() and not self.retrying:
                self.idle.set()

    async def reconcile_once(self) -> int:
        """One pass over what is marked and the failed items now due; an item still waiting
        for its retry is left to it (it then renders what is current). Returns how many
        failed."""
        marks = self.state.marks.take()
        before = {**self.nodes.written, **self.networks.written}
        started = time.monotonic()
        for name in marks.nodes:
            self._node_retries.hurry(name)  # its inputs changed: worth trying again now
        for key in marks.networks:
            self._network_retries.hurry(key)
        if marks.settings and await self.nodes.apply_settings():
            marks.all_nodes = True
        nodes = marks.nodes | self._node_retries.due()
        if marks.all_nodes:
            nodes |= set(self.state.nodes) | set(self.state.configmaps)
        networks = marks.networks | self._network_retries.due()
        if marks.all_networks:
            networks |= set(self.state.networks)
        failed = await self._sync_all(self.nodes.sync, nodes, self._node_retries)
        failed += await self._sync_all(self.networks.sync, networks, self._network_retries)
        self._log_writes(before, time.monotonic() - started)
        return failed

    def _log_writes(self, before: dict[str, int], took: float) -> None:
        after = {**self.nodes.written, **self.networks.written}
        done = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
        if done:
            text = ", ".join(f"{v} {k}" for k, v in done.items())
            logger.info("reconciled: %s (%.1f s)", text, took)

    async def _sync_all(
        self, sync: Callable[[K], Awaitable[None]], keys: set[K], retries: Retries[K]
    ) -> int:
        """Sync the keys not waiting for a retry; schedule the retry of those that fail."""
        todo = sorted(k for k in keys if not retries.waiting(k))  # type: ignore[type-var]
        limit = asyncio.Semaphore(self.concurrency)

        async def one(key: K) -> None:
            async with limit:
                await sync(key)

        results = await asyncio.gather(*(one(k) for k in todo), return_exceptions=True)
        failed = 0
        for key, result in zip(todo, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if result is None:
                retries.succeeded(key)
                self._reported.pop(key, None)
            elif isinstance(result, Deferred):
                retries.failed(key, at_least=result.wait)
            else:
                failed += 1
                at_least = (result.retry_after or 0.0) if isinstance(result, ApiError) else 0.0
                retries.failed(key, at_least=at_least)
                self._report(key, result)
        return failed

    def _report(self, key: Any, error: BaseException) -> None:
        """Log an item's failure once (not on every retry); failures of the API itself
        (403, 5xx, no answer) are logged by ApiHealth, once for all items."""
        text = str(error)
        if self._reported.get(key) == text:
            return
        self._reported[key] = text
        if isinstance(error, ApiError):
            if error.object_level:
                logger.warning("sync %s failed: %s; retrying with backoff", key, text)
            return
        logger.error("sync %s failed", key, exc_info=error)
