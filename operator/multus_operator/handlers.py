"""The operator assembled, and run by kopf: login, startup, graceful stop.

kopf is the runtime (signals, login and re-login, the startup and cleanup
activities); the operator's own watches (`watching.py`) feed its state, so each
watch is exactly as wide as it must be (our namespace and label for ConfigMaps),
an API error never ends it, and nothing is logged per watch event. kopf's own
per-object machinery (finalizers, progress annotations, peering, posting) is not
used, and its CRD scanning is off: it makes only discovery requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Coroutine, Iterator
from typing import Any

import kopf

from . import metrics, rendering, validation
from .config import OperatorConfig
from .events import EventPoster
from .health import ApiHealth
from .kubeapi import ApiError, KubeApi
from .leadership import LeaderElector
from .netstatus import NetworkStatus
from .nodeconfig import NodeConfigs
from .reconciling import Reconciler
from .resources import CONFIGMAPS, NADS, NETWORKS, NODES, NODESTATES
from .retries import Backoff
from .state import ClusterState
from .view import OperatorView
from .watching import Watch
from .webhook import TlsFiles, WebhookServer
from .webhookconfig import WebhookConfigManager

logger = logging.getLogger("multus_operator")


class RetryForever:
    """kopf's request backoffs: 1, 1, 2, 3, 5 s, then every 10 s without end (its default
    gives up after 54 s, and the operator with it). A fresh sequence per request."""

    def __iter__(self) -> Iterator[float]:
        return itertools.chain((1.0, 1.0, 2.0, 3.0, 5.0), itertools.repeat(10.0))


class Operator:
    """One operator replica: its state, its API client, its tasks, kopf's registry."""

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.health = ApiHealth()
        self.state = ClusterState(config.namespace)
        self.api: KubeApi | None = None
        self.nodes: NodeConfigs | None = None
        self.networks: NetworkStatus | None = None
        self.reconciler: Reconciler | None = None
        self.elector: LeaderElector | None = None
        self.watches: list[Watch] = []
        self.webhook: WebhookServer | None = None
        self.webhook_config: WebhookConfigManager | None = None
        self.started = asyncio.Event()  # connected, every part built
        self.synced = asyncio.Event()  # every watch listed once, NAD /status looked for
        self.http_started = asyncio.Event()
        self._nad_status_known = asyncio.Event()
        self._settings: kopf.OperatorSettings | None = None
        self._connected: asyncio.Future[kopf.ConnectionInfo] | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._reconciling: asyncio.Task[Any] | None = None
        self._killed = False
        if config.webhook is not None:
            self.webhook = WebhookServer(
                config.webhook.addr,
                config.webhook.port,
                TlsFiles(config.webhook.tls_dir),
                check_every=config.webhook.tls_check_every,
            )
        self.registry = self._build_registry()

    # --- what the probes and metrics see ----------------------------------------------

    def view(self) -> OperatorView:
        state, nodes, rec = self.state, self.nodes, self.reconciler
        valid = sum(1 for r in state.networks.values() if r.report.valid)
        cond = nodes.settings_condition if nodes is not None else None
        webhook = None
        if self.webhook is not None:
            webhook = "serving" if self.webhook.serving.is_set() else "not serving yet"
        return OperatorView(
            synced=self.synced.is_set(),
            leading=self.elector.leading.is_set() if self.elector is not None else None,
            api_failing=self.health.failing,
            not_served=tuple(sorted(self.health.absent)),
            webhook=webhook,
            settings=(
                {"status": cond.status, "reason": cond.reason, "message": cond.message}
                if cond is not None
                else {"status": "Unknown", "reason": "NotRead", "message": "not connected"}
            ),
            nodes=len(state.nodes),
            networks_valid=valid,
            networks_invalid=len(state.networks) - valid,
            nad_validity="status" if state.nad_has_status else "annotation",
            oversized=dict(nodes.oversized) if nodes is not None else {},
            retrying=rec.retrying if rec is not None else 0,
            passes=rec.passes if rec is not None else 0,
            last_pass_seconds=rec.last_pass_seconds if rec is not None else 0.0,
            writes=dict(self.api.writes) if self.api is not None else {},
            api_errors=dict(self.api.errors) if self.api is not None else {},
            reviews=dict(self.webhook.reviews) if self.webhook is not None else {},
        )

    # --- login ------------------------------------------------------------------------

    def _connection_future(self) -> asyncio.Future[kopf.ConnectionInfo]:
        if self._connected is None:
            self._connected = asyncio.get_running_loop().create_future()
        return self._connected

    async def login(self, **kwargs: Any) -> kopf.ConnectionInfo:
        """Credentials: the configured connection (tests, tools), else the `kubernetes`
        package's: in-cluster service account, else $KUBECONFIG with everything it can
        hold (exec plugins, auth providers, client certificates)."""
        if self.config.connection is not None:
            return self.config.connection
        kwargs.setdefault("logger", logger)
        if self._settings is not None:
            kwargs.setdefault("settings", self._settings)
        info = await asyncio.to_thread(lambda: kopf.login_via_client(**kwargs))
        if info is None:
            raise kopf.LoginError("the `kubernetes` package is not installed")
        return info

    # --- running ----------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_log_crash)
        self._tasks.append(task)
        return task

    async def _run(self) -> None:
        config = self.config
        info = await self._connection_future()
        api = self.api = KubeApi(info, health=self.health, relogin=self.login)
        events = EventPoster(api, config.namespace)
        self.nodes = NodeConfigs(self.state, api, events)
        self.networks = NetworkStatus(self.state, api, events)
        self.reconciler = Reconciler(
            self.state,
            self.nodes,
            self.networks,
            debounce=config.debounce,
            concurrency=config.concurrency,
        )
        state = self.state
        node_configs = f"{rendering.COMPONENT_LABEL}={rendering.COMPONENT}"
        settings_cm = f"metadata.name={validation.SETTINGS_CONFIGMAP}"
        self.watches = [
            Watch(api, NODES, state.on_node),
            Watch(api, NODESTATES, state.on_nodestate),
            Watch(api, NETWORKS, state.on_network),
            Watch(api, NADS, state.on_network),
            Watch(
                api,
                CONFIGMAPS,
                state.on_configmap,
                namespace=config.namespace,
                label_selector=node_configs,
            ),
            Watch(
                api,
                CONFIGMAPS,
                state.on_settings,
                namespace=config.namespace,
                field_selector=settings_cm,
            ),
        ]
        for watch in self.watches:
            self._spawn(watch.run(), f"watch {watch.name}")
        self._spawn(self._look_for_nad_status(api), "NAD /status detection")
        leader = None
        if config.leader_election:
            self.elector = LeaderElector(
                api,
                config.namespace,
                config.identity,
                name=config.lease_name,
                duration=config.lease_duration,
                renew_every=config.lease_renew,
            )
            leader = self.elector.leading
            self._spawn(self.elector.run(), "leader election")
        if self.webhook is not None and config.webhook is not None and config.webhook.managed:
            self.webhook_config = WebhookConfigManager(
                api,
                config.webhook,
                config.namespace,
                self.webhook,
                pod_ip=config.pod_ip,
                leader=leader,
            )
            self._spawn(self.webhook_config.run(), "webhook configuration")
        self.started.set()
        await asyncio.gather(*(w.synced.wait() for w in self.watches))
        await self._nad_status_known.wait()
        self.synced.set()
        logger.info(
            "watching %d nodes, %d network objects; %s",
            len(state.nodes),
            len(state.networks),
            "NAD validity in status" if state.nad_has_status else "NAD validity in an annotation",
        )
        self._reconciling = self._spawn(self.reconciler.run(leader), "reconciler")

    async def _look_for_nad_status(self, api: KubeApi) -> None:
        """Whether the installed NAD CRD has the status subresource: at start, and again
        every so often (Helm leaves an existing CRD alone; an upgrade may add it)."""
        backoff = Backoff()
        while True:
            try:
                served = await api.discover(NADS)
            except ApiError as exc:
                await asyncio.sleep(backoff.failed(exc.retry_after or 0.0))
                continue
            backoff.succeeded()
            has = served is not None and f"{NADS.plural}/status" in served
            if has != self.state.nad_has_status:
                self.state.nad_has_status = has
                if self._nad_status_known.is_set():
                    logger.info("the NAD CRD %s /status now", "has" if has else "lost")
                self.state.mark_all_networks()
            self._nad_status_known.set()
            await asyncio.sleep(self.config.nad_status_recheck)

    async def stop(self) -> None:
        """A graceful stop: no more writes, the webhook configuration left to the other
        replicas (or emptied), the Lease released for a standby to take at once."""
        if self._killed:
            return
        if self._reconciling is not None:
            self._reconciling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconciling
        if self.webhook_config is not None:
            await self.webhook_config.on_stop()
        if self.elector is not None:
            await self.elector.release()
        await self.kill()

    async def kill(self) -> None:
        """Stop every task at once, as a crash would (tests use it for a crash)."""
        self._killed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.api is not None:
            await self.api.close()

    def _build_registry(self) -> kopf.OperatorRegistry:
        registry = kopf.OperatorRegistry()
        config = self.config

        @kopf.on.startup(registry=registry, id="start")
        async def start(settings: kopf.OperatorSettings, **_: Any) -> None:
            self._settings = settings
            settings.scanning.disabled = True  # no CRD watch: nothing of ours needs it
            # kopf's discovery gives up (and the operator exits) after 8 failures by
            # default; an API server restarting as we start must not end us.
            settings.networking.error_backoffs = RetryForever()
            if self.webhook is not None:  # admission works even before the API does
                self._spawn(self.webhook.run(), "webhook server")
            if config.http_port is not None:
                self._spawn(
                    metrics.serve(self.view, config.http_addr, config.http_port, self.http_started),
                    "probes and metrics",
                )
            self._spawn(self._run(), "operator")

        @kopf.on.cleanup(registry=registry, id="stop")
        async def stop(**_: Any) -> None:
            await self.stop()

        @kopf.on.login(registry=registry, id="login")
        async def login(**kwargs: Any) -> kopf.ConnectionInfo:
            info = await self.login(**kwargs)
            future = self._connection_future()
            if not future.done():
                future.set_result(info)
            return info

        return registry


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("task %s ended", task.get_name(), exc_info=task.exception())
