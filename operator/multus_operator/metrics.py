"""Prometheus metrics, and the one HTTP server for probes and metrics.

`/healthz` (liveness) answers while the event loop runs; `/readyz` (readiness) is 200
or 503 with a JSON body saying why (see `view.py`); `/metrics` is the Prometheus text
format. All three read an `OperatorView` snapshot taken per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .view import OperatorView

Snapshot = Callable[[], OperatorView]


class ViewCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        view = self.snapshot()
        writes = CounterMetricFamily(
            "multus_operator_api_writes", "API writes made, by verb and resource.",
            labels=["verb", "resource"],
        )  # fmt: skip
        for key, count in sorted(view.writes.items()):
            writes.add_metric(key.split(" ", 1), count)
        yield writes
        errors = CounterMetricFamily(
            "multus_operator_api_errors",
            "API requests that failed, by verb, resource and HTTP code ('none': no answer).",
            labels=["verb", "resource", "code"],
        )
        for (verb, resource, code), count in sorted(view.api_errors.items()):
            errors.add_metric([verb, resource, code], count)
        yield errors
        failing = GaugeMetricFamily(
            "multus_operator_api_failing",
            "1 for each verb and resource failing now (readiness is false meanwhile).",
            labels=["verb", "resource"],
        )
        for verb, resource, _ in view.api_failing:
            failing.add_metric([verb, resource], 1)
        yield failing
        reviews = CounterMetricFamily(
            "multus_operator_admission_reviews",
            "Admission reviews answered, by path and verdict.",
            labels=["path", "allowed"],
        )
        for (path, allowed), count in sorted(view.reviews.items()):
            reviews.add_metric([path, str(allowed).lower()], count)
        yield reviews
        yield CounterMetricFamily(
            "multus_operator_reconcile_passes", "Reconcile passes done.", value=view.passes
        )
        gauges = {
            "multus_operator_ready": ("1 when ready (see /readyz).", int(view.ready)),
            "multus_operator_leader": (
                "1 while this replica writes (holds the Lease, or there is no election).",
                int(view.leading is not False),
            ),
            "multus_operator_nodes": ("Nodes known.", view.nodes),
            "multus_operator_networks_valid": ("Valid network objects.", view.networks_valid),
            "multus_operator_networks_invalid": ("Invalid network objects.", view.networks_invalid),
            "multus_operator_settings_valid": (
                "1 if the settings in use are the current ones.",
                int(view.settings.get("status") == "True"),
            ),
            "multus_operator_last_pass_seconds": (
                "Duration of the last pass.", view.last_pass_seconds,
            ),
            "multus_operator_retries_pending": (
                "Failed writes waiting for their own retry.", view.retrying,
            ),
            "multus_operator_oversized_nodes": (
                "Nodes whose rendering is over 1 MiB (the last good one stays).",
                len(view.oversized),
            ),
        }  # fmt: skip
        for name, (help_text, value) in gauges.items():
            yield GaugeMetricFamily(name, help_text, value=value)


def render(snapshot: Snapshot) -> str:
    """The text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ViewCollector(snapshot))
    return generate_latest(registry).decode()


async def serve(snapshot: Snapshot, addr: str, port: int, started: asyncio.Event) -> None:
    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"alive": True})

    async def readyz(_: web.Request) -> web.Response:
        view = snapshot()
        return web.json_response(view.readiness(), status=200 if view.ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=render(snapshot), content_type="text/plain", charset="utf-8")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, addr, port)
    await site.start()
    started.set()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
