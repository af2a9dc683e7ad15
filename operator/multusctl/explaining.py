"""`multusctl explain`: what a pod's network annotations would give it, and why.

Follows the interface naming of the README ("Interface names"): the cluster (master)
network gets eth0; the seed's `networks` annotation makes its first network the
master and names the others net0, net1...; NPWG's `k8s.v1.cni.cncf.io/networks`
names them net1, net2...; a requested `interface` (or the sriov `if0name`) always
wins.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from multus_api.settings import MultusSettings
from multus_operator import validation

NPWG_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
SEED_ANNOTATION = "networks"


@dataclasses.dataclass
class Attachment:
    ifname: str
    network: str
    plugins: list[str]
    ipam: str
    why: str


@dataclasses.dataclass
class Plan:
    attachments: list[Attachment] = dataclasses.field(default_factory=list)
    problems: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        out = [f"# {note}" for note in self.notes]
        for a in self.attachments:
            plugins = ",".join(a.plugins)
            out.append(f"{a.ifname:<8} {a.network:<40} {plugins:<16} {a.ipam:<28} {a.why}")
        out += [f"error: {p}" for p in self.problems]
        return out


@dataclasses.dataclass(frozen=True)
class _Request:
    name: str
    namespace: str | None
    interface: str | None


def explain(
    pod: dict[str, Any], network_bodies: list[Any], settings: MultusSettings | None
) -> Plan:
    plan = Plan()
    meta = _mapping(pod.get("metadata"))
    pod_ns = meta.get("namespace") or "default"
    annotations = _mapping(meta.get("annotations"))
    networks = _index(network_bodies, plan)
    seed = SEED_ANNOTATION in annotations and NPWG_ANNOTATION not in annotations
    key = SEED_ANNOTATION if seed else NPWG_ANNOTATION
    try:
        requests = _parse_annotation(annotations.get(key, ""))
    except ValueError as exc:
        plan.problems.append(f"annotation {key}: {exc}")
        return plan
    if requests:
        plan.notes.append(f"networks from the {'seed' if seed else 'NPWG'} annotation {key!r}")
    index = 0
    if settings is not None and settings.clusterNetwork and not seed:
        cluster = _Request(settings.clusterNetwork, settings.multusNamespace, None)
        _attach(plan, networks, cluster, settings.multusNamespace, "eth0", "clusterNetwork")
        index = 1
    elif seed and requests:
        first, *requests = requests
        _attach(plan, networks, first, pod_ns, "eth0", "first seed network: the master")
    elif not requests and settings is not None and settings.delegates:
        plan.notes.append("no network annotation: the multus conf's delegates")
        _attach_delegates(plan, settings.delegates)
    elif not requests:
        plan.notes.append("no network annotation: only the cluster network")
    for request in requests:
        ns = request.namespace or pod_ns
        if settings is not None and settings.namespaceIsolation and ns != pod_ns:
            allowed = {*settings.globalNamespaces, *settings.systemNamespaces}
            if ns not in allowed:
                plan.problems.append(
                    f"{ns}/{request.name}: namespaceIsolation: pods in {pod_ns} may use "
                    f"networks of {pod_ns} or of the global namespaces only"
                )
                continue
            why_ns = f"namespace {ns} is global"
        else:
            why_ns = ""
        default = f"net{index}"
        if _attach(plan, networks, request, pod_ns, default, why_ns or "in annotation order"):
            index += 1
    return plan


def _attach(
    plan: Plan,
    networks: dict[tuple[str, str], dict[str, Any]],
    request: _Request,
    pod_ns: str,
    default_ifname: str,
    why: str,
) -> bool:
    ns = request.namespace or pod_ns
    body = networks.get((ns, request.name))
    if body is None:
        plan.problems.append(f"{ns}/{request.name}: no such network in the files given")
        return False
    report = validation.validate_object(body)
    if not report.valid:
        plan.problems.append(f"{ns}/{request.name}: invalid: {report.summary()}")
        return False
    confs = validation.delegate_confs(body)
    _record(plan, f"{ns}/{request.name}", confs, default_ifname, why, request.interface)
    return True


def _attach_delegates(plan: Plan, delegates: list[dict[str, Any]]) -> None:
    """Seed conf-file mode: the master delegate gets eth0, the others net0, net1..."""
    master = next((i for i, d in enumerate(delegates) if d.get("masterplugin")), 0)
    order = [master, *(i for i in range(len(delegates)) if i != master)]
    for n, i in enumerate(order):
        conf = delegates[i]
        plugins = conf.get("plugins")
        confs = [p for p in plugins if isinstance(p, dict)] if isinstance(plugins, list) else [conf]
        label = f"delegates[{i}]"
        if n == 0:
            why = "masterplugin" if conf.get("masterplugin") else "first delegate: the master"
            _record(plan, label, confs, "eth0", why, None)
        else:
            _record(plan, label, confs, f"net{n - 1}", "in delegate order", None)


def _record(
    plan: Plan,
    label: str,
    confs: list[dict[str, Any]],
    default_ifname: str,
    why: str,
    requested: str | None,
) -> None:
    ifname, reason = default_ifname, why
    if requested:
        ifname, reason = requested, "interface requested in the annotation"
    elif any(isinstance(c.get("if0name"), str) for c in confs):
        ifname = next(str(c["if0name"]) for c in confs if isinstance(c.get("if0name"), str))
        reason = "if0name in the network's args"
    plan.attachments.append(
        Attachment(
            ifname=ifname,
            network=label,
            plugins=[str(c.get("type")) for c in confs] or ["?"],
            ipam=_ipam(confs),
            why=reason,
        )
    )


def _ipam(confs: list[dict[str, Any]]) -> str:
    for conf in confs:
        ipam = conf.get("ipam")
        if isinstance(ipam, dict):
            where = ipam.get("subnet") or ipam.get("range") or ""
            if not where and isinstance(ipam.get("ranges"), list) and ipam["ranges"]:
                where = ",".join(r.get("subnet", "") for r in ipam["ranges"][0])
            return f"{ipam.get('type')} {where}".strip()
        if conf.get("l2enable"):
            return "none (l2enable)"
        if isinstance(conf.get("delegate"), dict):
            return "by the plugin (delegate)"
    return "none"


def _index(bodies: list[Any], plan: Plan) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for body in bodies:
        if not isinstance(body, dict) or body.get("kind") not in ("Network", *_NAD):
            continue
        meta = _mapping(body.get("metadata"))
        found[(meta.get("namespace") or "default", str(meta.get("name")))] = body
    return found


def _mapping(value: Any) -> dict[str, Any]:
    """A YAML mapping, or empty when the file holds something else there."""
    return value if isinstance(value, dict) else {}


_NAD = ("NetworkAttachmentDefinition",)


def _parse_annotation(text: Any) -> list[_Request]:
    """A JSON list of selections, or NPWG's `ns/name@ifname, ...` shorthand."""
    if not isinstance(text, str):
        raise ValueError("not a string")
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"invalid JSON: {exc}") from exc
        except RecursionError:
            raise ValueError("invalid JSON: nested too deeply") from None
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ValueError(f"[{i}] needs a name")
            out.append(_Request(item["name"], item.get("namespace"), item.get("interface")))
        return out
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        ref, _, ifname = part.partition("@")
        ns, _, name = ref.rpartition("/")
        out.append(_Request(name, ns or None, ifname or None))
    return out
