"""SR-IOV discovery in the agent: the node's PFs and VFs, reported as the NodeState's
`pfs` section (the operator renders them into the node's `sriov-inventory.json` and
derives each SR-IOV network's `Ready` from them).

When: at start, on netlink link events of the host netns (a VF created or removed, a
netdev renamed or moved, VF settings changed through the PF: the kernel tells the PF's
RTM_NEWLINK), debounced so that a burst (a NIC creating 64 VFs) is one pass a second
later; every `--sriov-discovery-interval` seconds (what no event tells: a driver
rebound in sysfs, a simulated NIC); and when the node's inventory file changes (its
externally managed PFs are reported differently).

What: `multus_sriov.discovery.report`, the document `multusctl inventory` prints. It
holds hardware facts only (VFs our pods hold as they were before, VFs of externally
managed PFs by PCI facts), so pod ADDs and DELs, though each moves a netdev and fires
link events, find it unchanged: it is handed to the NodeState writer only when it
changed, and the writer writes only what changed.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from multus_sriov.discovery import DiscoveryError, report
from multus_sriov.settings import Settings

from . import metrics

logger = logging.getLogger("multus_node.discovering")

NETLINK_ROUTE = 0
RTMGRP_LINK = 1  # the rtnetlink multicast group of link changes
LINK_EVENT_POLL = 0.5  # how often the event thread looks whether it should stop
REOPEN_AFTER = 1.0  # after the event socket failed (ENOBUFS in a storm, ...)
TRIGGERS = ("start", "inventory", "link", "periodic")  # a pass is counted under the first


class SriovReporter:
    def __init__(
        self,
        settings: Settings,
        publish: Callable[[list[dict[str, Any]]], None],
        interval: float = 60.0,
        debounce: float = 1.0,
        link_events: bool = True,
    ) -> None:
        self.settings = settings
        self.publish = publish
        self.interval = interval
        self.debounce = debounce
        self.last: dict[str, Any] | None = None  # the document last published
        self.passes = 0
        self.failing: str | None = None  # the problem of the last pass, while it lasts
        self._cond = threading.Condition()
        self._triggers: set[str] = {"start"}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, name="sriov-discovery", daemon=True)]
        if link_events:  # off: only the other triggers (a process outside the host netns)
            self._threads.append(
                threading.Thread(target=self._listen, name="sriov-link-events", daemon=True)
            )

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()

    def poke(self, trigger: str) -> None:
        """Something may have changed: a pass after the debounce."""
        with self._cond:
            self._triggers.add(trigger)
            self._cond.notify()

    def discover_once(self, trigger: str) -> bool:
        """One pass; True when the document changed (and was published)."""
        started = time.monotonic()
        try:
            doc = report(self.settings)
        except Exception as exc:
            self._failed(trigger, exc)
            return False
        finally:
            metrics.SRIOV_DISCOVERY_SECONDS.observe(time.monotonic() - started)
        self.passes += 1
        if self.failing is not None:
            logger.info("SR-IOV discovery works again (%s)", trigger)
            self.failing = None
        if doc == self.last:
            metrics.SRIOV_DISCOVERIES.labels(trigger, "same").inc()
            return False
        metrics.SRIOV_DISCOVERIES.labels(trigger, "changed").inc()
        vfs = sum(len(pf.get("vfs") or []) for pf in doc["pfs"])
        logger.info(
            "SR-IOV inventory %s: %d PFs, %d VFs (%s)",
            "discovered" if self.last is None else "changed",
            len(doc["pfs"]),
            vfs,
            trigger,
        )
        self.last = doc
        self.publish(doc["pfs"])
        return True

    def _failed(self, trigger: str, exc: Exception) -> None:
        """A pass that could not read the node: the last report stands (an empty one
        would make every SR-IOV network unusable here), said once per distinct problem,
        counted every time."""
        metrics.SRIOV_DISCOVERIES.labels(trigger, "failed").inc()
        problem = str(exc) if isinstance(exc, DiscoveryError) else f"{type(exc).__name__}: {exc}"
        if problem == self.failing:
            logger.debug("SR-IOV discovery still failing: %s", problem)
            return
        self.failing = problem
        kept = "no inventory reported yet" if self.last is None else "the last report stands"
        if isinstance(exc, DiscoveryError):
            logger.error("SR-IOV discovery failed: %s; %s, trying again", problem, kept)
        else:
            logger.exception("SR-IOV discovery failed: %s; %s, trying again", problem, kept)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                if not self._triggers:
                    self._cond.wait(self.interval)
                if self._stop.is_set():
                    return
                if not self._triggers:
                    self._triggers.add("periodic")
                first = "start" in self._triggers
            if not first:
                # A burst lands in one pass: wait out the debounce from its first event.
                self._stop.wait(self.debounce)
            with self._cond:
                triggers, self._triggers = self._triggers, set()
            if self._stop.is_set():
                return
            self.discover_once(next(t for t in TRIGGERS if t in triggers))

    def _listen(self) -> None:
        """Link events of this netns: each burst pokes one pass. A plain NETLINK_ROUTE
        socket in the link group, its messages read and dropped unparsed: what changed is
        the pass's to find out. (Through pyroute2's parser the agent's RSS grew by ~30 KB
        per pod ADD+DEL, each of which fires a dozen link events.)"""
        while not self._stop.is_set():
            try:
                with socket.socket(
                    socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
                ) as sock:
                    sock.bind((0, RTMGRP_LINK))
                    sock.setblocking(False)
                    while not self._stop.is_set():
                        ready, _, _ = select.select([sock], [], [], LINK_EVENT_POLL)
                        if ready and _drain(sock):
                            self.poke("link")
            except Exception as exc:  # ENOBUFS when events overflow: something changed
                logger.warning("link events: %s; listening again in %.0fs", exc, REOPEN_AFTER)
                self.poke("link")
                self._stop.wait(REOPEN_AFTER)


def _drain(sock: socket.socket) -> int:
    """Read every queued message; how many there were."""
    count = 0
    while True:
        try:
            sock.recv(1 << 16)
        except BlockingIOError:
            return count
        count += 1
