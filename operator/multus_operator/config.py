"""How the operator runs: read once, from flags and the environment, into one object.

Defaults live here and only here (the dataclass fields); `from_args` is the one place
that reads `os.environ`, and everything else gets the `OperatorConfig` it builds.
Invalid values are refused at start, naming the flag, before anything talks to the API.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import kopf

from .webhook import TlsFiles

DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DEFAULT_TLS_DIR = Path("/etc/multus-operator/webhook-tls")
FailurePolicy = Literal["Ignore", "Fail"]


class ConfigError(ValueError):
    """A flag or environment variable with a value the operator cannot run with."""


@dataclasses.dataclass(frozen=True)
class WebhookConfig:
    """The admission webhook: where it listens, its certificate, how it is registered."""

    port: int
    tls_dir: Path = DEFAULT_TLS_DIR
    addr: str = "0.0.0.0"
    managed: str | None = None  # the ValidatingWebhookConfiguration kept in sync
    service: str | None = None  # the Service in front of the replicas (our namespace)
    service_port: int = 443
    url: str | None = None  # or a base URL the API server reaches us at (out of cluster)
    nad_failure_policy: FailurePolicy = "Ignore"
    timeout_seconds: int = 5
    tls_check_every: float = 30.0

    def problems(self) -> list[str]:
        found = []
        if not 0 < self.port < 65536:
            found.append(f"--webhook-port: {self.port} is not a port")
        if self.managed is not None:
            if len(self.managed) > 253 or not DNS_SUBDOMAIN.fullmatch(self.managed):
                found.append(
                    f"--webhook-managed: {self.managed!r} is not a valid object name"
                    " (lowercase letters, digits, '-' and '.', at most 253)"
                )
            if (self.service is None) == (self.url is None):
                found.append("--webhook-managed needs one of --webhook-service or --webhook-url")
        if self.service is not None and not DNS_LABEL.fullmatch(self.service):
            found.append(f"--webhook-service: {self.service!r} is not a Service name")
        if self.url is not None and not self.url.startswith("https://"):
            found.append(f"--webhook-url: {self.url!r} must start with https://")
        if self.nad_failure_policy not in ("Ignore", "Fail"):
            found.append(f"--webhook-nad-failure-policy: {self.nad_failure_policy!r}")
        if not 1 <= self.timeout_seconds <= 30:
            found.append(f"--webhook-timeout: {self.timeout_seconds} is not within 1..30 s")
        found += [f"--webhook-tls-dir: {p}" for p in TlsFiles(self.tls_dir).problems()]
        return found


@dataclasses.dataclass(frozen=True)
class OperatorConfig:
    namespace: str = "kube-system"
    identity: str = dataclasses.field(default_factory=socket.gethostname)
    pod_ip: str | None = None  # ours, to tell the other replicas' webhook endpoints apart
    connection: kopf.ConnectionInfo | None = None  # None: in-cluster or $KUBECONFIG
    debounce: float = 0.2  # seconds to let a burst of events land before a pass
    concurrency: int = 16  # writes in flight at once
    http_addr: str = "0.0.0.0"
    http_port: int | None = None  # /healthz, /readyz, /metrics; None: not served
    leader_election: bool = False
    lease_name: str = "multus-operator"
    lease_duration: float = 15.0
    lease_renew: float = 2.0
    webhook: WebhookConfig | None = None
    log_level: str = "INFO"
    nad_status_recheck: float = 300.0  # seconds between looks at the NAD CRD's /status

    def problems(self) -> list[str]:
        found = []
        if not DNS_LABEL.fullmatch(self.namespace):
            found.append(f"namespace: {self.namespace!r} is not a namespace name")
        if not DNS_SUBDOMAIN.fullmatch(self.lease_name):
            found.append(f"--lease-name: {self.lease_name!r} is not a valid object name")
        if self.lease_renew >= self.lease_duration:
            found.append("--lease-renew must be shorter than --lease-duration")
        if self.webhook is not None:
            found += self.webhook.problems()
        return found


def _default(cls: type[Any], name: str) -> Any:
    field = cls.__dataclass_fields__[name]
    return field.default if field.default is not dataclasses.MISSING else None


def parser() -> argparse.ArgumentParser:
    op, wh = OperatorConfig, WebhookConfig
    p = argparse.ArgumentParser(
        prog="multus-operator",
        description="Validate network objects, report their status, render node ConfigMaps.",
    )
    p.add_argument("--namespace", help="default: $MULTUS_NAMESPACE, else kube-system")
    p.add_argument("--identity", help="this replica's name in the Lease; default: $POD_NAME")
    p.add_argument("--pod-ip", help="this replica's pod IP; default: $POD_IP")
    p.add_argument("--http-port", type=int, default=8080, help="/healthz, /readyz, /metrics")
    p.add_argument("--http-addr", default=_default(op, "http_addr"))
    p.add_argument(
        "--no-leader-elect",
        dest="leader_election",
        action="store_false",
        help="write without holding the Lease (a single replica only)",
    )
    p.add_argument("--lease-name", default=_default(op, "lease_name"))
    p.add_argument("--lease-duration", type=float, default=_default(op, "lease_duration"))
    p.add_argument("--lease-renew", type=float, default=_default(op, "lease_renew"))
    p.add_argument("--debounce", type=float, default=_default(op, "debounce"))
    p.add_argument("--concurrency", type=int, default=_default(op, "concurrency"))
    p.add_argument("--log-level", help="default: $MULTUS_LOG_LEVEL, else INFO")
    p.add_argument("--webhook-port", type=int, help="serve the admission webhook (HTTPS)")
    p.add_argument("--webhook-addr", default=_default(wh, "addr"))
    p.add_argument(
        "--webhook-tls-dir",
        type=Path,
        default=_default(wh, "tls_dir"),
        help="the webhook's kubernetes.io/tls Secret, mounted (tls.crt, tls.key[, ca.crt])",
    )
    p.add_argument(
        "--webhook-managed",
        metavar="NAME",
        help="keep ValidatingWebhookConfiguration NAME in sync (needs --webhook-service/url)",
    )
    p.add_argument("--webhook-service", metavar="NAME", help="the webhook's Service, here")
    p.add_argument("--webhook-service-port", type=int, default=_default(wh, "service_port"))
    p.add_argument("--webhook-url", metavar="URL", help="base https URL (out of cluster)")
    p.add_argument(
        "--webhook-nad-failure-policy",
        choices=("Ignore", "Fail"),
        default=_default(wh, "nad_failure_policy"),
        help="Fail refuses NAD writes while no replica answers",
    )
    p.add_argument(
        "--webhook-timeout", type=int, default=_default(wh, "timeout_seconds"), help="seconds"
    )
    return p


def from_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> OperatorConfig:
    """The configuration from command-line flags and the environment; ConfigError when
    it cannot be run with."""
    args = parser().parse_args(argv)
    webhook = None
    if args.webhook_port is not None:
        webhook = WebhookConfig(
            port=args.webhook_port,
            tls_dir=args.webhook_tls_dir,
            addr=args.webhook_addr,
            managed=args.webhook_managed,
            service=args.webhook_service,
            service_port=args.webhook_service_port,
            url=args.webhook_url,
            nad_failure_policy=args.webhook_nad_failure_policy,
            timeout_seconds=args.webhook_timeout,
        )
    elif args.webhook_managed or args.webhook_service or args.webhook_url:
        raise ConfigError("--webhook-managed/--webhook-service/--webhook-url need --webhook-port")
    identity = args.identity or environ.get("POD_NAME") or socket.gethostname()
    config = OperatorConfig(
        namespace=args.namespace
        or environ.get("MULTUS_NAMESPACE")
        or _default(OperatorConfig, "namespace"),
        identity=identity,
        pod_ip=args.pod_ip or environ.get("POD_IP") or None,
        debounce=args.debounce,
        concurrency=args.concurrency,
        http_addr=args.http_addr,
        http_port=args.http_port or None,
        leader_election=args.leader_election,
        lease_name=args.lease_name,
        lease_duration=args.lease_duration,
        lease_renew=args.lease_renew,
        webhook=webhook,
        log_level=(
            args.log_level
            or environ.get("MULTUS_LOG_LEVEL")
            or _default(OperatorConfig, "log_level")
        ).upper(),
    )
    problems = config.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    return config
