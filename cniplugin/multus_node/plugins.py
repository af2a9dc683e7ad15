"""The CNI plugins installed on this node and the spec versions each speaks, for the
NodeState (the operator's `Ready` says a network is unusable on a node that lacks its
plugin).

Each executable of the delegate dirs (the first dir wins for a name, as the engine
finds them) is asked `VERSION` once, as the engine does, run the same way delegates
are (in the node's root, bounded, with a timeout); the answer is remembered per
binary identity (inode, size, mtime), so a rescan execs only what changed. A binary
that gives no answer is listed with no versions.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from collections.abc import Callable
from typing import Any

from multus_cni.errors import CniError
from multus_cni.invoke import run_bounded

logger = logging.getLogger("multus_node.plugins")

VERSION_TIMEOUT = 5.0
Ident = tuple[int, int, int, int]


class PluginScanner:
    def __init__(
        self,
        dirs: tuple[str, ...],
        report: Callable[[list[dict[str, Any]]], None],
        interval: float = 60.0,
        overrides: dict[str, str] | None = None,
    ) -> None:
        self.dirs = dirs
        self.overrides = dict(overrides or {})  # name -> the binary it runs, wherever
        self.report = report
        self.interval = interval
        self._known: dict[str, tuple[Ident, list[str]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plugins", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def scan(self) -> list[dict[str, Any]]:
        found: dict[str, list[str]] = {}
        candidates: list[tuple[str, str]] = list(self.overrides.items())
        for directory in self.dirs:
            try:
                names = sorted(os.listdir(directory))
            except OSError:
                continue
            candidates += [(name, os.path.join(directory, name)) for name in names]
        for name, path in candidates:
            if name in found or name.startswith("."):
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
                continue
            ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
            known = self._known.get(path)
            if known is not None and known[0] == ident:
                found[name] = known[1]
                continue
            versions = ask_version(path, name)
            self._known[path] = (ident, versions)
            found[name] = versions
        return [{"name": n, "supportedVersions": v} for n, v in sorted(found.items())]

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.report(self.scan())
            except Exception:
                logger.exception("scanning the installed plugins failed")
            self._stop.wait(self.interval)


def ask_version(path: str, name: str) -> list[str]:
    """What `path` answers to VERSION; [] when it answers nothing usable."""
    env = {"CNI_COMMAND": "VERSION", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    try:
        rc, out, _ = run_bounded(
            path, env, b'{"cniVersion":"1.1.0"}', VERSION_TIMEOUT, f"'{name}' (VERSION)"
        )
        doc = json.loads(out) if rc == 0 else None
    except (CniError, ValueError) as exc:
        logger.info("plugin %s gave no VERSION answer: %s", name, exc)
        return []
    versions = doc.get("supportedVersions") if isinstance(doc, dict) else None
    if not isinstance(versions, list):
        return []
    return [str(v) for v in versions if isinstance(v, str)][:32]
