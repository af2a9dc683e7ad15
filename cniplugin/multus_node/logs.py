"""Logging: every line says which pod, container and network it is about.

The request being served is held in context variables set by `handling` for the
thread that serves it; a filter copies them onto every record (`-` outside a
request), so the engine's own lines (through the `multus_cni.logs` sink) carry them
too. Lines go to stderr, which the container runtime collects.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator

from multus_cni.logs import log as engine_log

POD: contextvars.ContextVar[str] = contextvars.ContextVar("pod", default="-")
CONTAINER: contextvars.ContextVar[str] = contextvars.ContextVar("container", default="-")
NETWORK: contextvars.ContextVar[str] = contextvars.ContextVar("network", default="-")

FORMAT = (
    "%(asctime)s %(levelname)s %(name)s "
    "pod=%(pod)s container=%(container)s network=%(network)s: %(message)s"
)
# multus_cni's levels (Multus's) onto logging's
ENGINE_LEVELS = {
    "panic": logging.CRITICAL,
    "error": logging.ERROR,
    "verbose": logging.INFO,
    "debug": logging.DEBUG,
}

logger = logging.getLogger("multus_node")
engine_logger = logging.getLogger("multus_cni")


class RequestContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.pod = POD.get()
        record.container = CONTAINER.get()
        record.network = NETWORK.get()
        return True


def _engine_sink(level: str, message: str) -> None:
    engine_logger.log(ENGINE_LEVELS.get(level, logging.ERROR), message)


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RequestContext())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper()))
    # Third-party chatter (urllib3 retries, kubernetes) only when it matters.
    for noisy in ("urllib3", "kubernetes", "pyroute2"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    engine_log.sink = _engine_sink


@contextlib.contextmanager
def request_context(pod: str, container: str, network: str) -> Iterator[None]:
    tokens = (
        POD.set(pod or "-"),
        CONTAINER.set(container or "-"),
        NETWORK.set(network or "-"),
    )
    try:
        yield
    finally:
        NETWORK.reset(tokens[2])
        CONTAINER.reset(tokens[1])
        POD.reset(tokens[0])
