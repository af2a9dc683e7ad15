"""multus-node's configuration: every flag also read from an environment variable,
parsed once into one typed object that is passed down (no module reads the
environment itself)."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence

from multus_cni.netconf import DEFAULT_CNI_DIR
from multus_cni.shim import DEFAULT_SOCKET_DIR, SOCKET_NAME

SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class ConfigError(Exception):
    """A flag or variable that cannot work; the message names it."""


@dataclasses.dataclass(frozen=True)
class NodeConfig:
    node_name: str
    namespace: str = "kube-system"
    cni_bin_dir: str = "/opt/cni/bin"
    cni_path: tuple[str, ...] = ()  # where delegates are found; default: cni_bin_dir
    cni_conf_dir: str = "/etc/cni/net.d"
    socket_dir: str = DEFAULT_SOCKET_DIR
    cni_cache_dir: str = DEFAULT_CNI_DIR
    conf_source: str = "configmap"  # configmap | auto | none
    mode: str = "thick"  # what `auto` generates: thick | thin
    readiness_indicator_file: str = ""
    host_root: str = ""  # delegates run chrooted here ("" = the daemon sees the host)
    kubeconfig: str = ""  # "" = in-cluster
    metrics_address: str = ""
    metrics_port: int = 9091  # 0: any free port (logged)
    shim_binary: str = "/usr/libexec/multus-py/multus-shim"
    thin_python: str = ""  # install the thin plugin with this interpreter ("" = do not)
    workers: int = 16
    max_queue: int = 256
    sweep_interval: float = 300.0  # 0 = no sweep
    sweep_grace: float = 60.0
    plugin_scan_interval: float = 60.0
    token_file: str = SERVICE_ACCOUNT_TOKEN
    kubeconfig_out: str | None = None  # None = <conf dir>/multus.d/multus.kubeconfig
    token_refresh_interval: float = 30.0
    log_level: str = "info"
    kubelet_pod_resources: str = "/var/lib/kubelet/pod-resources/kubelet.sock"
    own_plugins: tuple[str, ...] = ("multus-sriov",)  # served from the agent's image
    # SR-IOV: discovery and the sriov delegate (multus-sriov) the agent runs
    sysfs_root: str = "/"
    sriov_sim_state: str = ""  # a simulated NIC's VF settings file (tests, demos)
    sriov_devinfo_dir: str = "/var/run/k8s.cni.cncf.io/devinfo/cni"
    sriov_dpdk_bind: str = "deny"  # allow: honour the seed's `dpdk` block (driver rebinding)
    sriov_discovery_interval: float = 60.0  # 0 = no SR-IOV discovery
    sriov_type: str = "host"  # what `"type": "sriov"` runs: host (the plugin dirs') | multus-sriov

    @property
    def delegate_dirs(self) -> tuple[str, ...]:
        return self.cni_path or (self.cni_bin_dir,)

    @property
    def socket_path(self) -> str:
        return os.path.join(self.socket_dir, SOCKET_NAME)

    @property
    def multus_d(self) -> str:
        """Our own files in the conf dir: a subdirectory, since runtimes load every
        .conf, .conflist and .json file of the conf dir itself as a network."""
        return os.path.join(self.cni_conf_dir, "multus.d")

    @property
    def sriov_cache_dir(self) -> str:
        """The sriov delegate's allocation records and locks, under the attachment cache."""
        return os.path.join(self.cni_cache_dir, "sriov")

    @property
    def sriov_inventory(self) -> str:
        return os.path.join(self.multus_d, "sriov-inventory.json")

    def sriov_environment(self) -> dict[str, str]:
        """What the sriov delegate reads from its environment (`multus_sriov.settings`),
        from this agent's configuration: given to every delegate it runs, in place of
        whatever a request says (these decide which files a delegate writes as root)."""
        env = {
            "MULTUS_SYSFS_ROOT": self.sysfs_root,
            "MULTUS_SRIOV_CACHE_DIR": self.sriov_cache_dir,
            "MULTUS_SRIOV_INVENTORY": self.sriov_inventory,
            "MULTUS_SRIOV_DEVINFO_DIR": self.sriov_devinfo_dir,
            "MULTUS_SRIOV_DPDK_BIND": self.sriov_dpdk_bind,
        }
        if self.sriov_sim_state:
            env["MULTUS_SRIOV_SIM_STATE"] = self.sriov_sim_state
        return env

    @property
    def thin_kubeconfig(self) -> str:
        if self.kubeconfig_out is None:
            return os.path.join(self.multus_d, "multus.kubeconfig")
        return self.kubeconfig_out

    @property
    def thin_token(self) -> str:
        """The token the thin kubeconfig reads (`tokenFile`): next to it, wherever it is."""
        return os.path.join(os.path.dirname(self.thin_kubeconfig), "token")


