"""The engine's `Netlink` (multus_cni.k8s.routes) over pyroute2, for the daemon: no
process per route change, errors with their errno.

The pod's netns is opened by path without creating it (`flags=0`); under `host_root`
the host's own path is used, so a netns the daemon's mount namespace does not show is
still reached.
"""

from __future__ import annotations

import errno
import os

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from multus_cni.errors import CniError
from multus_cni.k8s.routes import default_dst, family

_FAMILY = {"4": 2, "6": 10}  # AF_INET, AF_INET6


class Pyroute2Netlink:
    def __init__(self, host_root: str = "") -> None:
        self.host_root = host_root

    def _path(self, netns: str) -> str:
        if self.host_root and self.host_root != "/":
            return os.path.join(self.host_root, netns.lstrip("/"))
        return netns

    def _open(self, netns: str) -> IPRoute:
        try:
            return IPRoute(netns=self._path(netns), flags=0)
        except (OSError, NetlinkError) as exc:
            raise CniError(f"default-route: cannot open netns {netns}: {exc}") from None

    def set_default_route(self, netns: str, ifname: str, gateways: list[str]) -> None:
        with self._open(netns) as ipr:
            links = ipr.link_lookup(ifname=ifname)
            if not links:
                raise CniError(f"default-route: no interface {ifname} in {netns}")
            for gateway in gateways:
                fam = family(gateway)
                default = default_dst(fam)
                try:
                    for route in ipr.get_default_routes(family=_FAMILY[fam]):
                        if route.get("table", 254) == 254:
                            ipr.route("del", **_identity(route))
                except NetlinkError as exc:
                    raise CniError(
                        f"default-route: cannot remove the old {default} routes in {netns}: "
                        f"{os.strerror(exc.code)}"
                    ) from None
                try:
                    ipr.route(
                        "add", dst=default, gateway=gateway, oif=links[0], family=_FAMILY[fam]
                    )
                except NetlinkError as exc:
                    why = (
                        "Nexthop has invalid gateway"
                        if exc.code == errno.ENETUNREACH
                        else os.strerror(exc.code)
                    )
                    raise CniError(
                        f"default-route: cannot route {default} via {gateway} on {ifname}: {why}"
                    ) from None

    def default_routes(self, netns: str, fam: str) -> list[str]:
        with self._open(netns) as ipr:
            names = {link["index"]: link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
            out = []
            for route in ipr.get_default_routes(family=_FAMILY[fam]):
                if route.get("table", 254) != 254:
                    continue
                via = route.get_attr("RTA_GATEWAY")
                dev = names.get(route.get_attr("RTA_OIF"), "")
                out.append(f"via {via} dev {dev}" if via else f"dev {dev}")
            return out


def _identity(route: object) -> dict[str, object]:
    """What identifies a route for RTM_DELROUTE."""
    get = route.get_attr  # type: ignore[attr-defined]
    spec: dict[str, object] = {
        "dst": "default",
        "family": route["family"],  # type: ignore[index]
        "table": route.get("table", 254),  # type: ignore[attr-defined]
        "priority": get("RTA_PRIORITY") or 0,
    }
    if get("RTA_GATEWAY"):
        spec["gateway"] = get("RTA_GATEWAY")
    if get("RTA_OIF"):
        spec["oif"] = get("RTA_OIF")
    return spec
