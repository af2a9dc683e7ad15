"""IPAM plugin confs (host-local, static, dhcp, whereabouts) and their semantic checks.

The models check shapes and types; `check_ipam` adds the rules a schema cannot say
(an address outside its subnet, a range running backwards, mixed address families).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .problems import Problem, Severity, from_validation_error, join_path

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)  # as the plugins parse (Go)


class Route(_Model):
    """A route to add in the container (`dst` CIDR, optional `gw`)."""

    dst: str = Field(description="Destination CIDR, e.g. 0.0.0.0/0.")
    gw: str | None = Field(default=None, description="Next hop; the default gateway if absent.")
    mtu: int | None = Field(default=None, ge=0)
    advmss: int | None = Field(default=None, ge=0)
    priority: int | None = Field(default=None, ge=0)
    table: int | None = Field(default=None, ge=0)
    scope: int | None = Field(default=None, ge=0)


class Dns(_Model):
    nameservers: list[str] | None = None
    domain: str | None = None
    search: list[str] | None = None
    options: list[str] | None = None


class HostLocalRange(_Model):
    """One range of a host-local range set."""

    subnet: str = Field(description="CIDR to allocate from.")
    rangeStart: str | None = Field(default=None, description="First address to hand out.")
    rangeEnd: str | None = Field(default=None, description="Last address to hand out.")
    gateway: str | None = Field(default=None, description="Gateway address inside the subnet.")


class HostLocalIpam(_Model):
    """host-local: the seed's flat form (`subnet`, `rangeStart`...) or `ranges`."""

    type: str = "host-local"
    subnet: str | None = None
    rangeStart: str | None = None
    rangeEnd: str | None = None
    gateway: str | None = None
    ranges: list[list[HostLocalRange]] | None = None
    routes: list[Route] | None = None
    dataDir: str | None = None
    resolvConf: str | None = None


class StaticAddress(_Model):
    address: str = Field(description="Address with prefix length, e.g. 10.10.0.1/24.")
    gateway: str | None = None


class StaticIpam(_Model):
    type: str = "static"
    addresses: list[StaticAddress] | None = None
    routes: list[Route] | None = None
    dns: Dns | None = None


class DhcpIpam(_Model):
    type: str = "dhcp"
    daemonSocketPath: str | None = None
    request: list[dict[str, Any]] | None = None
    provide: list[dict[str, Any]] | None = None


class WhereaboutsRange(_Model):
    range: str
    range_start: str | None = None
    range_end: str | None = None
    exclude: list[str] | None = None


class WhereaboutsIpam(_Model):
    type: str = "whereabouts"
    range: str | None = None
    range_start: str | None = None
    range_end: str | None = None
    exclude: list[str] | None = None
    gateway: str | None = None
    ipRanges: list[WhereaboutsRange] | None = None
    routes: list[Route] | None = None
    etcd_host: str | None = None
    datastore: str | None = None
    kubernetes: dict[str, Any] | None = None
    log_file: str | None = None
    log_level: str | None = None
    enable_overlapping_ranges: bool | None = None
    network_name: str | None = None


IPAM_MODELS: dict[str, type[BaseModel]] = {
    "host-local": HostLocalIpam,
    "static": StaticIpam,
    "dhcp": DhcpIpam,
    "whereabouts": WhereaboutsIpam,
}


def check_ipam(raw: Any, base: str) -> list[Problem]:
    """All problems of an `ipam` section found at field path `base`."""
    if not isinstance(raw, dict):
        return [Problem(base, "must be an object")]
    kind = raw.get("type")
    if kind is None:
        # The plugins run no IPAM without a type (bridge: `if n.IPAM.Type != ""`).
        if not raw:
            return []
        return [
            Problem(
                join_path(base, "type"),
                f"missing: no IPAM runs, and {', '.join(sorted(raw))} is ignored",
                Severity.WARNING,
            )
        ]
    if not isinstance(kind, str) or not kind:
        return [Problem(join_path(base, "type"), f"must be a plugin name, not {kind!r}")]
    model = IPAM_MODELS.get(kind)
    if model is None:
        return [Problem(join_path(base, "type"), f"unknown IPAM plugin {kind!r}", Severity.WARNING)]
    try:
        parsed = model.model_validate(raw)
    except ValidationError as exc:
        return from_validation_error(exc, base)
    if isinstance(parsed, HostLocalIpam):
        return _check_host_local(parsed, base)
    if isinstance(parsed, StaticIpam):
        return _check_static(parsed, base)
    if isinstance(parsed, WhereaboutsIpam):
        return _check_whereabouts(parsed, base)
    return []


