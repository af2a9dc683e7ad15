"""VF settings (MAC, VLAN, spoof check, trust, link state, rates), set through the PF.

One small interface, two implementations:

- `NetlinkVfSettings`: the kernel, through pyroute2 (`IFLA_VFINFO_LIST` on the PF). It is
  imported only here and only when used: ~135 ms per exec'd call on real hardware.
- `SimVfSettings`: a recording fake for tests and `make demo` (`MULTUS_SRIOV_SIM_STATE`):
  a JSON file `{"<pf>": {"<vf index>": {"vlan": 210, ...}}}`, read-modify-written under
  an flock (each CNI call is a new process; two pods' ADDs may run at once).

Keys (both implementations): `mac`, `vlan`, `vlanQoS`, `vlanProto` (`802.1Q`/`802.1ad`),
`spoofchk`, `trust` (booleans), `linkState` (`auto`/`enable`/`disable`), `minTxRate`,
`maxTxRate` (Mbit/s, 0 = no limit).
"""

from __future__ import annotations

import errno
import os

from multus_cni import cnijson
from multus_cni.fsutil import write_atomic

from .allocation import Lock

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Protocol

    class VfSettings(Protocol):
        def read(self, pf: str) -> dict[int, dict[str, Any]]:
            """Every VF's current settings as the NIC reports them."""

        def apply(self, pf: str, vf: int, settings: dict[str, Any]) -> None:
            """Set the given keys of VF `vf` of `pf`; other keys are left alone."""


KEYS = (
    "mac",
    "vlan",
    "vlanQoS",
    "vlanProto",
    "spoofchk",
    "trust",
    "linkState",
    "minTxRate",
    "maxTxRate",
)
# What a VF reports before anyone configured it (what `ip link show <pf>` prints).
FRESH: dict[str, Any] = {
    "mac": "00:00:00:00:00:00",
    "vlan": 0,
    "vlanQoS": 0,
    "vlanProto": "802.1Q",
    "spoofchk": True,
    "trust": False,
    "linkState": "auto",
    "minTxRate": 0,
    "maxTxRate": 0,
}
LINK_STATES = {"auto": 0, "enable": 1, "disable": 2}
VLAN_PROTOS = {"802.1Q": 0x8100, "802.1ad": 0x88A8}


class VfSettingsError(Exception):
    """The NIC refused or cannot do a VF setting; the message says which and why."""


