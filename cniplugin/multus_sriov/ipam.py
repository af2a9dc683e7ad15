"""IPAM for a VF: exec the conf's IPAM plugin (host-local, static, dhcp, ...) as any main
plugin does, and put what it returns on the VF inside the pod."""

from __future__ import annotations

from multus_cni import cnijson, results, versions
from multus_cni.errors import CniError, IncompatibleVersion
from multus_cni.invoke import delegate_failure, find_plugin, parse_result, run_bounded

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .rtnl import Netlink

TIMEOUT = 60.0


def _call(
    command: str, conf: dict[str, Any], environ: dict[str, str], version: str
) -> tuple[bytes, str]:
    """Run the IPAM plugin; (its stdout, the version it was called at)."""
    ipam_type = str(conf["ipam"]["type"])
    dirs = [d for d in environ.get("CNI_PATH", "").split(":") if d]
    path = find_plugin(ipam_type, dirs, "ipam.")
    env = dict(environ)
    env["CNI_COMMAND"] = command
    label = f"IPAM {ipam_type!r}"
    version = _negotiate(path, env, version, label)
    stdin = cnijson.dumps({**conf, "cniVersion": version}).encode()
    rc, out, err = run_bounded(path, env, stdin, TIMEOUT, label)
    if rc != 0:
        raise delegate_failure(label, command, rc, out, err)
    return out, version


def _negotiate(path: str, env: dict[str, str], version: str, label: str) -> str:
    """Debian's IPAM plugins speak up to 1.0.0: a 1.1.0 conf asks which versions the
    plugin has (one more exec, only for confs newer than 1.0.0) and sends the best."""
    if not versions.at_least(version, "1.1.0"):
        return version
    ask = {**env, "CNI_COMMAND": "VERSION"}
    rc, out, _err = run_bounded(
        path, ask, cnijson.dumps({"cniVersion": version}).encode(), TIMEOUT, label
    )
    try:
        offered = cnijson.loads(out).get("supportedVersions") if rc == 0 else None
    except (ValueError, AttributeError):
        offered = None
    if not isinstance(offered, list):
        return version
    chosen = versions.negotiate(version, [str(v) for v in offered])
    if chosen is None:
        raise IncompatibleVersion(
            f"ipam.type: {label} supports {', '.join(map(str, offered))}, none of which can "
            f"serve {version}"
        )
    return chosen


def add(conf: dict[str, Any], environ: dict[str, str], version: str) -> dict[str, Any]:
    out, sent = _call("ADD", conf, environ, version)
    doc = parse_result(f"IPAM {conf['ipam']['type']!r}", out, sent)
    return results.convert(doc, "1.1.0")


def delete(conf: dict[str, Any], environ: dict[str, str], version: str) -> None:
    _call("DEL", conf, environ, version)


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
