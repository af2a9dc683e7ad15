"""Pod annotations that select networks, parsed strictly and cheaply.

Two forms, never both on one pod:

- the seed's `networks: '[{"name": "flannel-conf"}, ...]'` (Network objects);
- NPWG's `k8s.v1.cni.cncf.io/networks`: a JSON list of selection elements or the
  shorthand `ns/name@ifname, name2, ...` (NetworkAttachmentDefinitions).

Oversized or malformed annotations are refused before any JSON parsing work that could
be expensive, and before anything runs (code 7, naming the annotation and the element).
"""

from __future__ import annotations

from multus_rules.names import ifname_problem, namespace_problem, object_name_problem

from .. import cnijson
from ..errors import InvalidConfig

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

SEED_ANNOTATION = "networks"
NPWG_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"
# The API server caps all annotations of an object at 256 KiB together.
MAX_ANNOTATION_BYTES = 256 * 1024
MAX_NETWORKS = 64

_HEX = frozenset("0123456789abcdefABCDEF")


def _hex_groups(text: str, sep: str, count: int) -> bool:
    groups = text.split(sep)
    return len(groups) == count and all(len(g) == 2 and set(g) <= _HEX for g in groups)


def is_mac(text: str) -> bool:
    """Ethernet (6 octets, `:` or `-`) or InfiniBand (20 octets) hardware address."""
    return _hex_groups(text, ":", 6) or _hex_groups(text, "-", 6) or _hex_groups(text, ":", 20)


def check_namespace(value: str, where: str) -> str:
    why = namespace_problem(value)
    if why:
        raise InvalidConfig(f"{where}: {why}")
    return value


def check_object_name(value: str, where: str) -> str:
    why = object_name_problem(value)
    if why:
        raise InvalidConfig(f"{where}: {why}")
    return value


def check_ip(value: Any, where: str, allow_prefix: bool) -> str:
    """An IPv4/IPv6 address (with a prefix length when `allow_prefix`)."""
    import ipaddress  # only when a pod asks for addresses

    if not isinstance(value, str) or len(value) > 64:
        raise InvalidConfig(f"{where}: {value!r} is not an IP address")
    try:
        if "/" in value:
            if not allow_prefix:
                raise ValueError("no prefix allowed")
            ipaddress.ip_interface(value)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        raise InvalidConfig(f"{where}: {value!r} is not an IP address") from None
    return value


class NetworkSelection:
    """One requested network and what the pod asks of it."""

    __slots__ = (
        "bandwidth",
        "cni_args",
        "default_route",
        "infiniband_guid",
        "interface",
        "ips",
        "mac",
        "name",
        "namespace",
        "port_mappings",
        "where",
    )

    def __init__(self, name: str, namespace: str, where: str) -> None:
        self.name = name
        self.namespace = namespace
        self.where = where
        self.interface = ""
        self.ips: list[str] = []
        self.mac = ""
        self.default_route: list[str] = []
        self.cni_args: dict[str, Any] | None = None
        self.port_mappings: list[Any] | None = None
        self.bandwidth: dict[str, Any] | None = None
        self.infiniband_guid = ""

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def capability_args(self) -> dict[str, Any]:
        """The runtimeConfig capability args this selection asks for (CONVENTIONS.md names)."""
        args: dict[str, Any] = {}
        if self.ips:
            args["ips"] = list(self.ips)
        if self.mac:
            args["mac"] = self.mac
        if self.port_mappings is not None:
            args["portMappings"] = self.port_mappings
        if self.bandwidth is not None:
            args["bandwidth"] = self.bandwidth
        if self.infiniband_guid:
            args["infinibandGUID"] = self.infiniband_guid
        return args


def _check_size(text: str, annotation: str) -> None:
    if len(text) > MAX_ANNOTATION_BYTES:
        raise InvalidConfig(
            f"annotation {annotation}: {len(text)} bytes, more than {MAX_ANNOTATION_BYTES}"
        )


def _load_list(text: str, annotation: str) -> list[Any]:
    try:
        doc = cnijson.loads(text)
    except ValueError as exc:
        raise InvalidConfig(f"annotation {annotation}: not valid JSON: {exc}") from None
    if not isinstance(doc, list):
        raise InvalidConfig(f"annotation {annotation}: must be a JSON list of network objects")
    if len(doc) > MAX_NETWORKS:
        raise InvalidConfig(
            f"annotation {annotation}: {len(doc)} networks, more than {MAX_NETWORKS}"
        )
    return doc


def parse_seed(text: str, pod_namespace: str) -> list[NetworkSelection]:
    """The seed's `networks` annotation: `[{"name": "<Network object>"}, ...]`."""
    _check_size(text, SEED_ANNOTATION)
    selections: list[NetworkSelection] = []
    for index, item in enumerate(_load_list(text, SEED_ANNOTATION)):
        where = f"annotation {SEED_ANNOTATION}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidConfig(f'{where}: must be an object with a string "name"')
        selections.append(
            NetworkSelection(check_object_name(item["name"], where), pod_namespace, where)
        )
    if not selections:
        raise InvalidConfig(f"annotation {SEED_ANNOTATION}: lists no network")
    return selections


