"""The `"type": "multus"` conf: its own keys, as the plugin reads them before it runs
anything (the operator renders every node's conf from the cluster settings, so it holds
them to the same rules).

What needs the node's files (a `clusterNetwork` path, the delegates' binaries) is
checked by the plugin where it reads them.
"""

from __future__ import annotations

from .cnijson import type_name
from .confs import check_network, masters_finding, string_value
from .findings import Finding, join
from .names import absolute_path_problem, namespace_problem, network_name_problem
from .versions import DEFAULT_VERSION, version_problem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

LOG_LEVELS = ("debug", "verbose", "error", "panic")
PATH_KEYS = ("cniDir", "confDir", "binDir", "readinessindicatorfile", "logFile", "kubeconfig")
# key -> (default, largest) seconds
TIMEOUTS = {"delegateTimeout": (60.0, 3600.0), "readinessTimeout": (30.0, 3600.0)}
API_TIMEOUT = (10.0, 300.0)
DEFAULT_MULTUS_NAMESPACE = "kube-system"
DEFAULT_GLOBAL_NAMESPACES = ("default",)
DEFAULT_SYSTEM_NAMESPACES = ("kube-system",)


def seconds(
    raw: dict[str, Any], key: str, default: float, largest: float
) -> tuple[float, Finding | None]:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= largest:
        return default, Finding(
            key, f"must be a number of seconds in (0, {largest:g}], not {value!r}"
        )
    return float(value), None


def check_multus_conf(raw: dict[str, Any], *, k8s: bool) -> list[Finding]:
    """Findings for the whole multus conf: its own keys, then its networks."""
    return check_top_level(raw) + check_networks(raw, k8s=k8s)


def check_top_level(raw: dict[str, Any]) -> list[Finding]:
    """The conf's own keys, in the order the plugin checks them (all that DEL needs: it
    works from its records, whatever the delegates say now)."""
    found: list[Finding] = []
    problem = version_problem(raw.get("cniVersion", DEFAULT_VERSION))
    if problem is not None:
        found.append(Finding("cniVersion", problem[1], code=problem[0]))
    before = len(found)
    name = string_value(raw, "name", "", found)
    if not name and len(found) == before:
        found.append(Finding("name", "missing; the multus network needs a name"))
    elif name:
        why = network_name_problem(name)
        if why:
            found.append(Finding("name", why))
    for key in PATH_KEYS:
        value = string_value(raw, key, "", found)
        why = absolute_path_problem(value) if value else None
        if why:
            found.append(Finding(key, why))
    level = string_value(raw, "logLevel", "", found) or "error"
    if level.lower() not in LOG_LEVELS:
        found.append(Finding("logLevel", f"{level!r} is not one of {', '.join(LOG_LEVELS)}"))
    for key, (default, largest) in TIMEOUTS.items():
        finding = seconds(raw, key, default, largest)[1]
        if finding is not None:
            found.append(finding)
    return found


def check_networks(raw: dict[str, Any], *, k8s: bool) -> list[Finding]:
    """The conf's networks as far as the conf itself says them: `delegates` (each held
    to `confs.check_network`), `clusterNetwork`, `defaultNetworks`, one master at most.
    `k8s`: the plugin runs in Kubernetes mode (a kubeconfig or in-cluster credentials),
    where the pod's annotations may name every network."""
    version = raw.get("cniVersion", DEFAULT_VERSION)
    if version_problem(version) is not None:
        version = DEFAULT_VERSION
    name = raw.get("name")
    if not isinstance(name, str):
        name = ""
    inline = raw.get("delegates")
    cluster = raw.get("clusterNetwork")
    defaults = raw.get("defaultNetworks", [])
    found: list[Finding] = []
    if inline is not None and cluster:
        found.append(Finding("delegates", "give delegates or clusterNetwork, not both"))
    elif cluster:
        if not isinstance(cluster, str):
            found.append(
                Finding(
                    "clusterNetwork",
                    "must be a string (a conf file or directory path, or a network's name), "
                    f"not {type_name(cluster)}",
                )
            )
    elif inline is not None:
        if not isinstance(inline, list):
            found.append(Finding("delegates", "must be a list of plugin confs or conflists"))
        else:
            for index, item in enumerate(inline):
                found += check_network(
                    item,
                    join("delegates", index),
                    default_version=version,
                    default_name=f"{name}-{index}",
                )
            master = masters_finding(
                [
                    (join("delegates", i), isinstance(d, dict) and d.get("masterplugin") is True)
                    for i, d in enumerate(inline)
                ]
            )
            if master is not None:
                found.append(master)
    if not isinstance(defaults, list) or not all(isinstance(d, str) for d in defaults):
        found.append(Finding("defaultNetworks", "must be a list of conf file or directory paths"))
    elif not k8s and not cluster and not inline and not defaults:
        found.append(Finding("delegates", "at least one delegate (or clusterNetwork) is required"))
    return found


def check_k8s_keys(raw: dict[str, Any]) -> list[Finding]:
    """The Kubernetes-mode keys: read when ADD resolves a pod's networks."""
    found: list[Finding] = []
    isolation = raw.get("namespaceIsolation", False)
    if not isinstance(isolation, bool):
        found.append(Finding("namespaceIsolation", f"must be true or false, not {isolation!r}"))
    for key, default in (
        ("globalNamespaces", DEFAULT_GLOBAL_NAMESPACES),
        ("systemNamespaces", DEFAULT_SYSTEM_NAMESPACES),
    ):
        found += namespaces(raw, key, default)[1]
    multus_ns = raw.get("multusNamespace") or DEFAULT_MULTUS_NAMESPACE
    if not isinstance(multus_ns, str):
        found.append(Finding("multusNamespace", f"must be a string, not {type_name(multus_ns)}"))
    else:
        why = namespace_problem(multus_ns)
        if why:
            found.append(Finding("multusNamespace", why))
    found += [f for f in [seconds(raw, "kubeApiTimeout", *API_TIMEOUT)[1]] if f is not None]
    return found


def namespaces(
    raw: dict[str, Any], key: str, default: tuple[str, ...]
) -> tuple[list[str], list[Finding]]:
    """A namespace list: a comma-separated string (as Multus reads it) or a list."""
    value = raw.get(key)
    if value is None:
        return list(default), []
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        return list(default), [
            Finding(key, "must be a comma-separated string or a list of namespaces")
        ]
    names = [i.strip() for i in items if i.strip()]
    found = [Finding(key, why) for why in map(namespace_problem, names) if why]
    return names, found
