"""Moving the pod's default route to the interface a selection element asked for.

Only the address family of each requested gateway is touched: asking for an IPv4
default route leaves the IPv6 ones alone. The work runs `ip` inside the pod's netns
through `nsenter` (util-linux) so the plugin itself never changes namespace.
"""

from __future__ import annotations

import os

from ..errors import CniError

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    import subprocess

_NSENTER = ("/usr/bin/nsenter", "/bin/nsenter", "/usr/sbin/nsenter")
_IP = ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip")


def _find(candidates: tuple[str, ...], what: str) -> str:
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    raise CniError(f"default-route: {what} is not installed (looked in {', '.join(candidates)})")


def _ip(netns: str, *args: str) -> subprocess.CompletedProcess[str]:
    import subprocess  # only when a pod asks for a default route

    command = [_find(_NSENTER, "nsenter"), f"--net={netns}", _find(_IP, "ip"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)


def family(gateway: str) -> str:
    return "6" if ":" in gateway else "4"


def set_default_route(netns: str, ifname: str, gateways: list[str]) -> None:
    """Replace the default route(s) of each gateway's family by one via `ifname`."""
    for gateway in gateways:
        fam = f"-{family(gateway)}"
        default = "::/0" if fam == "-6" else "0.0.0.0/0"
        flushed = _ip(netns, fam, "route", "flush", "exact", default)
        if flushed.returncode != 0:
            raise CniError(
                f"default-route: cannot remove the old {default} routes in {netns}: "
                f"{flushed.stderr.strip()}"
            )
        added = _ip(netns, fam, "route", "add", "default", "via", gateway, "dev", ifname)
        if added.returncode != 0:
            raise CniError(
                f"default-route: cannot route {default} via {gateway} on {ifname}: "
                f"{added.stderr.strip()}"
            )
