"""The sriov delegate's conf: the seed's form and today's sriov-cni fields, checked.

Seed (Multus v2.1 README): `if0` (the PF to take a VF from), `if0name` (the name in the
pod; multus passes it as CNI_IFNAME), `vlan`, `l2enable` (no IPAM), `dpdk`
(`kernel_driver`, `dpdk_driver`, `dpdk_tool`), `ipam`, and `vf` (a fixed VF index).
sriov-cni: `deviceID` (the VF's PCI address; `pciBusID` and `runtimeConfig.deviceID`
are what multus injects), `vlan`, `vlanQoS`, `vlanProto`, `mac` (or `runtimeConfig.mac`),
`spoofchk`, `trust`, `link_state`, `min_tx_rate`, `max_tx_rate`, `ipam`.
As with sriov-cni, a field that is absent leaves that VF setting as it is.
"""

from __future__ import annotations

from multus_cni import cnijson, versions
from multus_cni.errors import InvalidConfig
from multus_rules.names import ifname_problem
from multus_rules.sriov import conf_problems

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_HEX = frozenset("0123456789abcdefABCDEF")


def cni_version(raw: dict[str, Any]) -> str:
    """The version a conf is at: the spec's default where it gives none."""
    return str(raw.get("cniVersion") or versions.DEFAULT_VERSION)


def is_pci_address(value: str) -> bool:
    """`0000:02:00.1` (domain:bus:device.function, hex)."""
    parts = value.split(":")
    if len(parts) != 3 or len(parts[0]) != 4 or len(parts[1]) != 2:
        return False
    dev, _, fn = parts[2].partition(".")
    return len(dev) == 2 and len(fn) == 1 and all(c in _HEX for c in parts[0] + parts[1] + dev + fn)


def is_mac(value: str) -> bool:
    parts = value.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in _HEX for c in p) for p in parts)


class SriovConf:
    __slots__ = (
        "cni_version",
        "device_id",
        "dpdk",
        "if0",
        "ipam",
        "l2enable",
        "name",
        "raw",
        "vf_index",
        "wanted",
    )

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.name = str(raw.get("name") or "")
        self.cni_version = cni_version(raw)
        self.if0: str = ""
        self.device_id: str = ""
        self.vf_index: int | None = None
        self.l2enable = False
        self.dpdk: dict[str, str] | None = None
        self.ipam: dict[str, Any] | None = None
        # VF settings to apply through the PF, in vfsettings' keys.
        self.wanted: dict[str, Any] = {}


def _str(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidConfig(f"{key}: must be a string, not {cnijson.type_name(value)}")
    return value


def _int(raw: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidConfig(f"{key}: must be an integer from {low} to {high}, not {value!r}")
    return value


def _choice(raw: dict[str, Any], key: str, choices: tuple[str, ...]) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or value.lower() not in choices:
        raise InvalidConfig(f"{key}: must be one of {', '.join(choices)}, not {value!r}")
    return value.lower()


def parse(raw: dict[str, Any]) -> SriovConf:
    conf = SriovConf(raw)
    conf.if0 = _str(raw, "if0")
    if conf.if0 and ifname_problem(conf.if0):
        raise InvalidConfig(f"if0: {conf.if0!r} {ifname_problem(conf.if0)}")
    if0name = _str(raw, "if0name")
    if if0name and ifname_problem(if0name):
        raise InvalidConfig(f"if0name: {if0name!r} {ifname_problem(if0name)}")
    runtime = raw.get("runtimeConfig")
    runtime = runtime if isinstance(runtime, dict) else {}
    # multus injects the device plugin's or DRA driver's device three ways; any one will do,
    # and all that are present must agree.
    ids = {}
    for where, value in (
        ("runtimeConfig.deviceID", runtime.get("deviceID")),
        ("deviceID", raw.get("deviceID")),
        ("pciBusID", raw.get("pciBusID")),
    ):
        if value is None or value == "":
            continue
        if not isinstance(value, str) or not is_pci_address(value):
            raise InvalidConfig(f"{where}: {value!r} is not a PCI address such as 0000:02:00.1")
        ids[where] = value.lower()
    if len(set(ids.values())) > 1:
        raise InvalidConfig(
            "deviceID: the conf names different VFs: "
            + ", ".join(f"{k}={v}" for k, v in ids.items())
        )
    conf.device_id = next(iter(ids.values()), "")
    conf.vf_index = _int(raw, "vf", 0, 4095)
    if not conf.if0 and not conf.device_id:
        raise InvalidConfig(
            "deviceID: missing: name the VF by deviceID (its PCI address, usually injected by "
            "multus from the NAD's k8s.v1.cni.cncf.io/resourceName) or the PF by if0"
        )
    l2 = raw.get("l2enable", False)
    if not isinstance(l2, bool):
        raise InvalidConfig(f"l2enable: must be true or false, not {l2!r}")
    conf.l2enable = l2
    dpdk = raw.get("dpdk")
    if dpdk is not None:
        if not isinstance(dpdk, dict):
            raise InvalidConfig("dpdk: must be an object with kernel_driver and dpdk_driver")
        for key in dpdk:
            if key not in ("kernel_driver", "dpdk_driver", "dpdk_tool"):
                raise InvalidConfig(f"dpdk.{key}: unknown field")
        drivers = {k: _str(dpdk, k) for k in ("kernel_driver", "dpdk_driver", "dpdk_tool")}
        for key in ("kernel_driver", "dpdk_driver"):
            if not drivers[key] or "/" in drivers[key] or drivers[key] in (".", ".."):
                raise InvalidConfig(f"dpdk.{key}: must be a driver name, not {drivers[key]!r}")
        conf.dpdk = drivers
    ipam = raw.get("ipam")
    if ipam is not None and ipam != {}:
        if not isinstance(ipam, dict) or not isinstance(ipam.get("type"), str):
            raise InvalidConfig("ipam: must be an object with a type")
        conf.ipam = ipam
    conf.wanted = _vf_settings(raw, runtime)
    problems = conf_problems(raw)  # across fields, once each field's own type is right
    if problems:
        raise InvalidConfig(str(problems[0]))
    return conf


def _vf_settings(raw: dict[str, Any], runtime: dict[str, Any]) -> dict[str, Any]:
    wanted: dict[str, Any] = {}
    vlan = _int(raw, "vlan", 0, 4094)
    qos = _int(raw, "vlanQoS", 0, 7)
    proto = _choice(raw, "vlanProto", ("802.1q", "802.1ad"))
    if vlan is not None:
        wanted["vlan"] = vlan
        wanted["vlanQoS"] = qos or 0
        wanted["vlanProto"] = "802.1ad" if proto == "802.1ad" else "802.1Q"
    mac = runtime.get("mac") or raw.get("mac")
    if mac is not None:
        if not isinstance(mac, str) or not is_mac(mac):
            raise InvalidConfig(f"mac: {mac!r} is not a MAC address such as 02:00:00:00:00:01")
        wanted["mac"] = mac.lower()
    for key, name in (("spoofchk", "spoofchk"), ("trust", "trust")):
        value = _choice(raw, key, ("on", "off"))
        if value is not None:
            wanted[name] = value == "on"
    state = _choice(raw, "link_state", ("auto", "enable", "disable"))
    if state is not None:
        wanted["linkState"] = state
    low = _int(raw, "min_tx_rate", 0, 1 << 31)
    high = _int(raw, "max_tx_rate", 0, 1 << 31)
    if low is not None:
        wanted["minTxRate"] = low
    if high is not None:
        wanted["maxTxRate"] = high
    return wanted
