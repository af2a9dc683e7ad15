"""`multus-node`: start everything in order, serve until SIGTERM, stop cleanly.

Order at start: metrics and health first (a probe can see what is missing), then the
shim (and thin plugin), then the socket, then the API side (caches, NodeState, the
thin plugin's kubeconfig), then the conf: a conf that names the shim is installed only
once the shim is there. At SIGTERM the socket stops taking requests, those queued and
running finish (up to `DRAIN_SECONDS`), and the process exits; the conf stays.

`multus-node uninstall` removes what the agent installed (the conf, the inventory, the
thin plugin's kubeconfig, the shim and the thin plugin), so the node's default network
conf is in charge again and no pod ADD fails on a daemon that is gone (Multus #592).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
from types import FrameType

from multus_cni import invoke
from multus_cni.errors import CniError
from multus_cni.k8s.kubeconfig import load as load_api_config
from multus_sriov.settings import Settings as SriovSettings

from . import installing, logs, metrics
from .apiclient import Caches, ClientPool
from .config import ConfigError, NodeConfig, load
from .confsource import AutoSource, ConfigMapSource, Installed
from .devices import NodeDevices
from .discovering import SriovReporter
from .dispatching import Dispatcher, Job
from .handling import Handler, Request
from .kubeapi import KubeApi, configuration
from .netlink import Pyroute2Netlink
from .nodestate import NodeStateWriter
from .plugins import PluginScanner
from .serving import Replier, Server, runner
from .sweeping import Sweeper
from .tokens import TokenRefresher
from .watching import WatchCache

logger = logging.getLogger("multus_node")

DRAIN_SECONDS = 30.0


class Agent:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.installed = Installed(config)
        self.stopped = threading.Event()
        self.api: KubeApi | None = None
        self.caches = Caches()
        self.pool: ClientPool | None = None
        self.conf_source: ConfigMapSource | AutoSource | None = None
        self.nodestate: NodeStateWriter | None = None
        self.tokens: TokenRefresher | None = None
        self.sriov: SriovReporter | None = None
        self.own_dir = installing.own_plugins(config) if config.own_plugins else ""
        # where the engine looks for a delegate: binDir, then CNI_PATH (ours last)
        self.delegate_dirs = (*config.delegate_dirs, *([self.own_dir] if self.own_dir else []))
        self.handler = Handler(config, None, Pyroute2Netlink(config.host_root), self.delegate_dirs)
        self.dispatcher: Dispatcher[tuple[Request, Replier]] = Dispatcher(
            config.workers, config.max_queue, runner(self.handler)
        )
        self.server = Server(config.socket_dir, config.cni_cache_dir, self.dispatcher)
        self.health: metrics.HealthServer | None = None
        plugin_dirs = tuple(dict.fromkeys((config.cni_bin_dir, *self.delegate_dirs)))
        self.overrides: dict[str, str] = {}
        if config.sriov_type == "multus-sriov":
            # `"type": "sriov"` runs ours, even where the SR-IOV network operator's is in
            # binDir (which the engine searches first): only where the admin asks.
            self.overrides["sriov"] = os.path.join(self.own_dir, "multus-sriov")
        self.scanner = PluginScanner(
            plugin_dirs, self._report_plugins, config.plugin_scan_interval, self.overrides
        )
        self.sweeper: Sweeper | None = None

    # ---- state for the probes ----

    def alive(self) -> bool:
        return self.server.listening.is_set() and not self.stopped.is_set()

    def readiness(self) -> dict[str, bool]:
        checks = {"socket": self.server.listening.is_set()}
        if self.config.conf_source != "none":
            checks["conf"] = self.installed.conf_present.is_set()
        return checks

    # ---- start and stop ----

    def start(self) -> None:
        config = self.config
        if config.host_root:
            chroot = shutil.which("chroot") or "/usr/sbin/chroot"
            invoke.EXEC_PREFIX = (chroot, config.host_root)
            invoke.EXEC_DIRECT = (self.own_dir,) if self.own_dir else ()
        invoke.PLUGIN_OVERRIDES = dict(self.overrides)
        for name, path in self.overrides.items():
            logger.info('"type": "%s" runs %s', name, path)
        metrics.install_engine_timer()
        self.health = metrics.HealthServer(
            config.metrics_address, config.metrics_port, self.alive, self.readiness
        )
        self.health.start()
        logger.info("metrics and probes on port %d", self.health.port)
        installing.install_shim(config)
        if config.thin_python:
            installing.install_thin(config)
        self._start_api()
        self.dispatcher.start()
        self.server.start()
        self.scanner.start()
        self._start_conf_source()
        self.sweeper = Sweeper(
            config.cni_cache_dir,
            self.delegate_dirs,
            self._submit_sweep,
            self.caches.pods,
            config.sweep_interval,
            config.sweep_grace,
            config.host_root,
        )
        self.sweeper.start()

    def _start_api(self) -> None:
        config = self.config
        try:
            self.api = KubeApi(configuration(config.kubeconfig))
            api_config = load_api_config(config.kubeconfig)
        except (CniError, Exception) as exc:  # no credentials at all: serve what we can
            logger.error("no Kubernetes API credentials (%s): no caches, no NodeState", exc)
            self.api = None
            return
        api = self.api
        self.caches = Caches(
            pods=WatchCache(
                api, "pods", "/api/v1/pods", field_selector=f"spec.nodeName={config.node_name}"
            ),
            networks=WatchCache(api, "networks", "/apis/kubernetes.com/v1/networks"),
            nads=WatchCache(
                api,
                "network-attachment-definitions",
                "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions",
            ),
            claims=WatchCache(api, "resourceclaims", "/apis/resource.k8s.io/v1/resourceclaims"),
            slices=WatchCache(
                api,
                "resourceslices",
                "/apis/resource.k8s.io/v1/resourceslices",
                field_selector=f"spec.nodeName={config.node_name}",
            ),
        )
        for cache in self.caches.all():
            cache.start()
        self.pool = ClientPool(api_config, self.caches)
        self.handler.pool = self.pool
        self.handler.devices = NodeDevices(
            config.kubelet_pod_resources, self.caches.claims, self.caches.slices
        )
        self.nodestate = NodeStateWriter(api, config.node_name)
        self.nodestate.start()
        if config.sriov_discovery_interval > 0:
            nodestate = self.nodestate
            self.sriov = SriovReporter(
                SriovSettings(config.sriov_environment()),
                lambda pfs: nodestate.update("pfs", pfs),
                config.sriov_discovery_interval,
            )
            self.sriov.start()
            # what the operator's Ready needs to judge a network with the seed's dpdk block
            nodestate.update("dpdkRebinding", config.sriov_dpdk_bind == "allow")
        if config.thin_kubeconfig and os.path.exists(config.token_file):
            self.tokens = TokenRefresher(config, api_config.server)
            self.tokens.start()

    def _start_conf_source(self) -> None:
        config = self.config
        if config.conf_source == "configmap":
            if self.api is None:
                logger.error("--conf-source configmap needs the API; no conf is installed")
                return
            reporter = self.sriov
            self.conf_source = ConfigMapSource(
                self.api,
                config,
                self.installed,
                on_inventory=(lambda: reporter.poke("inventory")) if reporter else None,
            )
        elif config.conf_source == "auto":
            self.conf_source = AutoSource(config, self.installed)
        if self.conf_source is not None:
            self.conf_source.start()

    def _report_plugins(self, plugins: list[dict[str, object]]) -> None:
        if self.nodestate is not None:
            self.nodestate.update("plugins", plugins)

    def _submit_sweep(self, request: Request, outcome: Replier) -> bool:
        return self.dispatcher.submit(Job(request.container_id, "DEL", (request, outcome)))

    def stop(self) -> None:
        """Stop serving; the conf and the shim stay where they are."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        if self.sweeper is not None:
            self.sweeper.stop()
        self.server.stop()
        finished = self.dispatcher.drain(DRAIN_SECONDS)
        if not finished:
            logger.error("stopping with requests still running after %.0fs", DRAIN_SECONDS)
        for part in (self.scanner, self.sriov, self.conf_source, self.nodestate, self.tokens):
            if part is not None:
                part.stop()
        if self.health is not None:
            self.health.stop()
        if self.own_dir:
            shutil.rmtree(self.own_dir, ignore_errors=True)
        logger.info(
            "stopped; %s left in place", os.path.join(self.config.cni_conf_dir, "00-multus.conf")
        )


def main(argv: list[str] | None = None) -> None:
    try:
        command, config = load(argv)
    except ConfigError as exc:
        print(f"multus-node: {exc}", file=sys.stderr)
        sys.exit(2)
    if config.host_root and not os.path.isdir(config.host_root):
        print(f"multus-node: --host-root {config.host_root} is not a directory", file=sys.stderr)
        sys.exit(2)
    logs.setup(config.log_level)
    if command == "uninstall":
        removed = installing.uninstall(config)
        for path in removed:
            print(f"removed {path}")
        print(
            f"uninstalled: {len(removed)} files removed; the node's default network conf "
            "(if any) is in charge again"
        )
        return
    agent = Agent(config)
    done = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %d: stopping", signum)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.start()
    while not done.wait(3600):
        pass
    agent.stop()


if __name__ == "__main__":
    main()
