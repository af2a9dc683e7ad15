"""CNI results converted between spec versions (0.3.0 ... 1.1.0), both ways.

The shapes differ little: 0.3.x/0.4.0 tag each IP with `version` ("4"/"6"); 1.0.0
drops it; 1.1.0 adds interface `mtu`/`socketPath`/`pciID` and route
`mtu`/`advmss`/`priority`/`table`/`scope`, which older versions cannot carry.
"""

from __future__ import annotations

from . import versions
from .errors import IncompatibleVersion

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_IFACE_11_ONLY = ("mtu", "socketPath", "pciID")
_ROUTE_11_ONLY = ("mtu", "advmss", "priority", "table", "scope")


def convert(result: dict[str, Any], to_version: str) -> dict[str, Any]:
    """A copy of `result` in the shape of `to_version` (its own `cniVersion` says
    what it is now)."""
    from_version = result.get("cniVersion")
    if not isinstance(from_version, str) or not versions.is_supported(from_version):
        raise IncompatibleVersion(
            f"cannot convert a result of cniVersion {from_version!r} to {to_version}"
        )
    if not versions.is_supported(to_version):
        raise IncompatibleVersion(f"cannot convert a result to cniVersion {to_version!r}")
    out: dict[str, Any] = _clone(result)
    out["cniVersion"] = to_version
    if from_version == to_version:
        return out
    target = versions.parse(to_version)
    ips = out.get("ips")
    if isinstance(ips, list):
        for ip in ips:
            if not isinstance(ip, dict):
                continue
            if target < (1, 0, 0):
                ip["version"] = "6" if ":" in str(ip.get("address", "")) else "4"
            else:
                ip.pop("version", None)
    if target < (1, 1, 0):
        _drop_keys(out.get("interfaces"), _IFACE_11_ONLY)
        _drop_keys(out.get("routes"), _ROUTE_11_ONLY)
    return out


def _drop_keys(items: Any, keys: tuple[str, ...]) -> None:
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                for key in keys:
                    item.pop(key, None)


def _clone(value: Any) -> Any:
    """A deep copy of a JSON value (`copy.deepcopy` drags in more imports than it saves)."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def empty(version: str) -> dict[str, Any]:
    """The result of an attachment that configured nothing (e.g. no master result)."""
    return {"cniVersion": version, "interfaces": [], "ips": [], "dns": {}}
