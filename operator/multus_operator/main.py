"""multus-operator: validate network objects, report their status, render node ConfigMaps.

Credentials from in-cluster or $KUBECONFIG (the `kubernetes` package reads them);
everything else from flags and a few environment variables, read once (`config.py`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

import kopf

from .config import ConfigError, from_args, parser
from .handlers import Operator


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = from_args(argv, os.environ)
    except ConfigError as exc:
        parser().error(str(exc))  # exits 2, naming the flag, before any API call
    kopf.configure(log_format=kopf.LogFormat.JSON)  # structured logs
    logging.getLogger().setLevel(config.log_level)
    operator = Operator(config)
    asyncio.run(
        kopf.operator(
            registry=operator.registry,
            clusterwide=True,
            # Replicas coordinate by our Lease, not kopf peering: a standby must keep
            # watching (its state stays warm) and keep serving the webhook.
            standalone=True,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
