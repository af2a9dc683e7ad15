"""Prometheus metrics, `/healthz` and `/readyz` on one port (a flag: with hostNetwork,
ports of different agents collide).

No metric has a pod or container label: a node runs thousands of pods over its life,
and a label per pod would grow the series without bound. Requests are counted by
command and CNI result code; durations are histograms per command and per phase
(queue wait, network lookup, each delegate by plugin, status write).
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from multus_cni.logs import log as engine_log

logger = logging.getLogger("multus_node.metrics")

REGISTRY = CollectorRegistry()
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

REQUESTS = Counter(
    "multus_node_requests",
    "CNI requests served, by command and CNI result code (0: success)",
    ["command", "code"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "multus_node_request_duration_seconds",
    "Time to serve a CNI request, queue wait included",
    ["command"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
PHASE_SECONDS = Histogram(
    "multus_node_phase_duration_seconds",
    "Time spent per phase of a request: queue, network_lookup, status_write",
    ["phase"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
DELEGATE_SECONDS = Histogram(
    "multus_node_delegate_duration_seconds",
    "Time of one delegate plugin call, by plugin",
    ["plugin"],
    buckets=BUCKETS,
    registry=REGISTRY,
)
SHED = Counter(
    "multus_node_shed_requests",
    "Requests answered with code 11 because the queue was full (never a DEL)",
    ["command"],
    registry=REGISTRY,
)
QUEUED = Gauge("multus_node_queued_requests", "Requests waiting for a worker", registry=REGISTRY)
REFUSED_PEERS = Counter(
    "multus_node_refused_peers", "Connections refused: the peer was not uid 0", registry=REGISTRY
)
CACHE_OBJECTS = Gauge(
    "multus_node_cache_objects", "Objects in a watch cache", ["resource"], registry=REGISTRY
)
CACHE_RELISTS = Counter(
    "multus_node_cache_relists",
    "Full LISTs of a watch cache, by reason (start, gone: 410 Gone, error)",
    ["resource", "reason"],
    registry=REGISTRY,
)
API_READS = Counter(
    "multus_node_api_reads",
    "GETs an ADD made because its cache could not answer (miss, UID mismatch, not synced)",
    ["resource", "reason"],
    registry=REGISTRY,
)
SWEEP = Counter(
    "multus_node_sweep_records",
    "Attachment records the sweep handled: swept (DEL done) or kept (DEL failed)",
    ["outcome"],
    registry=REGISTRY,
)
SWEEP_KEPT = Gauge(
    "multus_node_sweep_kept_records",
    "Records of gone containers the last sweep could not DEL",
    registry=REGISTRY,
)
INSTALLS = Counter(
    "multus_node_file_installs",
    "Files written into the host's CNI dirs (only when their content changed)",
    ["file"],
    registry=REGISTRY,
)
CONF_ERRORS = Counter(
    "multus_node_conf_errors",
    "Node confs not installed (invalid, or no default network yet); the last good one stays",
    ["reason"],
    registry=REGISTRY,
)
NODESTATE_WRITES = Counter(
    "multus_node_nodestate_writes",
    "Status writes of this node's NodeState, by result",
    ["result"],
    registry=REGISTRY,
)
SRIOV_DISCOVERIES = Counter(
    "multus_node_sriov_discoveries",
    "SR-IOV discovery passes, by what caused them (start, link, periodic, inventory) and "
    "outcome (changed: a new inventory was reported; same; failed)",
    ["trigger", "outcome"],
    registry=REGISTRY,
)
SRIOV_DISCOVERY_SECONDS = Histogram(
    "multus_node_sriov_discovery_duration_seconds",
    "Time of one SR-IOV discovery pass (sysfs walk, VF settings, records)",
    buckets=BUCKETS,
    registry=REGISTRY,
)


def _engine_timing(phase: str, seconds: float, detail: str) -> None:
    if phase == "delegate":
        DELEGATE_SECONDS.labels(detail or "unknown").observe(seconds)
    else:
        PHASE_SECONDS.labels(phase).observe(seconds)


def install_engine_timer() -> None:
    engine_log.timer = _engine_timing


class HealthServer:
    """`/metrics`, `/healthz` (the process serves) and `/readyz` (it is ready: whatever
    `readiness` reports, socket listening and conf installed; the body says which is
    missing)."""

    def __init__(
        self,
        address: str,
        port: int,
        alive: Callable[[], bool],
        readiness: Callable[[], dict[str, bool]],
    ) -> None:
        alive_check, ready_check = alive, readiness

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    ok = alive_check()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"not serving\n")
                elif path == "/readyz":
                    checks = ready_check()
                    body = json.dumps(checks, sort_keys=True).encode() + b"\n"
                    self._send(200 if all(checks.values()) else 503, body, "application/json")
                else:
                    self._send(404, b"not found\n")

            def _send(self, status: int, body: bytes, kind: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                logger.debug(format, *args)

        self.server = http.server.ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="metrics", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