# flag, environment variable, field, kind
_OPTIONS: tuple[tuple[str, str, str, str], ...] = (
    ("--node-name", "MULTUS_NODE_NAME", "node_name", "str"),
    ("--namespace", "MULTUS_NAMESPACE", "namespace", "str"),
    ("--cni-bin-dir", "MULTUS_CNI_BIN_DIR", "cni_bin_dir", "path"),
    ("--cni-path", "MULTUS_CNI_PATH", "cni_path", "paths"),
    ("--cni-conf-dir", "MULTUS_CNI_CONF_DIR", "cni_conf_dir", "path"),
    ("--socket-dir", "MULTUS_SOCKET_DIR", "socket_dir", "path"),
    ("--cni-cache-dir", "MULTUS_CNI_CACHE_DIR", "cni_cache_dir", "path"),
    ("--conf-source", "MULTUS_CONF_SOURCE", "conf_source", "str"),
    ("--mode", "MULTUS_MODE", "mode", "str"),
    (
        "--readiness-indicator-file",
        "MULTUS_READINESS_INDICATOR_FILE",
        "readiness_indicator_file",
        "opt-path",
    ),
    ("--host-root", "MULTUS_HOST_ROOT", "host_root", "opt-path"),
    ("--kubeconfig", "KUBECONFIG", "kubeconfig", "opt-path"),
    ("--metrics-address", "MULTUS_METRICS_ADDRESS", "metrics_address", "str"),
    ("--metrics-port", "MULTUS_METRICS_PORT", "metrics_port", "port"),
    ("--shim-binary", "MULTUS_SHIM_BINARY", "shim_binary", "opt-path"),
    ("--thin-python", "MULTUS_THIN_PYTHON", "thin_python", "opt-path"),
    ("--workers", "MULTUS_WORKERS", "workers", "count"),
    ("--max-queue", "MULTUS_MAX_QUEUE", "max_queue", "count"),
    ("--sweep-interval", "MULTUS_SWEEP_INTERVAL", "sweep_interval", "seconds"),
    ("--sweep-grace", "MULTUS_SWEEP_GRACE", "sweep_grace", "seconds"),
    ("--plugin-scan-interval", "MULTUS_PLUGIN_SCAN_INTERVAL", "plugin_scan_interval", "seconds"),
    ("--token-file", "MULTUS_TOKEN_FILE", "token_file", "opt-path"),
    ("--kubeconfig-out", "MULTUS_KUBECONFIG_OUT", "kubeconfig_out", "opt-path"),
    (
        "--token-refresh-interval",
        "MULTUS_TOKEN_REFRESH_INTERVAL",
        "token_refresh_interval",
        "seconds",
    ),
    ("--log-level", "MULTUS_LOG_LEVEL", "log_level", "str"),
    ("--kubelet-pod-resources", "MULTUS_KUBELET_POD_RESOURCES", "kubelet_pod_resources", "path"),
    ("--own-plugins", "MULTUS_OWN_PLUGINS", "own_plugins", "names"),
    ("--sysfs-root", "MULTUS_SYSFS_ROOT", "sysfs_root", "path"),
    ("--sriov-sim-state", "MULTUS_SRIOV_SIM_STATE", "sriov_sim_state", "opt-path"),
    ("--sriov-devinfo-dir", "MULTUS_SRIOV_DEVINFO_DIR", "sriov_devinfo_dir", "path"),
    ("--sriov-dpdk-bind", "MULTUS_SRIOV_DPDK_BIND", "sriov_dpdk_bind", "str"),
    (
        "--sriov-discovery-interval",
        "MULTUS_SRIOV_DISCOVERY_INTERVAL",
        "sriov_discovery_interval",
        "seconds",
    ),
    ("--sriov-type", "MULTUS_SRIOV_TYPE", "sriov_type", "str"),
)
_CHOICES = {
    "conf_source": ("configmap", "auto", "none"),
    "mode": ("thick", "thin"),
    "log_level": ("debug", "info", "warning", "error"),
    "sriov_dpdk_bind": ("allow", "deny"),
    "sriov_type": ("host", "multus-sriov"),
}


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multus-node",
        description="The multus node agent: conf and binary installation, the thick-mode "
        "server, warm caches, NodeState, metrics. Every flag can also be set by the "
        "environment variable in brackets.",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=("run", "uninstall"),
        help="run (default): serve this node; uninstall: remove our conf, shim and "
        "plugin, leaving the node's default network conf in charge",
    )
    for flag, env, field, _kind in _OPTIONS:
        parser.add_argument(flag, dest=field, default=None, help=f"[{env}]")
    return parser


