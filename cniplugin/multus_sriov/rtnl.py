"""Link, address and route operations over rtnetlink, with the standard library only.

The delegate is exec'd per pod: pyroute2 0.9 costs ~135 ms to import (it pulls in
asyncio, multiprocessing and ssl), several times a whole ADD. The handful of
messages an ADD/DEL needs (get a link, move it to a netns, rename it, set MAC/MTU/up,
drop altnames, add addresses and routes) are packed here with `struct` over a plain
`AF_NETLINK` socket. VF settings, which go through the PF, are pyroute2's job
(`vfsettings`), loaded only on real hardware.

Namespaces: a netlink socket acts in the netns it was created in, so `Namespaces`
enters a netns with setns(2) just long enough to open a socket there. A temporary
netns is made with unshare(2) and held by a file descriptor only: nothing is mounted,
so a killed process leaves no netns behind (the kernel drops it with the last fd).
"""

from __future__ import annotations

import _socket as socket  # `socket` costs ~5 ms more (enum, selectors) per exec
import errno
import os
import struct

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_GETLINK = 16, 18
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
RTM_DELLINKPROP = 109
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 1, 4, 0x200, 0x400, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU = 1, 3, 4
IFLA_NET_NS_FD, IFLA_PROP_LIST, IFLA_ALT_IFNAME = 28, 52, 53
IFLA_PARENT_DEV_NAME = 56
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
IFF_UP = 1
CLONE_NEWNET = 0x40000000
_HDR = struct.Struct("=IHHII")
_IFINFO = struct.Struct("=BxHiII")
_IFADDR = struct.Struct("=BBBBI")
_RTMSG = struct.Struct("=BBBBBBBBI")
_RTA = struct.Struct("=HH")


class NetlinkError(OSError):
    """The kernel refused a request; `errno` says why (EOPNOTSUPP, EEXIST, ...)."""


class Link:
    __slots__ = ("altnames", "flags", "index", "mac", "mtu", "name", "parent_dev")

    def __init__(self, index: int, flags: int, attrs: dict[int, list[bytes]]) -> None:
        self.index = index
        self.flags = flags
        self.name = _text(attrs, IFLA_IFNAME)
        mac = attrs.get(IFLA_ADDRESS)
        self.mac = ":".join(f"{b:02x}" for b in mac[0]) if mac else ""
        mtu = attrs.get(IFLA_MTU)
        self.mtu = struct.unpack("=I", mtu[0][:4])[0] if mtu else 0
        self.parent_dev = _text(attrs, IFLA_PARENT_DEV_NAME)
        self.altnames: list[str] = []
        for blob in attrs.get(IFLA_PROP_LIST, []):
            self.altnames += [
                v.rstrip(b"\0").decode() for v in _attrs(blob).get(IFLA_ALT_IFNAME, [])
            ]

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


def _text(attrs: dict[int, list[bytes]], key: int) -> str:
    values = attrs.get(key)
    return values[0].split(b"\0", 1)[0].decode() if values else ""


def _attr(kind: int, payload: bytes) -> bytes:
    data = _RTA.pack(_RTA.size + len(payload), kind) + payload
    return data + b"\0" * (-len(data) % 4)


def _attrs(data: bytes) -> dict[int, list[bytes]]:
    found: dict[int, list[bytes]] = {}
    offset = 0
    while offset + _RTA.size <= len(data):
        length, kind = _RTA.unpack_from(data, offset)
        if length < _RTA.size:
            break
        found.setdefault(kind & 0x3FFF, []).append(data[offset + _RTA.size : offset + length])
        offset += (length + 3) & ~3
    return found


def _mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


