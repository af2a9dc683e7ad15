"""ADD in Kubernetes mode: the pod named in CNI_ARGS -> delegate networks -> attach ->
report back.

Everything that can fail on the pod's request (annotations, objects, namespaces,
capabilities, interface names) fails here, before any delegate runs. After the
delegates succeeded, `Reporter` checks the NPWG musts on the results (requested
`ips`/`mac` present), moves the default route when asked, writes the network-status
annotation and posts Events; if any of that raises, the engine undoes every delegate.

Nothing here is used by DEL, CHECK or GC: those work from the attachment cache, so they
work with the API down or the pod gone.
"""

from __future__ import annotations

import os
import time

from multus_rules import isolation, multusconf
from multus_rules.findings import first_error

from .. import results
from ..attachment import Attachment
from ..engine import Engine
from ..environ import CniEnv
from ..errors import CniError, ContainerUnknown, InvalidConfig, InvalidEnvironment, refusal
from ..logs import log
from ..netconf import DelegateNetwork, MultusConf, load_conf_file
from . import devices, objects, routes, selection, status
from .client import Client
from .kubeconfig import load as load_api_config

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, Protocol

    from .routes import Netlink
    from .selection import NetworkSelection

    class ObjectReader(Protocol):
        """What resolving reads: one object by its API path, None when there is none
        (the API client; `multusctl explain` serves the objects from files)."""

        def get(self, path: str) -> dict[str, Any] | None: ...

    DeviceSource = Callable[[dict[str, Any], Client, dict[str, Any]], devices.PodDevices]


DEFAULT_MULTUS_NAMESPACE = multusconf.DEFAULT_MULTUS_NAMESPACE
# runtimeConfig key -> the capability a plugin must declare to be given it (CONVENTIONS.md)
CAPABILITIES = {
    "ips": "ips",
    "mac": "mac",
    "portMappings": "portMappings",
    "bandwidth": "bandwidth",
    "infinibandGUID": "infinibandGUID",
}

# runtimeConfig key -> the selection element's field that asks for it
ANNOTATION_FIELDS = {
    "ips": "ips",
    "mac": "mac",
    "portMappings": "portMappings",
    "bandwidth": "bandwidth",
    "infinibandGUID": "infiniband-guid",
}


class Settings:
    """The Kubernetes-mode keys of the multus conf (Multus v4 names and defaults)."""

    __slots__ = (
        "api_timeout",
        "global_namespaces",
        "multus_namespace",
        "namespace_isolation",
        "system_namespaces",
    )

    def __init__(self, raw: dict[str, Any]) -> None:
        error = first_error(multusconf.check_k8s_keys(raw))
        if error is not None:
            raise refusal(error)
        self.namespace_isolation: bool = raw.get("namespaceIsolation", False)
        # Multus: a comma-separated string, default "default"; a list is accepted too.
        self.global_namespaces = multusconf.namespaces(
            raw, "globalNamespaces", multusconf.DEFAULT_GLOBAL_NAMESPACES
        )[0]
        self.system_namespaces = multusconf.namespaces(
            raw, "systemNamespaces", multusconf.DEFAULT_SYSTEM_NAMESPACES
        )[0]
        self.multus_namespace: str = raw.get("multusNamespace") or DEFAULT_MULTUS_NAMESPACE
        self.api_timeout = multusconf.seconds(raw, "kubeApiTimeout", *multusconf.API_TIMEOUT)[0]


class PodRef:
    __slots__ = ("name", "namespace", "uid")

    def __init__(self, namespace: str, name: str, uid: str) -> None:
        self.namespace = namespace
        self.name = name
        self.uid = uid

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


def pod_ref(args: Mapping[str, str]) -> PodRef | None:
    """The pod of this call from CNI_ARGS; None when CNI_ARGS names no pod."""
    namespace = args.get("K8S_POD_NAMESPACE", "")
    name = args.get("K8S_POD_NAME", "")
    if not namespace or not name:
        return None
    try:
        selection.check_namespace(namespace, "CNI_ARGS K8S_POD_NAMESPACE")
        selection.check_object_name(name, "CNI_ARGS K8S_POD_NAME")
    except InvalidConfig as exc:
        raise InvalidEnvironment(exc.msg) from None
    return PodRef(namespace, name, args.get("K8S_POD_UID", ""))


