"""The multus network configuration (stdin) and the delegate networks it names.

Parsing is strict and total: any input gives a `MultusConf` or an `InvalidConfig` /
`DecodeFailure` that names the field; nothing here runs or writes anything.
"""

from __future__ import annotations

import os

from multus_rules import multusconf
from multus_rules.confs import MAX_CONF_BYTES as MAX_CONF_BYTES  # the plugin reads it here
from multus_rules.confs import check_network, masters_finding
from multus_rules.findings import Finding, first_error
from multus_rules.multusconf import LOG_LEVELS
from multus_rules.versions import version_problem

from . import cnijson, versions
from .errors import CniError, DecodeFailure, InvalidConfig, IoFailure, refusal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_CNI_DIR = "/var/lib/cni/multus"
DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_BIN_DIR = "/opt/cni/bin"
DEFAULT_DELEGATE_TIMEOUT = multusconf.TIMEOUTS["delegateTimeout"][0]
DEFAULT_READINESS_TIMEOUT = multusconf.TIMEOUTS["readinessTimeout"][0]
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


def _string(raw: dict[str, Any], key: str) -> str:
    """A string key the rulebook has checked: "" when absent or null."""
    value = raw.get(key)
    return value if isinstance(value, str) else ""


def check_version(version: Any, where: str) -> str:
    """A conf's `cniVersion` by the rulebook's rule (for our plugins that read a conf)."""
    problem = version_problem(version)
    if problem is not None:
        raise refusal(Finding(f"{where}cniVersion", problem[1], code=problem[0]))
    assert isinstance(version, str)
    return version


def parse_delegate(
    raw: Any, where: str, default_version: str, default_name: str
) -> DelegateNetwork:
    """A delegate conf or conflist (inline or loaded from a file) -> DelegateNetwork,
    held to the rulebook's `check_network` first.

    `where` starts every message: a field path ending in `.` (`delegates[0].`) or a
    context ending in `: ` (`/etc/cni/net.d/10-x.conf: `)."""
    error = first_error(
        check_network(raw, default_version=default_version, default_name=default_name)
    )
    if error is not None:
        raise refusal(error, where)
    return _checked_delegate(raw, where, default_version, default_name)


def _checked_delegate(
    raw: dict[str, Any], where: str, default_version: str, default_name: str
) -> DelegateNetwork:
    """`parse_delegate` for a conf `check_network` has already passed."""
    is_list = "plugins" in raw
    return DelegateNetwork(
        _string(raw, "name") or default_name,
        raw.get("cniVersion", default_version),
        [strip_per_call(p) for p in (raw["plugins"] if is_list else [raw])],
        is_list=is_list,
        source=where.rstrip("."),
        master=raw.get("masterplugin", False),
        requested_ifname=_string(raw, "if0name"),
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
    """The conf's own keys, held to the rulebook's `check_top_level`."""
    error = first_error(multusconf.check_top_level(raw))
    if error is not None:
        raise refusal(error)
    conf = MultusConf(raw)
    conf.cni_version = raw.get("cniVersion", versions.DEFAULT_VERSION)
    conf.name = _string(raw, "name")
    conf.cni_dir = _string(raw, "cniDir") or DEFAULT_CNI_DIR
    conf.conf_dir = _string(raw, "confDir") or DEFAULT_CONF_DIR
    conf.bin_dir = _string(raw, "binDir") or DEFAULT_BIN_DIR
    conf.readiness_file = _string(raw, "readinessindicatorfile")
    conf.log_file = _string(raw, "logFile")
    conf.log_level = (_string(raw, "logLevel") or "error").lower()
    timeouts = multusconf.TIMEOUTS
    conf.delegate_timeout = multusconf.seconds(
        raw, "delegateTimeout", *timeouts["delegateTimeout"]
    )[0]
    conf.readiness_timeout = multusconf.seconds(
        raw, "readinessTimeout", *timeouts["readinessTimeout"]
    )[0]
    conf.kubeconfig = _string(raw, "kubeconfig")
    conf.k8s = bool(conf.kubeconfig) or in_cluster_available()
    return conf


def resolve_delegates(conf: MultusConf) -> list[DelegateNetwork]:
    """The conf's delegate networks (conf files read now); once per conf."""
    if not conf.resolved:
        conf.delegates = _resolve_delegates(conf.raw, conf)
        conf.resolved = True
    return conf.delegates


def _resolve_delegates(raw: dict[str, Any], conf: MultusConf) -> list[DelegateNetwork]:
    """The conf's networks: the rulebook's `check_networks` first, then the files."""
    error = first_error(multusconf.check_networks(raw, k8s=conf.k8s))
    if error is not None:
        raise refusal(error)
    inline = raw.get("delegates")
    cluster = raw.get("clusterNetwork")
    delegates: list[DelegateNetwork] = []
    cluster_per_pod = False
    if cluster:
        path = _in_conf_dir(cluster, conf)
        # In Kubernetes mode a name that is no file names a NetworkAttachmentDefinition.
        if not conf.k8s or os.path.exists(path):
            delegates.append(load_conf_file(path, conf.cni_version))
        else:
            cluster_per_pod = True
    elif inline is not None:
        # check_networks has held each to check_network, with these same defaults.
        for index, item in enumerate(inline):
            delegates.append(
                _checked_delegate(
                    item, f"delegates[{index}].", conf.cni_version, f"{conf.name}-{index}"
                )
            )
    for path in raw.get("defaultNetworks", []):
        if conf.k8s and not os.path.exists(_in_conf_dir(path, conf)):
            continue  # a NetworkAttachmentDefinition, resolved per pod
        delegates.append(load_conf_file(_in_conf_dir(path, conf), conf.cni_version))
    if not delegates or cluster_per_pod:
        # Kubernetes mode: the pod's annotations name its networks, or the cluster
        # network is read per pod: no defaultNetworks file may stand in for it as master.
        return delegates
    problem = masters_finding([(d.source, d.master) for d in delegates])
    if problem is not None:
        raise refusal(problem)
    conf.seed_style = any(d.master for d in delegates)
    if not conf.seed_style:
        delegates[0].master = True
    return delegates


def _in_conf_dir(path: str, conf: MultusConf) -> str:
    return path if os.path.isabs(path) else os.path.join(conf.conf_dir, path)