class Netlink:
    """One rtnetlink socket, acting in the netns it was opened in."""

    def __init__(self) -> None:
        self.sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, kind: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        self.seq += 1
        seq = self.seq
        self.sock.send(_HDR.pack(_HDR.size + len(body), kind, flags | NLM_F_REQUEST, seq, 0) + body)
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 20)
            offset = 0
            while offset + _HDR.size <= len(data):
                length, mtype, _flags, mseq, _pid = _HDR.unpack_from(data, offset)
                payload = data[offset + _HDR.size : offset + length]
                offset += (length + 3) & ~3
                if mseq != seq:
                    continue
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return replies
                if mtype == NLMSG_DONE:
                    return replies
                replies.append((mtype, payload))
                if not flags & NLM_F_DUMP and not flags & NLM_F_ACK:
                    return replies

    # ---- links ----

    def links(self) -> list[Link]:
        replies = self._request(RTM_GETLINK, NLM_F_DUMP, _IFINFO.pack(0, 0, 0, 0, 0))
        return [self._link(payload) for kind, payload in replies if kind == RTM_NEWLINK]

    @staticmethod
    def _link(payload: bytes) -> Link:
        _family, _type, index, flags, _change = _IFINFO.unpack_from(payload)
        return Link(index, flags, _attrs(payload[_IFINFO.size :]))

    def link(self, name: str) -> Link | None:
        body = _IFINFO.pack(0, 0, 0, 0, 0) + _attr(IFLA_IFNAME, name.encode() + b"\0")
        try:
            replies = self._request(RTM_GETLINK, 0, body)
        except NetlinkError as exc:
            if exc.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return self._link(replies[0][1]) if replies else None

    def set_link(
        self,
        index: int,
        *,
        name: str | None = None,
        mac: str | None = None,
        mtu: int | None = None,
        up: bool | None = None,
        netns_fd: int | None = None,
    ) -> None:
        flags = change = 0
        if up is not None:
            change = IFF_UP
            flags = IFF_UP if up else 0
        attrs = b""
        if name is not None:
            attrs += _attr(IFLA_IFNAME, name.encode() + b"\0")
        if mac is not None:
            attrs += _attr(IFLA_ADDRESS, _mac_bytes(mac))
        if mtu is not None:
            attrs += _attr(IFLA_MTU, struct.pack("=I", mtu))
        if netns_fd is not None:
            attrs += _attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
        body = _IFINFO.pack(0, 0, index, flags, change) + attrs
        self._request(RTM_NEWLINK, NLM_F_ACK, body)

    def drop_altnames(self, link: Link) -> None:
        """Alternative names follow a link into a pod and can collide there: drop them."""
        if not link.altnames:
            return
        props = b"".join(_attr(IFLA_ALT_IFNAME, n.encode() + b"\0") for n in link.altnames)
        body = _IFINFO.pack(0, 0, link.index, 0, 0) + _attr(IFLA_PROP_LIST | 0x8000, props)
        self._request(RTM_DELLINKPROP, NLM_F_ACK, body)

    # ---- addresses and routes ----

    def add_address(self, index: int, cidr: str) -> None:
        address, _, prefix = cidr.partition("/")
        family, raw = _ip_bytes(address)
        body = _IFADDR.pack(family, int(prefix), 0, 0, index)
        body += _attr(IFA_LOCAL, raw) + _attr(IFA_ADDRESS, raw)
        self._request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body)

    def add_route(self, index: int, dst: str, gateway: str | None) -> None:
        address, _, prefix = dst.partition("/")
        family, raw = _ip_bytes(address)
        scope = 0 if gateway else 253  # universe via a gateway, link scope without one
        body = _RTMSG.pack(family, int(prefix or 0), 0, 0, 254, 3, scope, 1, 0)
        if int(prefix or 0):
            body += _attr(RTA_DST, raw)
        if gateway:
            body += _attr(RTA_GATEWAY, _ip_bytes(gateway)[1])
        body += _attr(RTA_OIF, struct.pack("=I", index))
        self._request(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body)


def _ip_bytes(address: str) -> tuple[int, bytes]:
    if ":" in address:
        return socket.AF_INET6, socket.inet_pton(socket.AF_INET6, address)
    return socket.AF_INET, socket.inet_pton(socket.AF_INET, address)


class Namespaces:
    """setns(2)/unshare(2) for this (single-threaded) process, always back home after."""

    def __init__(self) -> None:
        import ctypes  # ~3 ms, and only the delegate's ADD/DEL needs it

        self._libc = ctypes.CDLL(None, use_errno=True)
        self._get_errno = ctypes.get_errno
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.home)

    def _setns(self, fd: int) -> None:
        if self._libc.setns(fd, CLONE_NEWNET) != 0:
            code = self._get_errno()
            raise OSError(code, f"setns: {os.strerror(code)}")

    def netlink_in(self, netns_fd: int) -> Netlink:
        """A socket acting in the netns `netns_fd` (we are back home on return)."""
        self._setns(netns_fd)
        try:
            return Netlink()
        finally:
            self._setns(self.home)

    def temporary(self) -> int:
        """A fresh, empty netns held only by the returned fd (close it to drop it)."""
        if self._libc.unshare(CLONE_NEWNET) != 0:
            code = self._get_errno()
            raise OSError(code, f"unshare: {os.strerror(code)}")
        try:
            return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            self._setns(self.home)


def open_netns(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def same_netns(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
