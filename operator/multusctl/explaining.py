"""`multusctl explain`: what a pod's network annotations would give it, and why.

Computed by the plugin's own code, not a copy of its rules: the settings render the
node's multus conf (as the operator renders it), the plugin parses it
(`multus_cni.netconf`), resolves the pod's networks (`multus_cni.k8s.resolve`: the
seed and NPWG annotations, the cluster and default networks, namespace isolation),
reading the network objects from the files given instead of the API, and names the
interfaces (`multus_rules.interfaces`). So explain prints the interfaces the plugin
creates, in the order it attaches them, or the very error it would refuse the pod with.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Any

from multus_api.settings import MultusSettings, multus_conf
from multus_cni import cnijson, netconf
from multus_cni.errors import CniError, refusal
from multus_cni.k8s import devices, objects, resolve
from multus_operator import validation
from multus_rules import interfaces
from multus_rules.findings import RuleError

CNI_IFNAME = "eth0"  # what kubelet passes for the pod's first interface


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

    @property
    def ifnames(self) -> list[str]:
        return [a.ifname for a in self.attachments]

    def lines(self) -> list[str]:
        out = [f"# {note}" for note in self.notes]
        for a in self.attachments:
            plugins = ",".join(a.plugins)
            out.append(f"{a.ifname:<8} {a.network:<40} {plugins:<16} {a.ipam:<28} {a.why}")
        out += [f"error: {p}" for p in self.problems]
        return out


class FileObjects:
    """The network objects of the files given, served by API path as the plugin's
    resolver reads them from the API server."""

    def __init__(self, bodies: list[Any]) -> None:
        self.bodies: dict[str, dict[str, Any]] = {}
        for body in bodies:
            if not isinstance(body, dict):
                continue
            meta = _mapping(body.get("metadata"))
            namespace = str(meta.get("namespace") or "default")
            name = str(meta.get("name") or "")
            if body.get("kind") == "Network":
                self.bodies[objects.network_path(namespace, name)] = body
            elif body.get("kind") == "NetworkAttachmentDefinition":
                self.bodies[objects.nad_path(namespace, name)] = body

    def get(self, path: str) -> dict[str, Any] | None:
        return self.bodies.get(path)


class NodeDevices(devices.PodDevices):
    """Which device a network with a resourceName gets is the node's to say (kubelet's
    checkpoint, DRA claims): explain leaves its deviceID out rather than read this
    machine's kubelet files."""

    def __init__(self, pod: dict[str, Any]) -> None:
        super().__init__(pod, devices.CheckpointFile(os.devnull), None)

    def assign(self, network: netconf.DelegateNetwork, nad: dict[str, Any], where: str) -> None:
        return None


def node_conf(settings: MultusSettings | None, conf_dir: str) -> dict[str, Any]:
    """The multus conf a node gets from these settings, run in-process (thin), with the
    node's conf files in `conf_dir`."""
    conf = multus_conf(settings if settings is not None else MultusSettings())
    conf["type"] = "multus"
    conf.pop("daemonSocketDir", None)
    conf["confDir"] = conf_dir
    return conf


def explain(
    pod: dict[str, Any],
    network_bodies: list[Any],
    settings: MultusSettings | None,
    conf_dir: str | None = None,
) -> Plan:
    """The plan of `pod` on a node with `settings` (the defaults when None) and the conf
    files of `conf_dir` (none when None)."""
    plan = Plan()
    with tempfile.TemporaryDirectory(prefix="multusctl-") as empty:
        conf = node_conf(settings, conf_dir or empty)
        if conf_dir is None:
            plan.notes.append("no --conf-dir: the node has no conf files")
        try:
            _plan(plan, pod, network_bodies, conf)
        except CniError as exc:
            plan.problems.append(exc.msg)
    return plan


def _plan(plan: Plan, pod: dict[str, Any], bodies: list[Any], raw: dict[str, Any]) -> None:
    conf = netconf.parse_conf(cnijson.dumps(raw).encode())
    if not conf.k8s:
        plan.notes.append("conf-file mode (no kubeconfig): the conf's delegates, for every pod")
        planned = [resolve.Planned(d, d.source) for d in conf.delegates]
        seed_style = conf.seed_style
    else:
        meta = _mapping(pod.get("metadata"))
        pod = {**pod, "metadata": meta}  # the API never serves another shape
        ref = resolve.pod_ref(
            {
                "K8S_POD_NAMESPACE": str(meta.get("namespace") or "default"),
                "K8S_POD_NAME": str(meta.get("name") or "pod"),
            }
        )
        assert ref is not None
        source = FileObjects(bodies)
        settings = resolve.Settings(conf.raw)
        resolver = resolve.Resolver(source, conf, settings, pod, ref, NodeDevices(pod))
        planned, seed_style = resolver.plan()
        _warnings(plan, planned, source)
    reasons: list[str] = []
    try:
        names = interfaces.assign_ifnames(
            [p.network for p in planned], CNI_IFNAME, seed_style, reasons
        )
    except RuleError as exc:
        raise refusal(exc.finding) from None
    for item, ifname, why in zip(planned, names, reasons, strict=True):
        network = item.network
        if item.request is not None and item.request.interface:
            why = "interface requested in the annotation"
        elif network.requested_ifname and not network.master:
            why = "if0name in the network's conf"
        plan.attachments.append(
            Attachment(
                ifname=ifname,
                network=_label(item),
                plugins=[str(p.get("type")) for p in network.plugins],
                ipam=_ipam(network.plugins),
                why=why,
            )
        )


def _label(item: resolve.Planned) -> str:
    if "/" in item.status_name or item.request is not None:
        return item.status_name
    return item.network.source.rstrip(": .") or item.network.name


def _warnings(plan: Plan, planned: list[resolve.Planned], source: FileObjects) -> None:
    """The operator's warnings (what the delegates would say) on the objects used."""
    for item in planned:
        namespace, _, name = item.status_name.partition("/")
        for path in (objects.network_path(namespace, name), objects.nad_path(namespace, name)):
            body = source.get(path) if name else None
            if body is None:
                continue
            for warning in validation.validate_object(body).warnings:
                plan.notes.append(f"warning: {item.status_name}: {warning}")


def _ipam(confs: list[dict[str, Any]]) -> str:
    for conf in confs:
        ipam = conf.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type"):
            where = ipam.get("subnet") or ipam.get("range") or ""
            ranges = ipam.get("ranges")
            if not where and isinstance(ranges, list) and ranges and isinstance(ranges[0], list):
                where = ",".join(str(r.get("subnet", "")) for r in ranges[0] if isinstance(r, dict))
            return f"{ipam.get('type')} {where}".strip()
        if conf.get("l2enable"):
            return "none (l2enable)"
        if isinstance(conf.get("delegate"), dict):
            return "by the plugin (delegate)"
    return "none"


def _mapping(value: Any) -> dict[str, Any]:
    """A YAML mapping, or empty when the file holds something else there."""
    return value if isinstance(value, dict) else {}
