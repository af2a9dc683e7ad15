"""The multus network configuration (stdin) and the delegate networks it names.

Parsing is strict and total: any input gives a `MultusConf` or an `InvalidConfig` /
`DecodeFailure` that names the field; nothing here runs or writes anything.
"""

from __future__ import annotations

import os

from . import cnijson, versions
from .environ import is_safe_name
from .errors import CniError, DecodeFailure, IncompatibleVersion, InvalidConfig, IoFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_CONF_BYTES = 1 << 20
LOG_LEVELS = ("debug", "verbose", "error", "panic")
DEFAULT_CNI_DIR = "/var/lib/cni/multus"
DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_BIN_DIR = "/opt/cni/bin"
DEFAULT_DELEGATE_TIMEOUT = 60.0
DEFAULT_READINESS_TIMEOUT = 30.0
CONF_EXTENSIONS = (".conf", ".conflist", ".json")
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"


def in_cluster_available() -> bool:
    """Inside a pod with a service account: Kubernetes mode without a kubeconfig."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(SERVICE_ACCOUNT_TOKEN)


class DelegateNetwork:
    """One delegate: a single plugin conf or a conflist, run as one attachment.

    `plugins` are the plugin confs as the delegate will receive them, minus the
    per-call keys (`name`, `cniVersion`, `prevResult`, `runtimeConfig`).
    """

    __slots__ = (
        "cni_version",
        "is_list",
        "master",
        "name",
        "plugins",
        "requested_ifname",
        "runtime_config",
        "source",
    )

    def __init__(
        self,
        name: str,
        cni_version: str,
        plugins: list[dict[str, Any]],
        *,
        is_list: bool,
        source: str,
        master: bool = False,
        requested_ifname: str = "",
    ) -> None:
        self.name = name
        self.cni_version = cni_version
        self.plugins = plugins
        self.is_list = is_list
        self.source = source
        self.master = master
        self.requested_ifname = requested_ifname
        # Capability args for this attachment alone (e.g. NPWG `ips`, `mac`); the
        # master's come from the runtime's `runtimeConfig` instead.
        self.runtime_config: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The network as it would be written in a conf file (for the cache)."""
        if self.is_list:
            return {"cniVersion": self.cni_version, "name": self.name, "plugins": self.plugins}
        return {**self.plugins[0], "cniVersion": self.cni_version, "name": self.name}


class MultusConf:
    """The parsed `"type": "multus"` configuration."""

    __slots__ = (
        "bin_dir",
        "cni_dir",
        "cni_version",
        "conf_dir",
        "delegate_timeout",
        "delegates",
        "k8s",
        "kubeconfig",
        "log_file",
        "log_level",
        "name",
        "raw",
        "readiness_file",
        "readiness_timeout",
        "refusal",
        "resolved",
        "seed_style",
    )

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.name: str = ""
        self.cni_version: str = versions.DEFAULT_VERSION
        self.cni_dir = DEFAULT_CNI_DIR
        self.conf_dir = DEFAULT_CONF_DIR
        self.bin_dir = DEFAULT_BIN_DIR
        self.readiness_file = ""
        self.readiness_timeout = DEFAULT_READINESS_TIMEOUT
        self.delegate_timeout = DEFAULT_DELEGATE_TIMEOUT
        self.log_file = ""
        self.log_level = "error"
        self.delegates: list[DelegateNetwork] = []
        self.seed_style = False
        # Kubernetes mode (a kubeconfig or in-cluster credentials): pods named in
        # CNI_ARGS get their networks from the API (multus_cni.k8s).
        self.kubeconfig = ""
        self.k8s = False
        # `delegates` read (files included): `resolve_delegates` does it once, when needed.
        self.resolved = False
        # Why ADD would refuse this conf; set only by `lenient_conf` (DEL).
        self.refusal = ""


