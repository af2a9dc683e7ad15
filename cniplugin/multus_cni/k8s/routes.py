"""Moving the pod's default route to the interface a selection element asked for.

Only the address family of each requested gateway is touched: asking for an IPv4
default route leaves the IPv6 ones alone. This is the engine's only netlink work, and
it goes through one small interface (`Netlink`) with two implementations: `IpCommand`
here, which runs `ip` inside the pod's netns through `nsenter` (util-linux) so the
exec'd plugin never changes namespace and imports nothing, and multus-node's pyroute2
one for the daemon. The same tests run against both.
"""

from __future__ import annotations

import os

from ..errors import CniError

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    import subprocess
    from typing import Protocol

    class Netlink(Protocol):
        """What the engine asks of netlink in a pod's network namespace."""

        def set_default_route(self, netns: str, ifname: str, gateways: list[str]) -> None:
            """Replace the default route(s) of each gateway's family by one via `ifname`;
            a CniError naming the route when that cannot be done."""

        def default_routes(self, netns: str, fam: str) -> list[str]:
            """The default routes of one family ("4" or "6"), one `via <gw> dev <if>`
            string each (for tests and diagnostics)."""


_NSENTER = ("/usr/bin/nsenter", "/bin/nsenter", "/usr/sbin/nsenter")
_IP = ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")


def _find(candidates: tuple[str, ...], what: str) -> str:
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    raise CniError(f"default-route: {what} is not installed (looked in {', '.join(candidates)})")


def family(gateway: str) -> str:
    return "6" if ":" in gateway else "4"


def default_dst(fam: str) -> str:
    return "::/0" if fam == "6" else "0.0.0.0/0"


class IpCommand:
    """`Netlink` through `nsenter --net=<netns> ip ...`: no import, no namespace change."""

    @staticmethod
    def _ip(netns: str, *args: str) -> subprocess.CompletedProcess[str]:
        import subprocess  # only when a pod asks for a default route

        command = [_find(_NSENTER, "nsenter"), f"--net={netns}", _find(_IP, "ip"), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)

    def set_default_route(self, netns: str, ifname: str, gateways: list[str]) -> None:
        for gateway in gateways:
            fam = family(gateway)
            default = default_dst(fam)
            flushed = self._ip(netns, f"-{fam}", "route", "flush", "exact", default)
            if flushed.returncode != 0:
                raise CniError(
                    f"default-route: cannot remove the old {default} routes in {netns}: "
                    f"{flushed.stderr.strip()}"
                )
            added = self._ip(
                netns, f"-{fam}", "route", "add", "default", "via", gateway, "dev", ifname
            )
            if added.returncode != 0:
                raise CniError(
                    f"default-route: cannot route {default} via {gateway} on {ifname}: "
                    f"{added.stderr.strip()}"
                )

    def default_routes(self, netns: str, fam: str) -> list[str]:
        out = self._ip(netns, f"-{fam}", "route", "show", "default")
        routes = []
        for line in out.stdout.splitlines():
            words = line.split()
            via = words[words.index("via") + 1] if "via" in words else ""
            dev = words[words.index("dev") + 1] if "dev" in words else ""
            routes.append(f"via {via} dev {dev}" if via else f"dev {dev}")
        return routes


IP_COMMAND = IpCommand()
