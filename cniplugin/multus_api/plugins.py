"""Models of the delegate plugins' confs we know, and the check of one plugin conf.

Keys common to every CNI plugin conf live on `PluginConf`; its `type`, `name`,
`cniVersion` and `if0name` are the rulebook's (`multus_api.rules`). Everything else
here is the delegate plugin's to judge when it runs: the operator reports it as a
warning, since multus itself attaches the network and hands the delegate its conf.
A known plugin's unknown keys are reported (sriov's two generations of fields are easy
to mix up), except for plugins with dozens of tuning keys (calico, cilium).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from multus_rules.names import PLUGIN_NAME_PATTERN, plugin_type_problem
from multus_rules.sriov import conf_problems as sriov_conf_problems

from .ipam import Dns, check_ipam
from .problems import Problem, Severity, from_validation_error, join_path
from .rules import CniVersion, InterfaceName, NetworkName, PluginName

__all__ = ["PLUGIN_MODELS", "PLUGIN_NAME_PATTERN", "check_plugin_conf", "check_plugin_name"]
# An MTU of 0 is the plugins' "not set": the link's own (bridge, macvlan, ipvlan, ptp).
Mtu = Annotated[int, Field(ge=0, le=65535)]
# Keys every plugin may receive: from the spec, from runtimes, and from multus itself.
COMMON_KEYS = frozenset(
    {
        "cniVersion",
        "name",
        "type",
        "ipam",
        "dns",
        "args",
        "capabilities",
        "runtimeConfig",
        "prevResult",
        "masterplugin",
        "if0name",
        "cniVersions",
        "disableCheck",
        "disableGC",
    }
)


class PluginConf(BaseModel):
    """Keys any plugin conf may carry (CNI spec) plus the seed's `masterplugin`.

    Strict types: the plugins (Go's encoding/json) refuse "1500" for an int, 1 or
    "true" for a bool and 1500.0 for an int, so we must not coerce them silently.
    """

    model_config = ConfigDict(extra="allow", strict=True)
    strict_keys: ClassVar[bool] = False
    warn_unknown: ClassVar[bool] = True

    cniVersion: CniVersion | None = None
    name: NetworkName | None = None
    type: PluginName | None = None
    ipam: dict[str, Any] | None = None
    dns: Dns | None = None
    args: dict[str, Any] | None = None
    capabilities: dict[str, bool] | None = None
    runtimeConfig: dict[str, Any] | None = None
    masterplugin: bool | None = Field(
        default=None, description="Seed multus: this delegate is the pod's primary network."
    )
    if0name: InterfaceName | None = Field(
        default=None, description="Seed multus: the interface name this network asks for."
    )


class BridgeConf(PluginConf):
    bridge: str | None = Field(default=None, max_length=15)
    isGateway: bool | None = None
    isDefaultGateway: bool | None = None
    forceAddress: bool | None = None
    ipMasq: bool | None = None
    ipMasqBackend: str | None = None
    mtu: Mtu | None = None
    hairpinMode: bool | None = None
    promiscMode: bool | None = None
    vlan: int | None = Field(default=None, ge=0, le=4094)
    vlanTrunk: list[dict[str, int]] | None = None
    preserveDefaultVlan: bool | None = None
    enabledad: bool | None = None
    macspoofchk: bool | None = None
    disableContainerInterface: bool | None = None
    portIsolation: bool | None = None


class MacvlanConf(PluginConf):
    master: str | None = Field(default=None, max_length=15)
    mode: Literal["bridge", "private", "vepa", "passthru"] | None = None
    mtu: Mtu | None = None
    linkInContainer: bool | None = None


class IpvlanConf(PluginConf):
    master: str | None = Field(default=None, max_length=15)
    mode: Literal["l2", "l3", "l3s"] | None = None
    mtu: Mtu | None = None
    linkInContainer: bool | None = None


class PtpConf(PluginConf):
    ipMasq: bool | None = None
    ipMasqBackend: str | None = None
    mtu: Mtu | None = None


class HostDeviceConf(PluginConf):
    device: str | None = None
    hwaddr: str | None = None
    kernelpath: str | None = None
    pciBusID: str | None = None


class SriovDpdk(BaseModel):
    """The seed's DPDK section: which drivers to bind the VF to."""

    model_config = ConfigDict(extra="forbid", strict=True)
    kernel_driver: str | None = None
    dpdk_driver: str | None = None
    dpdk_tool: str | None = None


_MAC = r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$"


class SriovConf(PluginConf):
    """SR-IOV: the seed form (`if0`, `if0name`, `vlan`, `l2enable`, `dpdk`) and today's.

    Today's form names the VF by `deviceID` (its PCI address, usually injected by the
    device plugin) and sets VF properties (`vlanQoS`, `mac`, `spoofchk`, `trust`,
    `link_state`, rates).
    """

    model_config = ConfigDict(extra="forbid")
    strict_keys: ClassVar[bool] = True

    if0: str | None = Field(default=None, description="Seed: the PF netdev to take a VF from.")
    vf: int | None = Field(default=None, ge=0, description="Seed: a fixed VF index.")
    l2enable: bool | None = Field(default=None, description="Seed: no IPAM, layer 2 only.")
    dpdk: SriovDpdk | None = None
    deviceID: str | None = Field(default=None, description="PCI address of the VF.")
    vlan: int | None = Field(default=None, ge=0, le=4094)  # 4095 is reserved (sriov-cni)
    vlanQoS: int | None = Field(default=None, ge=0, le=7)
    vlanProto: Literal["802.1q", "802.1Q", "802.1ad", "802.1AD"] | None = None
    mac: str | None = Field(default=None, pattern=_MAC)
    spoofchk: Literal["on", "off"] | None = None
    trust: Literal["on", "off"] | None = None
    link_state: Literal["auto", "enable", "disable"] | None = None
    min_tx_rate: int | None = Field(default=None, ge=0)
    max_tx_rate: int | None = Field(default=None, ge=0)
    logLevel: str | None = None
    logFile: str | None = None
    # Keys the spec and runtimes add; declared so that `extra="forbid"` allows them.
    prevResult: dict[str, Any] | None = None
    cniVersions: list[str] | None = None
    disableCheck: bool | None = None
    disableGC: bool | None = None


class FlannelConf(PluginConf):
    subnetFile: str | None = None
    dataDir: str | None = None
    delegate: dict[str, Any] | None = None


class CalicoConf(PluginConf):
    warn_unknown: ClassVar[bool] = False  # calico has dozens of tuning keys

    etcd_endpoints: str | None = None
    datastore_type: str | None = None
    log_level: str | None = None
    nodename: str | None = None
    mtu: Mtu | None = None
    policy: dict[str, Any] | None = None
    kubernetes: dict[str, Any] | None = None


class WeaveNetConf(PluginConf):
    hairpinMode: bool | None = None


class CiliumConf(PluginConf):
    warn_unknown: ClassVar[bool] = False

    enable_debug: bool | None = Field(default=None, alias="enable-debug")
    log_file: str | None = Field(default=None, alias="log-file")


class TuningConf(PluginConf):
    sysctl: dict[str, str] | None = None
    mac: str | None = Field(default=None, pattern=_MAC)
    promisc: bool | None = None
    allmulti: bool | None = None
    mtu: Mtu | None = None
    txQLen: int | None = Field(default=None, ge=0)


class BandwidthConf(PluginConf):
    ingressRate: int | None = Field(default=None, ge=0)
    ingressBurst: int | None = Field(default=None, ge=0)
    egressRate: int | None = Field(default=None, ge=0)
    egressBurst: int | None = Field(default=None, ge=0)


class PortmapConf(PluginConf):
    snat: bool | None = None
    markMasqBit: int | None = Field(default=None, ge=0, le=31)
    externalSetMarkChain: str | None = None
    conditionsV4: list[str] | None = None
    conditionsV6: list[str] | None = None


PLUGIN_MODELS: dict[str, type[PluginConf]] = {
    "bridge": BridgeConf,
    "macvlan": MacvlanConf,
    "ipvlan": IpvlanConf,
    "ptp": PtpConf,
    "host-device": HostDeviceConf,
    "sriov": SriovConf,
    "multus-sriov": SriovConf,  # ours under the name that never collides (README: SR-IOV)
    "flannel": FlannelConf,
    "calico": CalicoConf,
    "weave-net": WeaveNetConf,
    "cilium-cni": CiliumConf,
    "cilium": CiliumConf,
    "tuning": TuningConf,
    "bandwidth": BandwidthConf,
    "portmap": PortmapConf,
}


def check_plugin_name(value: Any, path: str) -> list[Problem]:
    """`type` must name an executable in the CNI bin dir (the rulebook's rule)."""
    why = plugin_type_problem(value)
    return [Problem(path, why)] if why else []


def check_plugin_conf(raw: Any, base: str) -> list[Problem]:
    """Problems of one plugin conf (its `type` included) as its plugin would see them."""
    if not isinstance(raw, dict):
        return [Problem(base, "must be a JSON object")]
    kind = raw.get("type")
    found = check_plugin_name(kind, join_path(base, "type"))
    if found:
        return found
    assert isinstance(kind, str)
    model = PLUGIN_MODELS.get(kind)
    if model is None:
        found = [
            Problem(
                join_path(base, "type"),
                f"unknown plugin {kind!r}: not checked",
                Severity.WARNING,
            )
        ]
        if "ipam" in raw:
            found += check_ipam(raw["ipam"], join_path(base, "ipam"))
        return found
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        return from_validation_error(exc, base, unknown_field=f"unknown {kind} field")
    found = []
    if model.warn_unknown and parsed.model_extra:
        for key in sorted(parsed.model_extra):
            if key not in COMMON_KEYS:
                found.append(
                    Problem(join_path(base, key), f"unknown {kind} field", Severity.WARNING)
                )
    if parsed.ipam is not None:
        found += check_ipam(parsed.ipam, join_path(base, "ipam"))
    if isinstance(parsed, SriovConf):
        found += _check_sriov(raw, base)
    if isinstance(parsed, FlannelConf) and parsed.delegate and "type" in parsed.delegate:
        found += check_plugin_name(parsed.delegate["type"], join_path(base, "delegate.type"))
    return found


def _check_sriov(raw: dict[str, Any], base: str) -> list[Problem]:
    """The delegate's own rules across fields (`multus_rules.sriov`): Invalid exactly
    when our sriov delegate refuses the conf before touching a VF."""
    return [Problem(join_path(base, f.path), f.message) for f in sriov_conf_problems(raw)]
