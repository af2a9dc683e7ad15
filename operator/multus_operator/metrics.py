"""Prometheus metrics and a readiness endpoint, served beside kopf's liveness probe."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from .handlers import Operator


def render(operator: Operator) -> str:
    """The text exposition format (version 0.0.4)."""
    rec = operator.reconciler
    lines = [
        "# HELP multus_operator_api_writes_total API writes made, by verb and resource.",
        "# TYPE multus_operator_api_writes_total counter",
    ]
    writes = operator.api.writes if operator.api is not None else {}
    for key, count in sorted(writes.items()):
        verb, resource = key.split(" ", 1)
        lines.append(
            f'multus_operator_api_writes_total{{verb="{verb}",resource="{resource}"}} {count}'
        )
    valid = sum(1 for r in rec.networks.values() if r.report.valid)
    gauges = {
        "multus_operator_nodes": ("Nodes known.", len(rec.nodes)),
        "multus_operator_networks_valid": ("Valid network objects.", valid),
        "multus_operator_networks_invalid": ("Invalid network objects.", len(rec.networks) - valid),
        "multus_operator_settings_valid": (
            "1 if the settings in use are the current ones.",
            int(rec.settings_condition.status == "True"),
        ),
        "multus_operator_reconcile_passes_total": ("Reconcile passes done.", rec.passes),
        "multus_operator_last_pass_seconds": ("Duration of the last pass.", rec.last_pass_seconds),
        "multus_operator_retries_pending": (
            "Failed writes waiting for their own retry.",
            rec.retrying,
        ),
    }
    for name, (help_text, value) in gauges.items():
        kind = "counter" if name.endswith("_total") else "gauge"
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
    return "\n".join(lines) + "\n"


async def serve(operator: Operator, addr: str, port: int) -> None:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=render(operator), content_type="text/plain")

    async def ready(_: web.Request) -> web.Response:
        ok = operator.reconciler.bootstrapped.is_set()
        return web.Response(status=200 if ok else 503, text="ok\n" if ok else "starting\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/readyz", ready)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, addr, port)
    await site.start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