class Planned:
    """One delegate of the pod's plan and where it came from."""

    __slots__ = ("cluster", "network", "request", "status_name")

    def __init__(
        self,
        network: DelegateNetwork,
        status_name: str,
        request: NetworkSelection | None = None,
        cluster: bool = False,
    ) -> None:
        self.network = network
        self.status_name = status_name
        self.request = request
        self.cluster = cluster


class Resolver:
    """Pod + conf -> the ordered delegate networks of this pod (API reads only)."""

    def __init__(
        self,
        client: ObjectReader,
        conf: MultusConf,
        settings: Settings,
        pod: dict[str, Any],
        ref: PodRef,
        pod_devices: devices.PodDevices | None = None,
    ) -> None:
        self.client = client
        # Devices for NADs with a resourceName: thin mode reads kubelet's checkpoint and
        # the API; multus-node passes one fed from its caches.
        self.devices = pod_devices or devices.thin_devices(pod, client, conf.raw)
        self.conf = conf
        self.settings = settings
        self.pod = pod
        self.ref = ref
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        self.annotations: dict[str, Any] = annotations if isinstance(annotations, dict) else {}

    def _annotation(self, key: str) -> str | None:
        value = self.annotations.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InvalidConfig(f"annotation {key} of pod {self.ref}: must be a string")
        return value

    def plan(self) -> tuple[list[Planned], bool]:
        """(delegates in attach order, seed-style interface naming?)."""
        seed = self._annotation(selection.SEED_ANNOTATION)
        npwg = self._annotation(selection.NPWG_ANNOTATION)
        if seed is not None and npwg is not None:
            raise InvalidConfig(
                f"pod {self.ref} has both the seed annotation {selection.SEED_ANNOTATION!r} and "
                f"the NPWG annotation {selection.NPWG_ANNOTATION!r}; use one of them"
            )
        if seed is not None:
            return self._seed_plan(selection.parse_seed(seed, self.ref.namespace)), True
        requests = selection.parse_npwg(npwg, self.ref.namespace) if npwg is not None else []
        # Everything the annotation alone can tell is checked before any object is read.
        routed = [r for r in requests if r.default_route]
        if len(routed) > 1:
            raise InvalidConfig(
                f"annotation {selection.NPWG_ANNOTATION} of pod {self.ref}: only one network may "
                f"carry default-route, found {', '.join(r.where for r in routed)}"
            )
        for request in requests:
            self._check_isolation(request)
        planned = self._base_networks()
        planned += [self._npwg_network(request) for request in requests]
        return planned, self.conf.seed_style and not requests

    # ---- seed Network objects ----

    def _seed_plan(self, requests: list[NetworkSelection]) -> list[Planned]:
        planned: list[Planned] = []
        for index, request in enumerate(requests):
            obj, namespace = self._find_seed_network(request)
            ref = f"{namespace}/{request.name}"
            network = objects.seed_network_delegate(obj, ref, self.conf.cni_version)
            network.master = index == 0
            planned.append(Planned(network, ref, None, cluster=index == 0))
        return planned

    def _find_seed_network(self, request: NetworkSelection) -> tuple[dict[str, Any], str]:
        """The seed looked objects up in the pod's namespace, then in `default`."""
        tried = []
        for namespace in isolation.seed_lookup(request.namespace):
            if namespace != self.ref.namespace and not self._may_reach(namespace):
                continue
            tried.append(namespace)
            obj = self.client.get(objects.network_path(namespace, request.name))
            if obj is not None:
                return obj, namespace
        raise InvalidConfig(
            f"{request.where} of pod {self.ref}: Network {request.name!r} not found in "
            f"namespace(s) {', '.join(tried)}"
        )

    # ---- NPWG ----

    def _may_reach(self, namespace: str) -> bool:
        return isolation.may_use(
            self.ref.namespace,
            namespace,
            self.settings.namespace_isolation,
            self.settings.global_namespaces,
        )

    def _check_isolation(self, request: NetworkSelection) -> None:
        if not self._may_reach(request.namespace):
            raise InvalidConfig(
                isolation.refusal(
                    str(self.ref),
                    self.ref.namespace,
                    request.ref,
                    request.namespace,
                    self.settings.global_namespaces,
                )
            )

    def _nad(self, namespace: str, name: str, why: str) -> DelegateNetwork:
        ref = f"{namespace}/{name}"
        obj = self.client.get(objects.nad_path(namespace, name))
        if obj is None:
            raise InvalidConfig(f"{why}: NetworkAttachmentDefinition {ref} not found")
        network = objects.nad_delegate(obj, ref, self.conf.cni_version, self.conf.conf_dir)
        self.devices.assign(network, obj, f"{why}: NetworkAttachmentDefinition {ref}")
        return network

    def _conf_ref(self, value: str, key: str) -> Planned:
        """A clusterNetwork/defaultNetworks entry: a conf file (or directory) path when it
        exists, else a NAD `ns/name` or `name` in multusNamespace, else (a bare name, as
        Multus looks it up) the conf file in confDir whose network has that name."""
        path = value if os.path.isabs(value) else os.path.join(self.conf.conf_dir, value)
        if os.path.exists(path):
            network = load_conf_file(path, self.conf.cni_version)
            return Planned(network, network.name)
        namespace, _, name = value.rpartition("/")
        bare = not namespace
        namespace = namespace or self.settings.multus_namespace
        where = f"{key} {value!r}"
        selection.check_namespace(namespace, where)
        ref = f"{namespace}/{name}"
        try:
            selection.check_object_name(name, where)
        except InvalidConfig:
            if not bare:
                raise
            obj = None  # no NAD can have this name; a CNI network name (`a_B`) can
        else:
            obj = self.client.get(objects.nad_path(namespace, name))
        if obj is not None:
            nad = objects.nad_delegate(obj, ref, self.conf.cni_version, self.conf.conf_dir)
            self.devices.assign(nad, obj, f"{where}: NetworkAttachmentDefinition {ref}")
            return Planned(nad, ref)
        if bare:
            why = f"{where}: no NetworkAttachmentDefinition {ref}, and"
            found = objects.find_conf_file(name, self.conf.conf_dir, self.conf.cni_version, why)
            if found is not None:
                return Planned(found, found.name)
            raise InvalidConfig(f"{why} no conf file in {self.conf.conf_dir} has name {name!r}")
        raise InvalidConfig(f"{where}: NetworkAttachmentDefinition {ref} not found")

    def _base_networks(self) -> list[Planned]:
        """Cluster network (maybe replaced by the pod's default-network annotation) and
        the defaultNetworks (not for pods in systemNamespaces)."""
        raw = self.conf.raw
        override = self._annotation(selection.DEFAULT_NETWORK_ANNOTATION)
        inline = raw.get("delegates") if not raw.get("clusterNetwork") else None
        n_inline = len(inline) if isinstance(inline, list) else 0
        planned: list[Planned] = []
        cluster = raw.get("clusterNetwork")
        if override is None and isinstance(cluster, str) and cluster:
            planned.append(self._conf_ref(cluster, "clusterNetwork"))
        else:
            planned += [Planned(d, d.name) for d in self.conf.delegates[:n_inline]]
        if override is not None:
            request = selection.parse_default_network(override, self.settings.multus_namespace)
            where = f"annotation {selection.DEFAULT_NETWORK_ANNOTATION} of pod {self.ref}"
            # The cluster network keeps CNI_IFNAME, kubelet's runtimeConfig and its own
            # routes: a request that would be dropped fails instead.
            dropped = [ANNOTATION_FIELDS[key] for key in request.capability_args()]
            dropped += ["interface"] * bool(request.interface)
            dropped += ["default-route"] * bool(request.default_route)
            if dropped:
                raise InvalidConfig(
                    f"{where}: {', '.join(map(repr, dropped))} cannot apply to the cluster "
                    "network (only name, namespace and cni-args do)"
                )
            network = self._nad(request.namespace, request.name, where)
            _add_cni_args(network, request.cni_args)
            network.master = True
            # Only the cluster network (the conf's master, else delegates[0]) is replaced;
            # the conf's other delegates stay, as with Multus.
            at = next((i for i, p in enumerate(planned) if p.network.master), 0)
            planned[at : at + 1] = [Planned(network, request.ref)]
        if not planned:
            raise InvalidConfig(
                f"pod {self.ref}: no cluster network: the conf has no delegates or "
                f"clusterNetwork, and the pod no {selection.DEFAULT_NETWORK_ANNOTATION} annotation"
            )
        masters = [p for p in planned if p.network.master]
        if not masters:
            planned[0].network.master = True
            masters = planned[:1]
        masters[0].cluster = True
        if self.ref.namespace not in self.settings.system_namespaces:
            defaults = raw.get("defaultNetworks") or []
            for value in defaults if isinstance(defaults, list) else []:
                extra = self._conf_ref(str(value), "defaultNetworks")
                extra.network.master = False
                planned.append(extra)
        return planned

    def _npwg_network(self, request: NetworkSelection) -> Planned:
        network = self._nad(request.namespace, request.name, f"{request.where} of pod {self.ref}")
        network.master = False
        # The annotation's `interface` wins over the network's own `if0name`.
        network.requested_ifname = request.interface or network.requested_ifname
        wanted = request.capability_args()
        if wanted:
            declared = {
                key
                for plugin in network.plugins
                if isinstance(plugin.get("capabilities"), dict)
                for key, on in plugin["capabilities"].items()
                if on is True
            }
            for key in wanted:
                if CAPABILITIES[key] not in declared:
                    raise InvalidConfig(
                        f"{request.where} of pod {self.ref}: requests {key!r} but network "
                        f"{request.ref} declares no {CAPABILITIES[key]!r} capability, so its "
                        "plugins would ignore it"
                    )
            network.runtime_config = {**(network.runtime_config or {}), **wanted}
        _add_cni_args(network, request.cni_args)
        return Planned(network, request.ref, request)


