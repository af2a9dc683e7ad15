"""The escape hatch for attachment records that DEL keeps failing on.

A runtime may not retry the DEL that follows a failed ADD, so a record kept by a
failing DEL (a delegate that may hold a lease cannot be undone) can outlive its pod.
`multusctl records` shows them with what they may hold and why DEL fails;
`multusctl forget` drops one, after a confirmation, once an operator has dealt with
what it holds (or decided it holds nothing).
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

from multus_cni import records
from multus_cni.cache import AttachmentStore, CorruptRecord


@dataclasses.dataclass(frozen=True)
class Row:
    container_id: str
    ifname: str
    network: str
    state: str
    age_seconds: float
    del_failures: int
    holds: list[str]
    last_error: str

    @property
    def stuck(self) -> bool:
        """Kept by a failing DEL or a failed ADD, not a healthy live attachment."""
        return self.state != "added" or self.del_failures > 0


def holdings(record: dict[str, Any]) -> list[str]:
    """Per delegate still to undo: its interface, type, state and what it may hold."""
    found: list[str] = []
    for entry in record.get("delegates") or []:
        if not isinstance(entry, dict):
            continue
        network = entry.get("network")
        if not isinstance(network, dict):
            continue
        plugins = network.get("plugins") if "plugins" in network else [network]
        calls = entry.get("calls")
        if not isinstance(calls, list):  # a record from before per-call states
            state = records.SUCCEEDED if record.get("state") == "added" else records.STARTED
            calls = [{"state": state}] * len(plugins or [])
        ifname = str(entry.get("ifName", ""))
        result = entry.get("result") if isinstance(entry.get("result"), dict) else None
        for plugin, call in zip(plugins or [], calls, strict=False):
            state = str(call.get("state")) if isinstance(call, dict) else "?"
            if state in (records.PENDING, records.DELETED):
                continue
            kind = plugin.get("type") if isinstance(plugin, dict) else "?"
            found.append(f"{ifname} {kind} ({state}): {records.holdings(result, ifname, state)}")
    return found


def rows(cni_dir: str, now: float | None = None) -> tuple[list[Row], list[str]]:
    """Every record under `cni_dir`, and the problems met reading them."""
    store = AttachmentStore(cni_dir)
    found: list[Row] = []
    problems: list[str] = []
    now = time.time() if now is None else now
    for cid, ifname in store.record_keys():
        try:
            record = store.load(cid, ifname)
        except CorruptRecord as exc:
            problems.append(f"{cid}:{ifname}: unreadable ({exc}); the next DEL quarantines it")
            continue
        if record is None:
            continue
        found.append(
            Row(
                container_id=cid,
                ifname=ifname,
                network=str(record.get("networkName", "")),
                state=str(record.get("state", "")),
                age_seconds=max(0.0, now - float(record.get("time") or now)),
                del_failures=int(record.get("delFailures") or 0),
                holds=holdings(record),
                last_error=str(record.get("lastDelError") or ""),
            )
        )
    return found, problems


def forget(cni_dir: str, container_id: str, ifname: str) -> str:
    """Move the record aside (to quarantine/, kept for the record), under the container's
    lock so no DEL runs meanwhile; where it went. KeyError when there is none."""
    store = AttachmentStore(cni_dir)
    with store.lock(container_id) as lock:
        if not os.path.exists(store.path(container_id, ifname)):
            raise KeyError(f"{container_id}:{ifname}")
        moved = store.quarantine(container_id, ifname, "forgotten by multusctl forget")
        if not store.has_records(container_id):
            lock.release_and_remove()
    return moved


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