def decode(data: bytes) -> dict[str, Any]:
    """stdin bytes -> a JSON object, refusing oversized, deep or non-object input.

    Callers read at most MAX_CONF_BYTES + 1 bytes, so a longer input is only known to be
    longer, not how long."""
    if not data.strip():
        raise DecodeFailure("network configuration on stdin is empty")
    if len(data) > MAX_CONF_BYTES:
        raise DecodeFailure(f"network configuration on stdin is larger than {MAX_CONF_BYTES} bytes")
    try:
        doc = cnijson.loads(data)
    except cnijson.TooDeep as exc:
        raise DecodeFailure(f"network configuration on stdin {exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeFailure(f"network configuration on stdin is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeFailure(
            f"network configuration on stdin must be a JSON object, not {cnijson.type_name(doc)}"
        )
    return doc


def _string(raw: dict[str, Any], key: str, where: str, default: str = "") -> str:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise InvalidConfig(f"{where}{key}: must be a string, not {cnijson.type_name(value)}")
    return value


def _seconds(raw: dict[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise InvalidConfig(f"{key}: must be a number of seconds in (0, 3600], not {value!r}")
    return float(value)


def check_version(version: Any, where: str) -> str:
    if not isinstance(version, str):
        raise InvalidConfig(f"{where}cniVersion: must be a string, not {version!r}")
    if not versions.is_supported(version):
        raise IncompatibleVersion(
            f"{where}cniVersion: {version!r} is not supported "
            f"(supported: {', '.join(versions.SUPPORTED_VERSIONS)})"
        )
    return version


def check_plugin_type(value: Any, where: str) -> str:
    """A `type` must be a bare executable name: no path, no traversal, no NUL."""
    if not isinstance(value, str) or not value:
        raise InvalidConfig(f"{where}type: must be a non-empty plugin name, not {value!r}")
    if value in (".", "..") or any(c in value for c in "/\\\x00") or value != value.strip():
        raise InvalidConfig(
            f"{where}type: {value!r} is not a plain plugin name (no path, '/', '\\', NUL or '..')"
        )
    return value


def _check_plugin(plugin: Any, where: str) -> dict[str, Any]:
    if not isinstance(plugin, dict):
        raise InvalidConfig(
            f"{where.rstrip('.')}: must be a JSON object, not {cnijson.type_name(plugin)}"
        )
    check_plugin_type(plugin.get("type"), where)
    ipam = plugin.get("ipam")
    if ipam is not None:
        if not isinstance(ipam, dict):
            raise InvalidConfig(f"{where}ipam: must be a JSON object")
        if "type" in ipam:
            check_plugin_type(ipam["type"], f"{where}ipam.")
    return plugin


def parse_delegate(
    raw: Any, where: str, default_version: str, default_name: str
) -> DelegateNetwork:
    """A delegate conf or conflist (inline or loaded from a file) -> DelegateNetwork."""
    if not isinstance(raw, dict):
        raise InvalidConfig(
            f"{where.rstrip('.')}: must be a JSON object, not {cnijson.type_name(raw)}"
        )
    version = check_version(raw.get("cniVersion", default_version), where)
    name = _string(raw, "name", where) or default_name
    if not is_safe_name(name):
        raise InvalidConfig(f"{where}name: {name!r} must match [A-Za-z0-9][A-Za-z0-9_.-]*")
    master = raw.get("masterplugin", False)
    if not isinstance(master, bool):
        raise InvalidConfig(f"{where}masterplugin: must be true or false, not {master!r}")
    requested = _string(raw, "if0name", where)
    if "plugins" in raw:
        plugins = raw["plugins"]
        if not isinstance(plugins, list) or not plugins:
            raise InvalidConfig(f"{where}plugins: must be a non-empty list of plugin confs")
        checked = [
            strip_per_call(_check_plugin(p, f"{where}plugins[{i}].")) for i, p in enumerate(plugins)
        ]
        return DelegateNetwork(
            name,
            version,
            checked,
            is_list=True,
            source=where.rstrip("."),
            master=master,
            requested_ifname=requested,
        )
    plugin = strip_per_call(_check_plugin(raw, where))
    return DelegateNetwork(
        name,
        version,
        [plugin],
        is_list=False,
        source=where.rstrip("."),
        master=master,
        requested_ifname=requested,
    )


def strip_per_call(plugin: dict[str, Any]) -> dict[str, Any]:
    """A plugin conf without the keys each call sets itself."""
    return {
        k: v
        for k, v in plugin.items()
        if k not in ("name", "cniVersion", "prevResult", "runtimeConfig")
    }


def load_conf_file(path: str, default_version: str) -> DelegateNetwork:
    """A delegate from a conf file, or from the first conf file of a directory
    (lexical order, as libcni picks; a conflist wins over a conf of the same stem)."""
    if os.path.isdir(path):
        try:
            names = sorted(
                n for n in os.listdir(path) if n.endswith(CONF_EXTENSIONS) and not n.startswith(".")
            )
        except OSError as exc:
            raise IoFailure(f"{path}: cannot list conf directory: {exc.strerror}") from None
        if not names:
            raise InvalidConfig(f"{path}: no .conf, .conflist or .json file in this directory")
        lists = [n for n in names if n.endswith(".conflist")]
        path = os.path.join(
            path, names[0] if not lists or names[0] in lists else _prefer_list(names)
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONF_BYTES + 1)
    except OSError as exc:
        raise IoFailure(f"{path}: cannot read delegate conf: {exc.strerror}") from None
    try:
        doc = decode(data)
    except DecodeFailure as exc:
        raise InvalidConfig(
            f"{path}: {exc.msg.replace('network configuration on stdin', 'file')}"
        ) from None
    return parse_delegate(
        doc, f"{path}: ", default_version, os.path.splitext(os.path.basename(path))[0]
    )


def _prefer_list(names: list[str]) -> str:
    first_stem = os.path.splitext(names[0])[0]
    for name in names:
        if name == first_stem + ".conflist":
            return name
    return names[0]


def parse_conf(data: bytes, resolve: bool = True) -> MultusConf:
    """stdin -> MultusConf; with `resolve`, its delegates too (files read, masters
    checked; `resolve_delegates` does it later otherwise)."""
    conf = _top_level(decode(data))
    if resolve:
        resolve_delegates(conf)
    return conf


def lenient_conf(data: bytes) -> MultusConf:
    """For DEL: the conf as far as DEL can use it, even one ADD would refuse (then
    `refusal` says why). A record is found through `cniDir`, and DEL must work from it
    whatever the conf says now; an unusable `cniDir` means the default one."""
    try:
        return parse_conf(data, resolve=False)
    except CniError as exc:
        try:
            raw = decode(data)
        except CniError:
            raw = {}
        conf = MultusConf(raw)
        conf.refusal = exc.msg
        for key, attr in (("cniDir", "cni_dir"), ("binDir", "bin_dir"), ("logFile", "log_file")):
            value = raw.get(key)
            if isinstance(value, str) and os.path.isabs(value) and "\x00" not in value:
                setattr(conf, attr, value)
        level = raw.get("logLevel")
        if isinstance(level, str) and level.lower() in LOG_LEVELS:
            conf.log_level = level.lower()
        return conf


def _top_level(raw: dict[str, Any]) -> MultusConf:
    conf = MultusConf(raw)
    conf.cni_version = check_version(raw.get("cniVersion", versions.DEFAULT_VERSION), "")
    conf.name = _string(raw, "name", "")
    if not conf.name:
        raise InvalidConfig("name: missing; the multus network needs a name")
    if not is_safe_name(conf.name):
        raise InvalidConfig(f"name: {conf.name!r} must match [A-Za-z0-9][A-Za-z0-9_.-]*")
    for key in ("cniDir", "confDir", "binDir", "readinessindicatorfile", "logFile", "kubeconfig"):
        value = _string(raw, key, "")
        if value and not os.path.isabs(value):
            raise InvalidConfig(f"{key}: {value!r} must be an absolute path")
    conf.cni_dir = _string(raw, "cniDir", "") or DEFAULT_CNI_DIR
    conf.conf_dir = _string(raw, "confDir", "") or DEFAULT_CONF_DIR
    conf.bin_dir = _string(raw, "binDir", "") or DEFAULT_BIN_DIR
    conf.readiness_file = _string(raw, "readinessindicatorfile", "")
    conf.log_file = _string(raw, "logFile", "")
    conf.log_level = (_string(raw, "logLevel", "") or "error").lower()
    if conf.log_level not in LOG_LEVELS:
        raise InvalidConfig(f"logLevel: {conf.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
    conf.delegate_timeout = _seconds(raw, "delegateTimeout", DEFAULT_DELEGATE_TIMEOUT)
    conf.readiness_timeout = _seconds(raw, "readinessTimeout", DEFAULT_READINESS_TIMEOUT)
    conf.kubeconfig = _string(raw, "kubeconfig", "")
    conf.k8s = bool(conf.kubeconfig) or in_cluster_available()
    return conf


def resolve_delegates(conf: MultusConf) -> list[DelegateNetwork]:
    """The conf's delegate networks (conf files read now); once per conf."""
    if not conf.resolved:
        conf.delegates = _resolve_delegates(conf.raw, conf)
        conf.resolved = True
    return conf.delegates


def _resolve_delegates(raw: dict[str, Any], conf: MultusConf) -> list[DelegateNetwork]:
    inline = raw.get("delegates")
    cluster = raw.get("clusterNetwork")
    defaults = raw.get("defaultNetworks", [])
    if inline is not None and cluster:
        raise InvalidConfig("delegates and clusterNetwork: give one of them, not both")
    delegates: list[DelegateNetwork] = []
    cluster_per_pod = False
    if cluster:
        if not isinstance(cluster, str):
            raise InvalidConfig("clusterNetwork: must be a conf file or directory path")
        path = _in_conf_dir(cluster, conf)
        # In Kubernetes mode a name that is no file names a NetworkAttachmentDefinition.
        if not conf.k8s or os.path.exists(path):
            delegates.append(load_conf_file(path, conf.cni_version))
        else:
            cluster_per_pod = True
    elif inline is not None:
        if not isinstance(inline, list):
            raise InvalidConfig("delegates: must be a list of plugin confs or conflists")
        for index, item in enumerate(inline):
            delegates.append(
                parse_delegate(
                    item, f"delegates[{index}].", conf.cni_version, f"{conf.name}-{index}"
                )
            )
    if not isinstance(defaults, list) or not all(isinstance(d, str) for d in defaults):
        raise InvalidConfig("defaultNetworks: must be a list of conf file or directory paths")
    for path in defaults:
        if conf.k8s and not os.path.exists(_in_conf_dir(path, conf)):
            continue  # a NetworkAttachmentDefinition, resolved per pod
        delegates.append(load_conf_file(_in_conf_dir(path, conf), conf.cni_version))
    if (not delegates and conf.k8s) or cluster_per_pod:
        # The pod's annotations name its networks, or the cluster network is read per
        # pod: no defaultNetworks file may stand in for it as the master.
        return delegates
    if not delegates:
        raise InvalidConfig("delegates: at least one delegate (or clusterNetwork) is required")
    masters = [d for d in delegates if d.master]
    if len(masters) > 1:
        raise InvalidConfig(
            "masterplugin: exactly one delegate may be the master, found "
            + ", ".join(d.source for d in masters)
        )
    conf.seed_style = bool(masters)
    if not masters:
        delegates[0].master = True
    return delegates


def _in_conf_dir(path: str, conf: MultusConf) -> str:
    return path if os.path.isabs(path) else os.path.join(conf.conf_dir, path)