def _check_host_local(ipam: HostLocalIpam, base: str) -> list[Problem]:
    found: list[Problem] = []
    if ipam.subnet is None and not ipam.ranges:
        found.append(Problem(join_path(base, "subnet"), "give subnet or ranges"))
    if ipam.subnet is not None and ipam.ranges:
        found.append(Problem(join_path(base, "ranges"), "give subnet or ranges, not both"))
    if ipam.subnet is not None:
        flat = HostLocalRange(
            subnet=ipam.subnet,
            rangeStart=ipam.rangeStart,
            rangeEnd=ipam.rangeEnd,
            gateway=ipam.gateway,
        )
        found += _check_range(flat, base)
    seen: list[tuple[str, int, int, int]] = []  # (path, family, first, last) of good ranges
    for i, rangeset in enumerate(ipam.ranges or []):
        if not rangeset:
            found.append(Problem(join_path(base, "ranges", i), "a range set cannot be empty"))
        families = set()
        for j, one in enumerate(rangeset):
            path = join_path(base, "ranges", i, j)
            problems = _check_range(one, path)
            found += problems
            bounds = None if problems else _bounds(one)
            if bounds is None:
                continue
            families.add(bounds[0])
            # host-local refuses overlapping ranges, within a set and across sets.
            for other, family, first, last in seen:
                if family == bounds[0] and first <= bounds[2] and bounds[1] <= last:
                    found.append(Problem(path, f"overlaps {other}"))
                    break
            seen.append((path, *bounds))
        if len(families) > 1:
            found.append(
                Problem(join_path(base, "ranges", i), "mixed address families in one range set")
            )
    found += _check_routes(ipam.routes, base)
    return found


def _bounds(one: HostLocalRange) -> tuple[int, int, int]:
    """(family, first, last) of the addresses a checked range hands out, as host-local
    computes them: from after the network address to before the IPv4 broadcast."""
    subnet = ipaddress.ip_network(one.subnet, strict=False)
    first = int(subnet.network_address) + 1
    last = int(subnet.broadcast_address) - (1 if subnet.version == 4 else 0)
    if one.rangeStart is not None:
        first = int(ipaddress.ip_address(one.rangeStart))
    if one.rangeEnd is not None:
        last = int(ipaddress.ip_address(one.rangeEnd))
    return subnet.version, first, last


def _check_range(one: HostLocalRange, base: str) -> list[Problem]:
    subnet, problem = parse_network(one.subnet, join_path(base, "subnet"))
    if problem is not None:
        return [problem]
    assert subnet is not None
    if subnet.prefixlen >= subnet.max_prefixlen - 1:  # host-local: "too small to allocate from"
        return [Problem(join_path(base, "subnet"), f"{one.subnet} is too small to allocate from")]
    found: list[Problem] = []
    addresses: dict[str, IPAddress] = {}
    for field in ("rangeStart", "rangeEnd", "gateway"):
        text = getattr(one, field)
        if text is None:
            continue
        addr, problem = parse_address(text, join_path(base, field))
        if problem is not None:
            found.append(problem)
            continue
        assert addr is not None
        if addr.version != subnet.version or addr not in subnet:
            found.append(Problem(join_path(base, field), f"{text} is outside subnet {one.subnet}"))
            continue
        addresses[field] = addr
    start, end = addresses.get("rangeStart"), addresses.get("rangeEnd")
    if start is not None and end is not None and int(start) > int(end):
        found.append(Problem(join_path(base, "rangeEnd"), f"{end} is before rangeStart {start}"))
    return found


