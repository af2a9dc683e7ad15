"""The kopf side of the operator: watch handlers, admission, login, probes.

Handlers stay thin: they hand what they see to the `Reconciler` (which writes) or,
for admission, run the same checks as the status conditions and refuse with the
same message.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
from typing import Any

import kopf

from . import metrics, validation
from .kubeapi import KubeApi
from .leadership import LeaderElector
from .reconciling import NADS, NETWORKS, NODESTATES, Reconciler

logger = logging.getLogger("multus_operator")
DOMAIN = "multus.cni.cncf.io"
ADMITTED: tuple[kopf.Operation, ...] = ("CREATE", "UPDATE")  # what the webhook judges


@dataclasses.dataclass
class OperatorConfig:
    """How to run; `connection` overrides kubeconfig/in-cluster login (tests, tools)."""

    namespace: str = dataclasses.field(
        default_factory=lambda: os.environ.get("MULTUS_NAMESPACE") or "kube-system"
    )
    connection: kopf.ConnectionInfo | None = None
    debounce: float = 0.2
    concurrency: int = 16
    webhook_port: int | None = None  # None: no admission webhook
    webhook_addr: str | None = None
    webhook_host: str | None = None
    webhook_certfile: str | None = None
    webhook_pkeyfile: str | None = None
    webhook_managed: str | None = None  # ValidatingWebhookConfiguration kopf keeps in sync
    metrics_port: int | None = None
    metrics_addr: str = "0.0.0.0"
    leader_election: bool = False  # one writer among replicas, by a Lease
    identity: str = dataclasses.field(
        default_factory=lambda: (
            os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"
        )
    )
    lease_duration: float = 15.0
    lease_renew: float = 5.0


class Operator:
    """One operator instance: its registry, its reconciler, its API client."""

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.reconciler = Reconciler(
            config.namespace, debounce=config.debounce, concurrency=config.concurrency
        )
        self.api: KubeApi | None = None
        self.elector: LeaderElector | None = None
        self._connected: asyncio.Future[kopf.ConnectionInfo] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.registry = self._build_registry()

    def _connection_future(self) -> asyncio.Future[kopf.ConnectionInfo]:
        if self._connected is None:
            self._connected = asyncio.get_running_loop().create_future()
        return self._connected

    async def _run_reconciler(self) -> None:
        info = await self._connection_future()
        self.api = KubeApi(info)
        elector_task = None
        leader = None
        if self.config.leader_election:
            self.elector = LeaderElector(
                self.config.namespace,
                self.config.identity,
                duration=self.config.lease_duration,
                renew_every=self.config.lease_renew,
            )
            leader = self.elector.leading
            elector_task = asyncio.create_task(self.elector.run(self.api))
        try:
            await self.reconciler.run(self.api, leader=leader)
        finally:
            if elector_task is not None:
                elector_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await elector_task
            await self.api.close()

    def _build_registry(self) -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()
        config = self.config
        rec = self.reconciler

        @kopf.on.startup(registry=registry, id="configure")
        async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
            settings.posting.enabled = False  # our own Events, only on transitions
            settings.persistence.finalizer = f"{DOMAIN}/finalizer"
            settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=DOMAIN)
            settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
                prefix=DOMAIN, key="last-handled-configuration"
            )
            settings.peering.name = "multus-operator"
            settings.peering.mandatory = False
            settings.peering.clusterwide = True
            settings.watching.server_timeout = 300
            if config.webhook_port is not None:
                settings.admission.server = kopf.WebhookServer(
                    addr=config.webhook_addr,
                    port=config.webhook_port,
                    host=config.webhook_host,
                    certfile=config.webhook_certfile,
                    pkeyfile=config.webhook_pkeyfile,
                )
                settings.admission.managed = config.webhook_managed
            self._tasks.append(asyncio.create_task(self._run_reconciler()))
            if config.metrics_port is not None:
                self._tasks.append(
                    asyncio.create_task(
                        metrics.serve(self, config.metrics_addr, config.metrics_port)
                    )
                )

        @kopf.on.cleanup(registry=registry, id="stop")
        async def stop(**_: Any) -> None:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._tasks.clear()

        @kopf.on.login(registry=registry, id="login")
        async def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
            info = (
                config.connection
                or kopf.login_with_service_account(**kwargs)
                or kopf.login_with_kubeconfig(**kwargs)
            )
            future = self._connection_future()
            if info is not None and not future.done():
                future.set_result(info)
            return info

        @kopf.on.probe(registry=registry, id="reconciler")
        def probe(**_: Any) -> dict[str, Any]:
            cond = rec.settings_condition
            return {
                "bootstrapped": rec.bootstrapped.is_set(),
                "passes": rec.passes,
                "settings": {"status": cond.status, "reason": cond.reason, "message": cond.message},
                "oversizedNodes": sorted(rec.oversized),
                "retrying": rec.retrying,
            }

        @kopf.on.event("", "v1", "nodes", registry=registry, id="node")
        async def node(type: str | None, body: kopf.Body, **_: Any) -> None:
            rec.on_node(type, dict(body))

        @kopf.on.event(*NODESTATES, registry=registry, id="nodestate")
        async def nodestate(type: str | None, body: kopf.Body, **_: Any) -> None:
            rec.on_nodestate(type, dict(body))

        @kopf.on.event(
            "",
            "v1",
            "configmaps",
            registry=registry,
            id="configmap",
            when=lambda namespace, **_: namespace == config.namespace,
        )
        async def configmap(type: str | None, body: kopf.Body, **_: Any) -> None:
            rec.on_configmap(type, dict(body))

        @kopf.on.event(*NETWORKS, registry=registry, id="network")
        async def network(type: str | None, body: kopf.Body, **_: Any) -> None:
            rec.on_network(type, dict(body))

        @kopf.on.event(*NADS, registry=registry, id="nad")
        async def nad(type: str | None, body: kopf.Body, **_: Any) -> None:
            rec.on_network(type, dict(body))

        if config.webhook_port is not None:  # kopf refuses handlers without a server

            @kopf.on.validate(
                *NETWORKS, registry=registry, id="validate-network", operations=ADMITTED
            )
            async def admit_network(body: kopf.Body, warnings: list[str], **kw: Any) -> None:
                _admit(kw.get("operation"), dict(body), kw.get("old"), warnings)

            @kopf.on.validate(*NADS, registry=registry, id="validate-nad", operations=ADMITTED)
            async def admit_nad(body: kopf.Body, warnings: list[str], **kw: Any) -> None:
                _admit(kw.get("operation"), dict(body), kw.get("old"), warnings)

        return registry


def _admit(
    operation: str | None,
    body: dict[str, Any],
    old: kopf.Body | None,
    warnings: list[str],
) -> None:
    """Refuse an invalid object with the message its Valid condition would carry.

    Only what a request changes is judged. A DELETE, or an UPDATE that leaves the
    checked content as it was (labels, finalizers, status), passes even for an object
    that is invalid already (created before the webhook or under older rules): it can
    always be cleaned up, and never holds up the deletion of its namespace.
    """
    if operation not in ADMITTED:
        return
    if (
        operation == "UPDATE"
        and old is not None
        and validation.checked_content(dict(old)) == validation.checked_content(body)
    ):
        return
    report = validation.validate_object(body)
    warnings.extend(str(p) for p in report.warnings)
    if not report.valid:
        raise kopf.AdmissionError(report.summary(), code=422)
