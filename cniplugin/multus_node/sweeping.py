"""The record sweep: DEL the attachments whose runtime will never DEL them.

A runtime is not bound to retry a DEL after a failed ADD, and a node can lose a DEL
(a crash between the two): the attachment record then stays, and with it the IP leases
and host-side links. Periodically, each record whose container is gone is DEL'd from
the record, through the same queue as the runtime's requests (one container's
operations stay serialized).

Gone means: its network namespace is gone, and (when it names a pod) the pod is gone
from this node too (not in the pod cache, or there with another UID); and the record
is older than the grace period, so an ADD that is just starting is never swept. A DEL
that fails keeps its record for the next sweep; both outcomes are counted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from multus_cni import cnijson
from multus_cni.cache import AttachmentStore, CorruptRecord
from multus_cni.environ import parse_cni_args
from multus_cni.errors import CniError

from . import metrics
from .handling import Reply, Request
from .watching import WatchCache

logger = logging.getLogger("multus_node.sweeping")

Submit = Callable[[Request, "Outcome"], bool]


class Outcome:
    """Receives the DEL's reply (in place of a shim's connection)."""

    def __init__(self) -> None:
        self.result: Reply | None = None
        self.done = threading.Event()

    def reply(self, reply: Reply) -> None:
        self.result = reply
        self.done.set()


def is_netns(path: str) -> bool:
    """Whether `path` is a live network namespace (an nsfs mount), not a leftover file."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


class Sweeper:
    def __init__(
        self,
        cache_dir: str,
        delegate_dirs: tuple[str, ...],
        submit: Submit,
        pods: WatchCache | None,
        interval: float,
        grace: float,
        host_root: str = "",
    ) -> None:
        self.store = AttachmentStore(cache_dir)
        self.delegate_dirs = delegate_dirs
        self.submit = submit
        self.pods = pods
        self.interval = interval
        self.grace = grace
        self.host_root = host_root
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sweep", daemon=True)

    def start(self) -> None:
        if self.interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sweep()
            except Exception:
                logger.exception("sweep failed")

    def _netns_alive(self, netns: str) -> bool:
        if not netns:
            return False
        if self.host_root and self.host_root != "/":
            host_path = os.path.join(self.host_root, netns.lstrip("/"))
            if is_netns(host_path):
                return True
        return is_netns(netns)

    def _pod_gone(self, args: dict[str, str]) -> bool | None:
        """True/False when the record names a pod and the cache can tell; None otherwise."""
        namespace, name = args.get("K8S_POD_NAMESPACE", ""), args.get("K8S_POD_NAME", "")
        if not namespace or not name:
            return None
        if self.pods is None or not self.pods.synced.is_set():
            return False  # cannot tell yet: keep it
        pod = self.pods.get(namespace, name)
        if pod is None:
            return True
        uid = args.get("K8S_POD_UID", "")
        return bool(uid) and (pod.get("metadata") or {}).get("uid") != uid

    def gone(self, record: dict[str, Any], now: float) -> bool:
        stamp = record.get("time")
        if not isinstance(stamp, int | float) or now - stamp < self.grace:
            return False
        if self._netns_alive(str(record.get("netns") or "")):
            return False
        try:
            args = parse_cni_args(str(record.get("cniArgs") or ""))
        except CniError:
            args = {}
        return self._pod_gone(args) is not False

    def sweep(self) -> tuple[int, int]:
        """One pass; (swept, kept)."""
        swept = kept = 0
        now = time.time()
        for cid, ifname in list(self.store.record_keys()):
            if self._stop.is_set():
                break
            try:
                record = self.store.load(cid, ifname)
            except CorruptRecord:
                continue
            if record is None or not self.gone(record, now):
                continue
            outcome = Outcome()
            if not self.submit(self._request(record), outcome) or not outcome.done.wait(600):
                kept += 1
                continue
            assert outcome.result is not None
            if outcome.result.rc == 0:
                swept += 1
                metrics.SWEEP.labels("swept").inc()
                logger.info("swept %s/%s: its container and pod are gone", cid, ifname)
            else:
                kept += 1
                metrics.SWEEP.labels("kept").inc()
                logger.error(
                    "sweep of %s/%s failed; the record stays: %s",
                    cid,
                    ifname,
                    outcome.result.out.decode("utf-8", "replace").strip(),
                )
        metrics.SWEEP_KEPT.set(kept)
        return swept, kept

    def _request(self, record: dict[str, Any]) -> Request:
        """The DEL the runtime would have sent, from what the record says."""
        env = {
            "CNI_COMMAND": "DEL",
            "CNI_CONTAINERID": str(record["containerId"]),
            "CNI_IFNAME": str(record["ifName"]),
            "CNI_ARGS": str(record.get("cniArgs") or ""),
            "CNI_PATH": ":".join(self.delegate_dirs),
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        }
        conf = {
            "cniVersion": record.get("cniVersion") or "0.3.1",
            "name": record.get("networkName") or "multus-cni-network",
            "type": "multus",
            # No delegates of its own: DEL works from the record. A conf in Kubernetes
            # mode may have none; the pinned kubeconfig is never read by a DEL.
            "kubeconfig": "/dev/null",
        }
        return Request(env, cnijson.dumps(conf).encode())