class SimVfSettings:
    """The recording fake: a JSON file stands in for the NIC."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _locked(self) -> Lock:
        lock = Lock(self.path + ".lock")
        lock.acquire(None)
        return lock

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return {}
        if not data.strip():
            return {}
        try:
            doc = cnijson.loads(data)
        except ValueError as exc:
            raise VfSettingsError(f"simulated NIC state {self.path}: not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise VfSettingsError(f"simulated NIC state {self.path}: not a JSON object")
        return doc

    def read(self, pf: str) -> dict[int, dict[str, Any]]:
        with self._locked():
            state = self._load().get(pf) or {}
        return {int(k): {**FRESH, **v} for k, v in state.items() if isinstance(v, dict)}

    def apply(self, pf: str, vf: int, settings: dict[str, Any]) -> None:
        unknown = sorted(set(settings) - set(KEYS))
        if unknown:
            raise VfSettingsError(f"PF {pf} VF {vf}: unknown VF settings {unknown}")
        with self._locked():
            state = self._load()
            per_pf = state.setdefault(pf, {})
            entry = {**FRESH, **per_pf.get(str(vf), {})}
            entry.update(settings)
            per_pf[str(vf)] = entry
            write_atomic(self.path, (cnijson.dumps(state) + "\n").encode(), mode=0o644)


class NetlinkVfSettings:
    """The kernel's VF settings through the PF netdev (pyroute2, loaded on first use)."""

    def _ipr(self) -> Any:
        from pyroute2 import IPRoute  # ~135 ms: only real hardware pays it

        return IPRoute()

    @staticmethod
    def _index(ipr: Any, pf: str) -> int:
        found = ipr.link_lookup(ifname=pf)
        if not found:
            raise VfSettingsError(f"PF {pf}: no such network device")
        return int(found[0])

    def read(self, pf: str) -> dict[int, dict[str, Any]]:
        with self._ipr() as ipr:
            msg = ipr.get_links(self._index(ipr, pf), ext_mask=1)[0]
        vflist = msg.get_attr("IFLA_VFINFO_LIST")
        found: dict[int, dict[str, Any]] = {}
        if vflist is None:
            return found
        for info in vflist.get_attrs("IFLA_VF_INFO"):
            mac = info.get_attr("IFLA_VF_MAC") or {}
            index = int(mac.get("vf", len(found)))
            entry = dict(FRESH)
            entry["mac"] = _mac(mac.get("mac"))
            vlan = info.get_attr("IFLA_VF_VLAN")
            if vlan:
                entry["vlan"], entry["vlanQoS"] = int(vlan["vlan"]), int(vlan["qos"])
            vlist = info.get_attr("IFLA_VF_VLAN_LIST")
            if vlist:
                for item in vlist.get_attrs("IFLA_VF_VLAN_INFO")[:1]:
                    proto = int(item.get("proto") or 0x8100)
                    entry["vlanProto"] = "802.1ad" if proto == 0x88A8 else "802.1Q"
            for attr, key in (("IFLA_VF_SPOOFCHK", "spoofchk"), ("IFLA_VF_TRUST", "trust")):
                value = info.get_attr(attr)
                if value and int(value[key]) in (0, 1):  # -1 (u32 max): not reported
                    entry[key] = bool(value[key])
            state = info.get_attr("IFLA_VF_LINK_STATE")
            if state:
                names = {v: k for k, v in LINK_STATES.items()}
                entry["linkState"] = names.get(int(state["link_state"]), "auto")
            rate = info.get_attr("IFLA_VF_RATE")
            if rate:
                entry["minTxRate"] = int(rate["min_tx_rate"])
                entry["maxTxRate"] = int(rate["max_tx_rate"])
            found[index] = entry
        return found

    def apply(self, pf: str, vf: int, settings: dict[str, Any]) -> None:
        spec: dict[str, Any] = {"vf": vf}
        if "mac" in settings:
            spec["mac"] = settings["mac"]
        if {"vlan", "vlanQoS", "vlanProto"} & set(settings):
            spec["vlan"] = [
                {
                    "vlan": int(settings.get("vlan", 0)),
                    "qos": int(settings.get("vlanQoS", 0)),
                    "proto": VLAN_PROTOS[settings.get("vlanProto", "802.1Q")],
                }
            ]
        if "spoofchk" in settings:
            spec["spoofchk"] = int(bool(settings["spoofchk"]))
        if "trust" in settings:
            spec["trust"] = int(bool(settings["trust"]))
        if "linkState" in settings:
            spec["link_state"] = LINK_STATES[settings["linkState"]]
        if {"minTxRate", "maxTxRate"} & set(settings):
            spec["rate"] = {
                "min_tx_rate": int(settings.get("minTxRate", 0)),
                "max_tx_rate": int(settings.get("maxTxRate", 0)),
            }
        from pyroute2.netlink.exceptions import NetlinkError

        with self._ipr() as ipr:
            index = self._index(ipr, pf)
            try:
                ipr.link("set", index=index, vf=spec)
            except NetlinkError as exc:
                asked = ", ".join(f"{k}={v}" for k, v in settings.items())
                if exc.code == errno.EOPNOTSUPP:
                    raise VfSettingsError(
                        f"PF {pf} does not support VF settings (EOPNOTSUPP) while setting VF "
                        f"{vf} {asked}: it is not an SR-IOV PF with VFs, or its driver cannot "
                        "set these"
                    ) from None
                raise VfSettingsError(
                    f"PF {pf}: setting VF {vf} {asked} failed: {os.strerror(exc.code)}"
                ) from None


def _mac(raw: Any) -> str:
    if isinstance(raw, str):
        return raw.lower()
    if isinstance(raw, list | tuple):
        return ":".join(f"{int(b):02x}" for b in list(raw)[:6])
    return "00:00:00:00:00:00"


def for_environment(sim_state: str) -> VfSettings:
    """The simulated NIC when `MULTUS_SRIOV_SIM_STATE` names a file, else the kernel."""
    return SimVfSettings(sim_state) if sim_state else NetlinkVfSettings()
