"""A tiny leveled logger for the hot path (the `logging` package costs ~4 ms to import).

Levels follow Multus: panic < error < verbose < debug. Lines go to `logFile` when the
conf names one, else to stderr; never to stdout, which carries the CNI result.

A long-running host of the engine (multus-node) installs a `sink`: then every line and
every phase timing goes to it, and a call's conf no longer reconfigures the logger,
which many concurrent calls share.
"""

from __future__ import annotations

import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_RANK = {"panic": 0, "error": 1, "verbose": 2, "debug": 3}


class Logger:
    def __init__(self) -> None:
        self.level = _RANK["error"]
        self.path = ""
        self.context = ""
        self.sink: Callable[[str, str], None] | None = None
        self.timer: Callable[[str, float, str], None] | None = None

    def configure(self, level: str, path: str, context: str = "") -> None:
        if self.sink is not None:
            return
        self.level = _RANK.get(level, _RANK["error"])
        self.path = path
        self.context = context

    def enabled(self, level: str) -> bool:
        return _RANK[level] <= self.level

    def log(self, level: str, message: str) -> None:
        if self.sink is not None:
            self.sink(level, message)
            return
        if not self.enabled(level):
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        line = f"{stamp} [{level}] {self.context}{message}\n"
        if self.path:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, line.encode("utf-8", "replace"))
                finally:
                    os.close(fd)
                return
            except OSError:
                pass
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def error(self, message: str) -> None:
        self.log("error", message)

    def verbose(self, message: str) -> None:
        self.log("verbose", message)

    def debug(self, message: str) -> None:
        self.log("debug", message)

    def timing(self, phase: str, seconds: float, detail: str = "") -> None:
        """How long one phase of a call took (`delegate` with the plugin's name,
        `network_lookup`, `status_write`), for a host that keeps metrics."""
        if self.timer is not None:
            self.timer(phase, seconds, detail)


log = Logger()
