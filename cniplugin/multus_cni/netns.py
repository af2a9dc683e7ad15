"""Which `CNI_NETNS` paths may be handed to delegates.

A runtime may pass a path that exists but is no longer a namespace (it unmounted the
netns and left the mount point: an empty file), or, by mistake, the host's own
namespace: there bridge would delete the host's link named `CNI_IFNAME`. ADD refuses
both (code 8); DEL calls its delegates without `CNI_NETNS` instead, so host-side
clean-up and IPAM release still happen.
"""

from __future__ import annotations

import fcntl
import os

from .errors import InvalidNetns
from .logs import log

NS_GET_NSTYPE = 0xB703  # ioctl on an nsfs file: which kind of namespace it is (Linux 4.11)
CLONE_NEWNET = 0x40000000
_OWN_NETNS = "/proc/self/ns/net"


def netns_problem(path: str) -> str | None:
    """Why `path` cannot be a pod's network namespace, or None when it can."""
    try:
        target = os.stat(path)
    except OSError as exc:
        return f"cannot be opened: {exc.strerror}"
    except ValueError:  # an embedded NUL
        return "is not a path"
    try:
        own = os.stat(_OWN_NETNS)
    except OSError:
        return None  # no /proc: nothing to compare with; the delegates will say
    if (target.st_dev, target.st_ino) == (own.st_dev, own.st_ino):
        return "is the plugin's own (host) network namespace, not a pod's"
    # Every namespace file lives on the one nsfs superblock; anything else (the empty
    # file a bind mount leaves behind, a directory, a device) is no namespace at all.
    if target.st_dev != own.st_dev or (target.st_mode & 0o170000) != 0o100000:
        return "is not a namespace (unmounted, or never one)"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as exc:
        return f"cannot be opened: {exc.strerror}"
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        return None  # a kernel without NS_GET_NSTYPE: nsfs is all we can tell
    finally:
        os.close(fd)
    if kind != CLONE_NEWNET:
        return "is a namespace, but not a network namespace"
    return None


def check_netns(path: str) -> None:
    """ADD and CHECK need a pod's network namespace (code 8 otherwise)."""
    why = netns_problem(path)
    if why is not None:
        raise InvalidNetns(f"CNI_NETNS: {path!r} {why}")


def netns_for_del(path: str) -> str:
    """`path` when it is a pod's network namespace, else "" (delegates then get no
    CNI_NETNS, and still release what they hold outside it)."""
    if not path:
        return ""
    why = netns_problem(path)
    if why is None:
        return path
    log.verbose(f"CNI_NETNS {path!r} {why}; not handing it to the delegates")
    return ""
