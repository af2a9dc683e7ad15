"""multus-operator: validate network objects, report their status, render node ConfigMaps.

Credentials from $KUBECONFIG or in-cluster; namespace from $MULTUS_NAMESPACE.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence

import kopf

from .handlers import Operator, OperatorConfig


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="multus-operator", description=__doc__)
    p.add_argument("--namespace", default=os.environ.get("MULTUS_NAMESPACE") or "kube-system")
    p.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", help="kopf liveness URL")
    p.add_argument("--metrics-port", type=int, default=9090)
    p.add_argument("--webhook-port", type=int, help="serve the admission webhook (TLS)")
    p.add_argument("--webhook-host", help="host name the API server uses to reach us")
    p.add_argument("--webhook-cert", help="TLS certificate file (PEM)")
    p.add_argument("--webhook-key", help="TLS private key file (PEM)")
    p.add_argument(
        "--webhook-managed",
        metavar="NAME",
        help="keep ValidatingWebhookConfiguration NAME in sync",
    )
    p.add_argument(
        "--no-leader-elect",
        dest="leader_elect",
        action="store_false",
        help="write without holding the Lease (a single replica only)",
    )
    p.add_argument("--debounce", type=float, default=0.2, help="seconds to batch events")
    p.add_argument("--log-level", default=os.environ.get("MULTUS_LOG_LEVEL", "INFO"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    kopf.configure(log_format=kopf.LogFormat.JSON)  # structured logs
    logging.getLogger().setLevel(args.log_level.upper())
    config = OperatorConfig(
        namespace=args.namespace,
        debounce=args.debounce,
        webhook_port=args.webhook_port,
        webhook_host=args.webhook_host,
        webhook_certfile=args.webhook_cert,
        webhook_pkeyfile=args.webhook_key,
        webhook_managed=args.webhook_managed,
        metrics_port=args.metrics_port,
        leader_election=args.leader_elect,
    )
    operator = Operator(config)
    asyncio.run(
        kopf.operator(
            registry=operator.registry,
            clusterwide=True,
            # Replicas coordinate by our Lease, not kopf peering: a standby must keep
            # watching (its state stays warm) and keep serving the webhook.
            standalone=True,
            liveness_endpoint=args.liveness,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