def parse_npwg(
    text: str, pod_namespace: str, annotation: str = NPWG_ANNOTATION
) -> list[NetworkSelection]:
    """NPWG selection: JSON list or `ns/name@ifname` shorthand, comma separated."""
    _check_size(text, annotation)
    stripped = text.strip()
    if not stripped:
        return []
    if stripped.startswith("["):
        return [
            _element(item, pod_namespace, f"annotation {annotation}[{index}]")
            for index, item in enumerate(_load_list(stripped, annotation))
        ]
    items = stripped.split(",")
    if len(items) > MAX_NETWORKS:
        raise InvalidConfig(
            f"annotation {annotation}: {len(items)} networks, more than {MAX_NETWORKS}"
        )
    return [
        _shorthand(
            item.strip(), pod_namespace, f"annotation {annotation}[{index}] {item.strip()[:80]!r}"
        )
        for index, item in enumerate(items)
    ]


def _shorthand(item: str, pod_namespace: str, where: str) -> NetworkSelection:
    if not item:
        raise InvalidConfig(f"{where}: empty network reference")
    namespace = pod_namespace
    ifname = ""
    named_if = "@" in item
    if named_if:
        item, ifname = item.split("@", 1)
    if "/" in item:
        namespace, item = item.split("/", 1)
        check_namespace(namespace, where)
    selection = NetworkSelection(check_object_name(item, where), namespace, where)
    if named_if:
        why = ifname_problem(ifname)
        if why:
            raise InvalidConfig(f"{where}: interface {ifname!r} {why}")
        selection.interface = ifname
    return selection


def _string(item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidConfig(f"{where}.{key}: must be a string, not {cnijson.type_name(value)}")
    return value


def _element(item: Any, pod_namespace: str, where: str) -> NetworkSelection:
    if not isinstance(item, dict):
        raise InvalidConfig(f"{where}: must be a JSON object, not {cnijson.type_name(item)}")
    name = _string(item, "name", where)
    if not name:
        raise InvalidConfig(f'{where}: "name" is required')
    namespace = _string(item, "namespace", where) or pod_namespace
    selection = NetworkSelection(
        check_object_name(name, where), check_namespace(namespace, where), where
    )
    ifname = _string(item, "interface", where)
    if ifname:
        why = ifname_problem(ifname)
        if why:
            raise InvalidConfig(f"{where}.interface: {ifname!r} {why}")
        selection.interface = ifname
    ips = item.get("ips")
    if ips is not None:
        if not isinstance(ips, list) or len(ips) > 16:
            raise InvalidConfig(f"{where}.ips: must be a list of at most 16 IP addresses")
        selection.ips = [check_ip(ip, f"{where}.ips[{i}]", True) for i, ip in enumerate(ips)]
    mac = _string(item, "mac", where)
    if mac:
        if not is_mac(mac):
            raise InvalidConfig(f"{where}.mac: {mac!r} is not a MAC address")
        selection.mac = mac
    route = item.get("default-route")
    if route is not None:
        if not isinstance(route, list) or not route or len(route) > 2:
            raise InvalidConfig(f"{where}.default-route: must be a list of 1 or 2 gateway IPs")
        selection.default_route = [
            check_ip(gw, f"{where}.default-route[{i}]", False) for i, gw in enumerate(route)
        ]
        if len({":" in gw for gw in selection.default_route}) != len(selection.default_route):
            raise InvalidConfig(
                f"{where}.default-route: at most one gateway per address family, "
                f"not {', '.join(selection.default_route)}"
            )
    cni_args = item.get("cni-args")
    if cni_args is not None:
        if not isinstance(cni_args, dict):
            raise InvalidConfig(f"{where}.cni-args: must be a JSON object")
        selection.cni_args = cni_args
    ports = item.get("portMappings")
    if ports is not None:
        if not isinstance(ports, list) or not all(isinstance(p, dict) for p in ports):
            raise InvalidConfig(f"{where}.portMappings: must be a list of objects")
        selection.port_mappings = ports
    bandwidth = item.get("bandwidth")
    if bandwidth is not None:
        if not isinstance(bandwidth, dict):
            raise InvalidConfig(f"{where}.bandwidth: must be a JSON object")
        selection.bandwidth = bandwidth
    guid = _string(item, "infiniband-guid", where)
    if guid:
        if not _hex_groups(guid, ":", 8):
            raise InvalidConfig(f"{where}.infiniband-guid: {guid!r} is not a GUID")
        selection.infiniband_guid = guid
    return selection


def parse_default_network(text: str, multus_namespace: str) -> NetworkSelection:
    """`v1.multus-cni.io/default-network`: one NAD (`ns/name` or `name` in the multus
    namespace, as Multus resolves it) that replaces the cluster network for the pod."""
    selections = parse_npwg(text, multus_namespace, DEFAULT_NETWORK_ANNOTATION)
    if len(selections) != 1:
        raise InvalidConfig(
            f"annotation {DEFAULT_NETWORK_ANNOTATION}: must name exactly one network, "
            f"found {len(selections)}"
        )
    return selections[0]