def _add_cni_args(network: DelegateNetwork, cni_args: dict[str, Any] | None) -> None:
    """A selection's `cni-args` go to every plugin of the network as `args.cni`."""
    if not cni_args:
        return
    for plugin in network.plugins:
        args = plugin.get("args")
        args = dict(args) if isinstance(args, dict) else {}
        cni = args.get("cni")
        args["cni"] = {**(cni if isinstance(cni, dict) else {}), **cni_args}
        plugin["args"] = args


class Reporter:
    """The after-ADD step: NPWG checks on results, default route, status, Events."""

    def __init__(
        self,
        client: Client,
        pod: dict[str, Any],
        ref: PodRef,
        planned: list[Planned],
        netns: str,
        netlink: Netlink | None = None,
    ) -> None:
        self.client = client
        self.pod = pod
        self.ref = ref
        self.planned = {id(p.network): p for p in planned}
        self.netns = netns
        self.netlink: Netlink = netlink or routes.IP_COMMAND

    def __call__(self, attachments: list[Attachment]) -> None:
        routed_families: set[str] = set()
        for attachment in attachments:
            plan = self.planned[id(attachment.network)]
            if plan.request is not None:
                self._check_result(attachment, plan.request)
                if plan.request.default_route:
                    self.netlink.set_default_route(
                        self.netns, attachment.ifname, plan.request.default_route
                    )
                    routed_families |= {routes.family(g) for g in plan.request.default_route}
        entries = []
        for attachment in attachments:
            plan = self.planned[id(attachment.network)]
            result = attachment.result or {}
            if plan.cluster:
                gateways = status.result_gateways(result, {"4", "6"} - routed_families)
            elif plan.request is not None:
                gateways = list(plan.request.default_route)
            else:
                gateways = []
            entries.append(
                status.status_entry(
                    plan.status_name,
                    attachment.ifname,
                    result,
                    default=plan.cluster,
                    gateways=gateways,
                )
            )
        started = time.monotonic()
        if status.write_network_status(self.client, self.ref.namespace, self.ref.name, entries):
            status.post_added_events(self.client, self.pod, entries)
        log.timing("status_write", time.monotonic() - started)

    def _check_result(self, attachment: Attachment, request: NetworkSelection) -> None:
        """NPWG §4.1.2.1.3.2/.4.2: what the pod asked for must be in the result."""
        result = attachment.result or {}
        if request.ips:
            got = [ip.get("address", "") for ip in result.get("ips") or [] if isinstance(ip, dict)]
            for wanted in request.ips:
                if not any(_same_ip(wanted, have) for have in got):
                    raise CniError(
                        f"{request.where} of pod {self.ref}: requested IP {wanted} is not in the "
                        f"result of {request.ref} on {attachment.ifname} "
                        f"(got {', '.join(got) or 'none'})",
                        code=7,
                    )
        if request.mac:
            macs = [
                str(i.get("mac", "")).lower()
                for i in result.get("interfaces") or []
                if isinstance(i, dict) and i.get("sandbox")
            ]
            if request.mac.lower().replace("-", ":") not in macs:
                raise CniError(
                    f"{request.where} of pod {self.ref}: requested MAC {request.mac} is not in "
                    f"the result of {request.ref} on {attachment.ifname} "
                    f"(got {', '.join(macs) or 'none'})",
                    code=7,
                )


