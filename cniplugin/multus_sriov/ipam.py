"""IPAM for a VF: exec the conf's IPAM plugin (host-local, static, dhcp, ...) as any main
plugin does, and put what it returns on the VF inside the pod."""

from __future__ import annotations

from multus_cni import cnijson, results, versions
from multus_cni.errors import CniError, IncompatibleVersion
from multus_cni.invoke import Delegate, find_plugin, parse_result

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .rtnl import Netlink

TIMEOUT = 60.0


def _plugin(conf: dict[str, Any], environ: dict[str, str]) -> Delegate:
    """The conf's IPAM plugin, found in CNI_PATH and run like any delegate."""
    ipam_type = str(conf["ipam"]["type"])
    dirs = [d for d in environ.get("CNI_PATH", "").split(":") if d]
    return Delegate(find_plugin(ipam_type, dirs, "ipam."), environ, TIMEOUT, f"IPAM {ipam_type!r}")


def _call(plugin: Delegate, command: str, conf: dict[str, Any], version: str) -> tuple[bytes, str]:
    """Run the IPAM plugin; (its stdout, the version it was called at)."""
    version = _negotiate(plugin, version)
    stdin = cnijson.dumps({**conf, "cniVersion": version}).encode()
    return plugin.call(command, "", stdin), version


def _negotiate(plugin: Delegate, version: str) -> str:
    """Debian's IPAM plugins speak up to 1.0.0: a 1.1.0 conf asks which versions the
    plugin has (one more exec, only for confs newer than 1.0.0) and sends the best."""
    if not versions.at_least(version, "1.1.0"):
        return version
    try:
        out = plugin.call("VERSION", "", cnijson.dumps({"cniVersion": version}).encode())
        offered = cnijson.loads(out).get("supportedVersions")
    except (CniError, ValueError, AttributeError):
        offered = None
    if not isinstance(offered, list):
        return version
    chosen = versions.negotiate(version, [str(v) for v in offered])
    if chosen is None:
        raise IncompatibleVersion(
            f"ipam.type: {plugin.label} supports {', '.join(map(str, offered))}, none of "
            f"which can serve {version}"
        )
    return chosen


def add(conf: dict[str, Any], environ: dict[str, str], version: str) -> dict[str, Any]:
    plugin = _plugin(conf, environ)
    out, sent = _call(plugin, "ADD", conf, version)
    return results.convert(parse_result(plugin.label, out, sent), "1.1.0")


def delete(conf: dict[str, Any], environ: dict[str, str], version: str) -> None:
    _call(_plugin(conf, environ), "DEL", conf, version)


def configure(nl: Netlink, index: int, result: dict[str, Any]) -> None:
    """Addresses, then routes (a route's gateway must be reachable first)."""
    for ip in result.get("ips") or []:
        address = ip.get("address") if isinstance(ip, dict) else None
        if isinstance(address, str):
            nl.add_address(index, address)
    for route in result.get("routes") or []:
        if not isinstance(route, dict) or not isinstance(route.get("dst"), str):
            continue
        gateway = route.get("gw")
        if gateway is None:
            gateway = _gateway_for(route["dst"], result)
        try:
            nl.add_route(index, route["dst"], gateway)
        except OSError as exc:
            raise CniError(
                f"IPAM route {route['dst']} via {gateway or 'the link'}: cannot be added: "
                f"{exc.strerror}",
                code=5,
            ) from None


def _gateway_for(dst: str, result: dict[str, Any]) -> str | None:
    """A route without `gw` uses the gateway of the address of its family (CNI's rule)."""
    six = ":" in dst
    for ip in result.get("ips") or []:
        gateway = ip.get("gateway") if isinstance(ip, dict) else None
        if isinstance(gateway, str) and (":" in gateway) == six:
            return gateway
    return None
