"""Where the node's `00-multus.conf` comes from.

`configmap` (the default): the operator renders one ConfigMap per node; this agent
watches its own (`multus-node-<node>`, by field selector) and keeps `00-multus.conf`
in the CNI conf dir equal to its `00-multus.conf` key, and `multus.d/
sriov-inventory.json` equal to its `sriov-inventory.json` key (not in the conf dir
itself: containerd and CRI-O load every `.conf`, `.conflist` and `.json` there as a
network). A ConfigMap that is deleted, or that holds no or an unusable conf, leaves the
last good conf in place.

`auto`: no operator needed; the conf is generated from the node's default network conf
as Multus does: the first conf file of the conf dir (lexical order, as the runtime
picks) that is not a multus conf becomes `clusterNetwork`, its `cniVersion` is ours and
its plugins' capabilities are declared, so the runtime passes their runtimeConfig on.
Nothing is written until that conf (and the readiness indicator file, if one is set)
exists; the conf is regenerated when the default network's file changes.

`none`: the agent installs no conf (someone else does).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from multus_api.nodeconf import CONF_KEY, INVENTORY_KEY, configmap_name
from multus_api.settings import MultusSettings, multus_conf
from multus_cni import cnijson
from multus_cni.errors import CniError
from multus_cni.netconf import CONF_EXTENSIONS, MAX_CONF_BYTES, decode
from multus_rules.names import is_safe_name

from . import installing, metrics
from .config import NodeConfig
from .installing import CONF_NAME, MULTUS_TYPES, SHIM_NAME
from .kubeapi import KubeApi
from .watching import WatchCache

logger = logging.getLogger("multus_node.confsource")


class ConfProblem(Exception):
    """Why a conf is not installed; the last good one stays."""


def check_conf(data: bytes, config: NodeConfig) -> dict[str, Any]:
    """The conf to install, parsed; ConfProblem naming what is wrong."""
    try:
        conf = decode(data)
    except CniError as exc:
        raise ConfProblem(exc.msg.replace("network configuration on stdin", CONF_KEY)) from None
    kind = conf.get("type")
    if kind not in MULTUS_TYPES:
        raise ConfProblem(f"{CONF_KEY}: type {kind!r} is not a multus conf")
    name = conf.get("name")
    if not isinstance(name, str) or not is_safe_name(name):
        raise ConfProblem(f"{CONF_KEY}: name {name!r} must match [A-Za-z0-9][A-Za-z0-9_.-]*")
    if kind != "multus" and kind != SHIM_NAME:
        raise ConfProblem(
            f"{CONF_KEY}: type {kind!r} is upstream Multus's shim, whose protocol this "
            f"agent does not speak; use {SHIM_NAME!r} (thick) or 'multus' (thin)"
        )
    needed = SHIM_NAME if kind == SHIM_NAME else installing.THIN_NAME
    if not os.access(os.path.join(config.cni_bin_dir, needed), os.X_OK):
        raise ConfProblem(
            f"{CONF_KEY}: type {kind!r} needs {needed} in {config.cni_bin_dir}, which is "
            "not installed there"
        )
    return conf


class Installed:
    """Whether a conf is in place (for /readyz) and the last problem, if any."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.problem = ""
        self.conf_present = threading.Event()
        if os.path.exists(os.path.join(config.cni_conf_dir, CONF_NAME)):
            self.conf_present.set()  # from before a restart: kept and still serving

    def conf(self, data: bytes) -> None:
        try:
            check_conf(data, self.config)
        except ConfProblem as exc:
            self.refused("invalid", str(exc))
            return
        installing.install_conf(self.config, data)
        self.problem = ""
        self.conf_present.set()

    def refused(self, reason: str, problem: str) -> None:
        if problem != self.problem:
            logger.error("conf not installed (the last good one stays): %s", problem)
        self.problem = problem
        metrics.CONF_ERRORS.labels(reason).inc()


