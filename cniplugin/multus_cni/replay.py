"""A record read back as attachments, for DEL, CHECK and GC, without reading any conf.

DEL is driven by the record alone: it re-runs none of the semantic checks ADD passed
(a conf file since moved away, a rule tightened by an upgrade, must not stop it). Only
what keeps DEL safe and possible is checked: every `type` is a bare plugin name (never
a path to execute), every cniVersion is one this build can convert, every call state
is known. A record failing these is not trusted at all (`CorruptRecord`: the caller
quarantines it and falls back to the conf).
"""

from __future__ import annotations

from multus_rules.names import bare_name_problem

from . import records, versions
from .attachment import Attachment, PluginCall
from .cache import CorruptRecord
from .errors import CniError
from .invoke import Delegate, find_plugin
from .netconf import DelegateNetwork, strip_per_call

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def _version(value: Any, where: str) -> str:
    if not isinstance(value, str) or not versions.is_supported(value):
        raise CorruptRecord(f"{where}: cniVersion {value!r} is not one this build supports")
    return value


def safe_plugins(conf: dict[str, Any], where: str) -> list[dict[str, Any]]:
    """The plugin confs of a cached conf or conflist, per-call keys removed, each of
    whose `type` and `ipam.type` is a bare plugin name (never a path to execute);
    CorruptRecord otherwise."""
    plugins = conf.get("plugins") if "plugins" in conf else [conf]
    if not isinstance(plugins, list) or not plugins:
        raise CorruptRecord(f"{where}: no plugins")
    checked: list[dict[str, Any]] = []
    for index, plugin in enumerate(plugins):
        if not isinstance(plugin, dict):
            raise CorruptRecord(f"{where}.plugins[{index}]: not an object")
        why = bare_name_problem(plugin.get("type"))
        if why:
            raise CorruptRecord(f"{where}.plugins[{index}].type: {why}")
        ipam = plugin.get("ipam")
        if isinstance(ipam, dict) and "type" in ipam:
            why = bare_name_problem(ipam["type"])
            if why:
                raise CorruptRecord(f"{where}.plugins[{index}].ipam.type: {why}")
        checked.append(strip_per_call(plugin))
    return checked


def cached_network(entry: dict[str, Any], where: str, default_version: str) -> DelegateNetwork:
    """The delegate network a record entry holds (a conf or a conflist, as cached)."""
    raw = entry["network"]
    version = _version(raw.get("cniVersion", default_version), where)
    name = raw.get("name")
    checked = safe_plugins(raw, where)
    network = DelegateNetwork(
        str(name) if isinstance(name, str) else "",
        version,
        checked,
        is_list="plugins" in raw,
        source=where,
        master=bool(entry.get("master")),
    )
    runtime_config = entry.get("runtimeConfig")
    network.runtime_config = runtime_config if isinstance(runtime_config, dict) else None
    return network


def _call_states(entry: dict[str, Any], count: int, record_state: Any, where: str) -> list[Any]:
    """Each call's saved {state, error}; records written before per-call states existed
    say only "added" (all succeeded) or "adding" (each outcome unknown)."""
    calls = entry.get("calls")
    if calls is None:
        state = records.SUCCEEDED if record_state == "added" else records.STARTED
        return [{"state": state, "error": None}] * count
    if (
        not isinstance(calls, list)
        or len(calls) != count
        or not all(isinstance(c, dict) and c.get("state") in records.STATES for c in calls)
    ):
        raise CorruptRecord(f"{where}.calls: not one known state per plugin")
    return calls


def attachments(
    record: dict[str, Any], dirs: list[str], env: dict[str, str], timeout: float
) -> list[Attachment]:
    """The attachments of a record; a plugin whose binary is missing keeps its place
    (its DEL fails and is reported when it may hold something)."""
    found: list[Attachment] = []
    cached = f"{record.get('containerId')}/{record.get('ifName')}"
    default_version = record.get("cniVersion")
    if not isinstance(default_version, str):
        default_version = versions.DEFAULT_VERSION
    for index, entry in enumerate(record["delegates"]):
        where = f"cached {cached} delegates[{index}]"
        network = cached_network(entry, where, default_version)
        ifname = entry["ifName"]
        recorded = entry.get("versions") or []
        states = _call_states(entry, len(network.plugins), record.get("state"), where)
        calls: list[PluginCall] = []
        for pindex, plugin in enumerate(network.plugins):
            version = _version(
                recorded[pindex] if pindex < len(recorded) else network.cni_version,
                f"{where}.versions[{pindex}]",
            )
            label_where = f"{where}.plugins[{pindex}]" if network.is_list else where
            label = f"'{plugin['type']}' ({ifname}, {label_where})"
            try:
                path = find_plugin(str(plugin["type"]), dirs, f"{label_where}.")
                call = PluginCall(plugin, Delegate(path, env, timeout, label), version)
            except CniError as exc:
                call = PluginCall(plugin, None, version, problem=f"delegate {label}: {exc.msg}")
            call.state = states[pindex]["state"]
            error = states[pindex].get("error")
            call.error = error if isinstance(error, dict) else None
            calls.append(call)
        attachment = Attachment(network, ifname, calls)
        result = entry.get("result")
        attachment.result = result if isinstance(result, dict) else None
        found.append(attachment)
    return found
