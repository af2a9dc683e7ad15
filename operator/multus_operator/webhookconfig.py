"""The ValidatingWebhookConfiguration, built and (with --webhook-managed) kept in sync.

One webhook per kind, each with its own path (`admission.PATHS`):

- Networks: failurePolicy Fail. Only our operator writes them in practice; a bad one
  would reach every node's rendering.
- NADs: failurePolicy Ignore unless asked for Fail. Other controllers (the SR-IOV
  network operator, OVN-Kubernetes, KubeVirt, GitOps tools) write NADs; while no
  replica answers, their writes must not fail. An invalid NAD admitted then still gets
  its Invalid verdict (annotation or condition, and an Event).
- matchConditions: an UPDATE reaches us only when it changes what the checks read
  (everything but metadata and status), so labels, finalizers and status updates never
  wait for us, nor fail with us down. CREATE always does; DELETE never is sent.
- timeoutSeconds short (5 by default): the checks take milliseconds.

Only the leader writes the configuration: when it leads, when the certificate's CA
changes, and every minute (to undo hand edits). On a graceful stop the leader empties
it only if no other replica serves the webhook (the Service's EndpointSlices list none
ready but us), so validation stays on through a rolling restart and is off, rather
than failing every Network write, once the last replica is gone.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from typing import Any

from .admission import ADMITTED, PATHS
from .config import WebhookConfig
from .kubeapi import ApiError, KubeApi
from .resources import ENDPOINTSLICES, NADS, NETWORKS, VALIDATING_WEBHOOKS, Resource
from .retries import Backoff
from .webhook import WebhookServer

logger = logging.getLogger("multus_operator")
MANAGED_BY = {"app.kubernetes.io/managed-by": "multus-operator"}
# What the checks read, per kind: every top-level field but metadata and status
# (apiVersion and kind cannot change in an update).
CHECKED_FIELDS = {NETWORKS: ("plugin", "args"), NADS: ("spec",)}
WEBHOOK_NAMES = {
    NETWORKS: "networks.validate.multus.cni.cncf.io",
    NADS: "network-attachment-definitions.validate.multus.cni.cncf.io",
}


def content_changed(fields: tuple[str, ...]) -> str:
    """CEL: a CREATE, or an UPDATE that changes one of `fields`. `has()` guards every
    access: an evaluation error would fall back on the failurePolicy."""
    changed = [
        f"has(object.{f}) != has(oldObject.{f}) || (has(object.{f}) && object.{f} != oldObject.{f})"
        for f in fields
    ]
    return " || ".join(["request.operation != 'UPDATE'", *changed])


def _webhook(res: Resource, config: WebhookConfig, namespace: str, ca: bytes) -> dict[str, Any]:
    path = next(p for p, kind in PATHS.items() if kind == res.kind)
    client: dict[str, Any] = {"caBundle": base64.b64encode(ca).decode("ascii")}
    if config.service is not None:
        client["service"] = {
            "namespace": namespace,
            "name": config.service,
            "path": path,
            "port": config.service_port,
        }
    else:
        client["url"] = f"{str(config.url).rstrip('/')}{path}"
    policy = "Fail" if res is NETWORKS else config.nad_failure_policy
    return {
        "name": WEBHOOK_NAMES[res],
        "clientConfig": client,
        "rules": [
            {
                "apiGroups": [res.group],
                "apiVersions": [res.version],
                "resources": [res.plural],
                "operations": list(ADMITTED),
                "scope": "Namespaced",
            }
        ],
        "matchConditions": [
            {"name": "checked-content-changed", "expression": content_changed(CHECKED_FIELDS[res])}
        ],
        "failurePolicy": policy,
        "matchPolicy": "Equivalent",
        "sideEffects": "None",
        "timeoutSeconds": config.timeout_seconds,
        "admissionReviewVersions": ["v1"],
    }


def build(config: WebhookConfig, namespace: str, ca: bytes) -> dict[str, Any]:
    """The whole ValidatingWebhookConfiguration."""
    return {
        "apiVersion": VALIDATING_WEBHOOKS.api_version,
        "kind": VALIDATING_WEBHOOKS.kind,
        "metadata": {"name": config.managed, "labels": dict(MANAGED_BY)},
        "webhooks": [_webhook(res, config, namespace, ca) for res in (NETWORKS, NADS)],
    }


def contains(live: Any, wanted: Any) -> bool:
    """Whether `live` has every value `wanted` sets (the API server adds defaults)."""
    if isinstance(wanted, dict):
        return isinstance(live, dict) and all(contains(live.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (
            isinstance(live, list)
            and len(live) == len(wanted)
            and all(contains(a, b) for a, b in zip(live, wanted, strict=True))
        )
    return bool(live == wanted)


class WebhookConfigManager:
    def __init__(
        self,
        api: KubeApi,
        config: WebhookConfig,
        namespace: str,
        server: WebhookServer,
        *,
        pod_ip: str | None = None,
        leader: asyncio.Event | None = None,
        recheck: float = 60.0,
    ) -> None:
        assert config.managed is not None
        self.api = api
        self.config = config
        self.name = config.managed
        self.namespace = namespace
        self.server = server
        self.pod_ip = pod_ip
        self.leader = leader
        self.recheck = recheck
        self.in_sync = asyncio.Event()

    def leading(self) -> bool:
        return self.leader is None or self.leader.is_set()

    async def run(self) -> None:
        await self.server.serving.wait()
        backoff = Backoff()
        while True:
            if self.leader is not None and not self.leader.is_set():
                self.in_sync.clear()
                await self.leader.wait()
            self.server.ca_changed.clear()
            try:
                await self.ensure()
                backoff.succeeded()
                wait = self.recheck
            except ApiError as exc:
                logger.debug("webhook configuration %s: %s", self.name, exc)
                wait = backoff.failed(exc.retry_after or 0.0)
            with contextlib.suppress(TimeoutError):  # a new CA, or time for a look
                await asyncio.wait_for(self.server.ca_changed.wait(), wait)

    async def ensure(self) -> None:
        desired = build(self.config, self.namespace, self.server.ca_bundle)
        live = await self.api.get(VALIDATING_WEBHOOKS, self.name)
        patch = {"metadata": {"labels": MANAGED_BY}, "webhooks": desired["webhooks"]}
        if live is None:
            await self.api.create(VALIDATING_WEBHOOKS, desired)
            logger.info("webhook configuration %s created", self.name)
        elif not contains(live, patch):  # patched only where it lacks what the patch sets
            await self.api.patch(VALIDATING_WEBHOOKS, self.name, patch)
            logger.info("webhook configuration %s updated", self.name)
        self.in_sync.set()

    async def on_stop(self) -> None:
        """Leave the configuration to the replicas still serving, or empty it."""
        if not self.leading():
            return
        try:
            others = await self.others_serving()
            if others:
                logger.info(
                    "webhook configuration %s kept: %d other replica(s) serve it", self.name, others
                )
                return
            await self.api.patch(VALIDATING_WEBHOOKS, self.name, {"webhooks": []})
            logger.info("webhook configuration %s emptied: no replica left to serve", self.name)
        except ApiError as exc:
            logger.warning("webhook configuration %s left as it is: %s", self.name, exc)

    async def others_serving(self) -> int:
        """Ready endpoints of the webhook's Service other than this replica."""
        if self.config.service is None:
            return 0  # behind a URL: there is no way to know; assume none
        slices, _ = await self.api.list(
            ENDPOINTSLICES,
            namespace=self.namespace,
            label_selector=f"kubernetes.io/service-name={self.config.service}",
        )
        others = 0
        for piece in slices:
            for endpoint in piece.get("endpoints") or []:
                cond = endpoint.get("conditions") or {}
                addresses = endpoint.get("addresses") or []
                if cond.get("ready") is False or cond.get("terminating") is True:
                    continue
                if self.pod_ip is not None and self.pod_ip in addresses:
                    continue
                others += 1
        return others