class ConfigMapSource:
    """Watches this node's ConfigMap and installs what it holds."""

    def __init__(
        self,
        api: KubeApi,
        config: NodeConfig,
        installed: Installed,
        on_inventory: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.installed = installed
        self.on_inventory = on_inventory  # the inventory file changed
        self.name = configmap_name(config.node_name)
        self.cache = WatchCache(
            api,
            "configmaps",
            f"/api/v1/namespaces/{config.namespace}/configmaps",
            field_selector=f"metadata.name={self.name}",
            listener=self._changed,
        )

    def start(self) -> None:
        self.cache.start()

    def stop(self) -> None:
        self.cache.stop()

    def _changed(self, event: str, obj: dict[str, Any]) -> None:
        if (obj.get("metadata") or {}).get("name") != self.name:
            return
        if event == "DELETED":
            self.installed.refused(
                "configmap-deleted",
                f"ConfigMap {self.config.namespace}/{self.name} was deleted; keeping "
                "the conf as it is",
            )
            return
        data = obj.get("data") or {}
        conf = data.get(CONF_KEY)
        if not isinstance(conf, str):
            self.installed.refused(
                "no-conf", f"ConfigMap {self.config.namespace}/{self.name} has no {CONF_KEY}"
            )
        else:
            self.installed.conf(conf.encode())
        inventory = data.get(INVENTORY_KEY)
        if isinstance(inventory, str):
            changed = installing.install_inventory(self.config, inventory.encode())
            if changed and self.on_inventory is not None:
                self.on_inventory()


def default_network(conf_dir: str) -> tuple[str, dict[str, Any]] | None:
    """The node's default network conf: the first conf file (the runtime's order) that
    is valid JSON and no multus conf."""
    try:
        names = sorted(os.listdir(conf_dir))
    except OSError:
        return None
    for name in names:
        if name.startswith(".") or not name.endswith(CONF_EXTENSIONS) or name == CONF_NAME:
            continue
        path = os.path.join(conf_dir, name)
        try:
            with open(path, "rb") as handle:
                doc = decode(handle.read(MAX_CONF_BYTES + 1))
        except (OSError, CniError):
            continue
        plugins = doc.get("plugins") if name.endswith(".conflist") else [doc]
        if not isinstance(plugins, list) or not plugins:
            continue
        types = {p.get("type") for p in plugins if isinstance(p, dict)}
        if types & MULTUS_TYPES:
            continue  # never our own file (or Multus's) as the master
        return path, doc
    return None


def generate(config: NodeConfig, path: str, doc: dict[str, Any]) -> bytes:
    """Our conf around the default network at `path` (the same rendering the operator
    uses, from settings)."""
    version = doc.get("cniVersion")
    settings = MultusSettings(
        cniVersion=version if isinstance(version, str) and version else "0.3.1",
        mode="thick" if config.mode == "thick" else "thin",
        kubeconfig=config.thin_kubeconfig or None,
        clusterNetwork=path,
        readinessindicatorfile=config.readiness_indicator_file or None,
        daemonSocketDir=config.socket_dir,
    )
    conf = multus_conf(settings)
    listed = doc.get("plugins")
    plugins: list[Any] = listed if isinstance(listed, list) else [doc]
    capabilities: dict[str, bool] = {}
    for plugin in plugins:
        declared = plugin.get("capabilities") if isinstance(plugin, dict) else None
        if isinstance(declared, dict):
            capabilities.update((k, True) for k, v in declared.items() if v is True)
    if capabilities:
        conf["capabilities"] = dict(sorted(capabilities.items()))
    return (cnijson.dumps(conf) + "\n").encode()


class AutoSource:
    """Generates the conf from the default network's, and follows that file."""

    def __init__(self, config: NodeConfig, installed: Installed, poll: float = 1.0) -> None:
        self.config = config
        self.installed = installed
        self.poll = poll
        self._last = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="auto-conf", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self) -> None:
        indicator = self.config.readiness_indicator_file
        if indicator and not os.path.exists(indicator):
            self.installed.refused("not-ready", f"waiting for {indicator}")
            return
        found = default_network(self.config.cni_conf_dir)
        if found is None:
            self.installed.refused(
                "no-default-network",
                f"waiting for the default network's conf in {self.config.cni_conf_dir}",
            )
            return
        path, doc = found
        data = generate(self.config, path, doc)
        fingerprint = hashlib.sha256(data).hexdigest()
        if fingerprint == self._last:
            return
        logger.info("default network conf is %s; generating %s", path, CONF_NAME)
        self.installed.conf(data)
        self._last = fingerprint

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:
                logger.exception("generating the conf failed")
            self._stop.wait(self.poll)