def _check_static(ipam: StaticIpam, base: str) -> list[Problem]:
    found: list[Problem] = []
    for i, entry in enumerate(ipam.addresses or []):
        path = join_path(base, "addresses", i)
        try:
            iface = ipaddress.ip_interface(entry.address)
        except ValueError:
            found.append(
                Problem(join_path(path, "address"), f"{entry.address!r} is not an address/prefix")
            )
            continue
        if "/" not in entry.address:
            found.append(
                Problem(join_path(path, "address"), f"{entry.address} needs a prefix length")
            )
        if entry.gateway is not None:
            gw, problem = parse_address(entry.gateway, join_path(path, "gateway"))
            if problem is not None:
                found.append(problem)
            elif gw is not None and (gw.version != iface.version or gw not in iface.network):
                found.append(
                    Problem(
                        join_path(path, "gateway"),
                        f"{entry.gateway} is outside subnet {iface.network}",
                    )
                )
    found += _check_routes(ipam.routes, base)
    return found


def _check_whereabouts(ipam: WhereaboutsIpam, base: str) -> list[Problem]:
    found: list[Problem] = []
    if ipam.range is None and not ipam.ipRanges:
        found.append(Problem(join_path(base, "range"), "give range or ipRanges"))
    if ipam.range is not None:
        found += _check_wa_range(ipam.range, ipam.range_start, ipam.range_end, ipam.exclude, base)
    for i, one in enumerate(ipam.ipRanges or []):
        found += _check_wa_range(
            one.range, one.range_start, one.range_end, one.exclude, join_path(base, "ipRanges", i)
        )
    found += _check_routes(ipam.routes, base)
    return found


def _check_wa_range(
    cidr: str, start: str | None, end: str | None, exclude: list[str] | None, base: str
) -> list[Problem]:
    # whereabouts also accepts "first-last/prefix"; the CIDR after the dash names the subnet.
    subnet_text = cidr.split("-", 1)[1] if "-" in cidr else cidr
    subnet, problem = parse_network(subnet_text, join_path(base, "range"))
    if problem is not None:
        return [problem]
    assert subnet is not None
    found: list[Problem] = []
    for field, text in (("range_start", start), ("range_end", end)):
        if text is None:
            continue
        addr, problem = parse_address(text, join_path(base, field))
        if problem is not None:
            found.append(problem)
        elif addr is not None and (addr.version != subnet.version or addr not in subnet):
            found.append(Problem(join_path(base, field), f"{text} is outside range {cidr}"))
    for i, text in enumerate(exclude or []):
        _, problem = parse_network(text, join_path(base, "exclude", i))
        if problem is not None:
            found.append(problem)
    return found


def _check_routes(routes: list[Route] | None, base: str) -> list[Problem]:
    found: list[Problem] = []
    for i, route in enumerate(routes or []):
        path = join_path(base, "routes", i)
        dst, problem = parse_network(route.dst, join_path(path, "dst"))
        if problem is not None:
            found.append(problem)
        if route.gw is not None:
            gw, problem = parse_address(route.gw, join_path(path, "gw"))
            if problem is not None:
                found.append(problem)
            elif dst is not None and gw is not None and gw.version != dst.version:
                found.append(
                    Problem(join_path(path, "gw"), f"{route.gw} is not of the family of {dst}")
                )
    return found


def parse_network(text: str, path: str) -> tuple[IPNetwork | None, Problem | None]:
    """A CIDR; host bits may be set (host-local accepts `10.1.2.3/24`)."""
    if "/" not in text:
        return None, Problem(path, f"{text!r} is not a CIDR (address/prefix)")
    try:
        return ipaddress.ip_network(text, strict=False), None
    except ValueError:
        return None, Problem(path, f"{text!r} is not a CIDR (address/prefix)")


def parse_address(text: str, path: str) -> tuple[IPAddress | None, Problem | None]:
    try:
        return ipaddress.ip_address(text), None
    except ValueError:
        return None, Problem(path, f"{text!r} is not an IP address")