def _convert(value: str, kind: str, name: str) -> object:
    if kind == "path":
        if not os.path.isabs(value):
            raise ConfigError(f"{name}: {value!r} must be an absolute path")
        return value.rstrip("/") or "/"
    if kind == "opt-path":
        if value and not os.path.isabs(value):
            raise ConfigError(f"{name}: {value!r} must be an absolute path (or empty)")
        return value
    if kind == "names":
        return tuple(n.strip() for n in value.split(",") if n.strip())
    if kind == "paths":
        dirs = tuple(d for d in value.split(":") if d)
        for d in dirs:
            if not os.path.isabs(d):
                raise ConfigError(f"{name}: {d!r} must be an absolute path")
        return dirs
    if kind in ("port", "count"):
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not a whole number") from None
        low, high = (0, 65535) if kind == "port" else (1, 100_000)
        if not low <= number <= high:
            raise ConfigError(f"{name}: {number} is not in [{low}, {high}]")
        return number
    if kind == "seconds":
        try:
            seconds = float(value)
        except ValueError:
            raise ConfigError(f"{name}: {value!r} is not a number of seconds") from None
        if not 0 <= seconds <= 86400:
            raise ConfigError(f"{name}: {seconds:g} is not in [0, 86400] seconds")
        return seconds
    return value


def load(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> tuple[str, NodeConfig]:
    """(command, config) from flags, then environment variables, then defaults."""
    env = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    values: dict[str, object] = {}
    for flag, variable, field, kind in _OPTIONS:
        raw = getattr(args, field)
        name = flag
        if raw is None and env.get(variable) is not None:
            raw, name = env[variable], variable
        if raw is None:
            continue
        value = _convert(raw, kind, name)
        if field in _CHOICES and value not in _CHOICES[field]:
            raise ConfigError(f"{name}: {value!r} is not one of {', '.join(_CHOICES[field])}")
        values[field] = value
    if not values.get("node_name"):
        raise ConfigError("--node-name (MULTUS_NODE_NAME) is required")
    config = NodeConfig(**values)  # type: ignore[arg-type]
    own = {os.path.basename(p) for p in config.own_plugins}
    if config.sriov_type == "multus-sriov" and "multus-sriov" not in own:
        raise ConfigError(
            "--sriov-type multus-sriov needs multus-sriov among --own-plugins "
            "(MULTUS_OWN_PLUGINS), which is where it runs from"
        )
    return str(args.command), config