def _same_ip(wanted: str, have: str) -> bool:
    """Whether a result's `address` is the requested IP (with its prefix, if one was
    asked for), compared as addresses: `FD00::05/64` is the `fd00::5/64` IPAM reports."""
    import ipaddress  # already loaded: the annotation's `ips` were checked with it

    try:
        got = ipaddress.ip_interface(have)
        if "/" in wanted:
            return ipaddress.ip_interface(wanted) == got
        return ipaddress.ip_address(wanted) == got.ip
    except ValueError:
        return False


def is_static_pod(pod: dict[str, Any]) -> bool:
    """A static pod (from a file or URL on the node): kubelet's CNI_ARGS carry its own
    UID, the API only its mirror pod with another UID (Multus's IsStaticPod)."""
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    source = (
        annotations.get("kubernetes.io/config.source") if isinstance(annotations, dict) else None
    )
    return source is not None and source != "api"


def add(
    env: CniEnv,
    conf: MultusConf,
    client: Client | None = None,
    netlink: Netlink | None = None,
    pod_devices: DeviceSource | None = None,
) -> dict[str, Any]:
    """ADD for a conf in Kubernetes mode.

    `client` is the API to read and write through (default: one of our own from the
    conf's kubeconfig, closed afterwards); multus-node passes one served from its watch
    caches. `netlink` moves default routes (default: `ip` through `nsenter`).
    `pod_devices` gives the pod's allocated devices (default: kubelet's checkpoint file
    and the API, `devices.thin_devices`); multus-node asks kubelet's PodResources."""
    ref = pod_ref(env.args)
    if ref is None:
        if not conf.delegates:
            raise InvalidConfig(
                "delegates: none in the conf, and CNI_ARGS names no pod (K8S_POD_NAMESPACE, "
                "K8S_POD_NAME) whose networks could be read"
            )
        if not any(d.master for d in conf.delegates):
            raise InvalidConfig(
                f"clusterNetwork: {conf.raw.get('clusterNetwork')!r} is no conf file, so a "
                "NetworkAttachmentDefinition, and CNI_ARGS names no pod (K8S_POD_NAMESPACE, "
                "K8S_POD_NAME) to read it for"
            )
        return Engine(env, conf).add()
    settings = Settings(conf.raw)
    owned = client is None
    if client is None:
        client = Client(load_api_config(conf.kubeconfig), timeout=settings.api_timeout)
    try:
        started = time.monotonic()
        pod = client.get(f"/api/v1/namespaces/{ref.namespace}/pods/{ref.name}")
        if pod is None:
            # As Multus does: a pod deleted before its sandbox came up gets an empty result.
            log.error(f"pod {ref} not found; exiting with an empty result, no delegate run")
            return results.empty(conf.cni_version)
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        if ref.uid and uid != ref.uid and not is_static_pod(pod):
            raise ContainerUnknown(
                f"pod {ref}: CNI_ARGS K8S_POD_UID is {ref.uid} but the API has {uid or 'none'} "
                "(the pod was deleted and re-created); not attaching"
            )
        found = pod_devices(pod, client, conf.raw) if pod_devices is not None else None
        planned, seed_style = Resolver(client, conf, settings, pod, ref, found).plan()
        log.timing("network_lookup", time.monotonic() - started)
        conf.delegates = [p.network for p in planned]
        conf.seed_style = seed_style
        engine = Engine(env, conf)
        return engine.add(after_add=Reporter(client, pod, ref, planned, env.netns, netlink))
    finally:
        if owned:
            client.close()
