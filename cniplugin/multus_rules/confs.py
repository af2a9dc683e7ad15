"""One delegate network: a plugin conf or a conflist, as the plugin takes it.

`check_network` holds one network to every rule the plugin checks before it runs
anything. The plugin refuses the first error; the operator reports them all, and
only these (and the CRD schema) make an object Invalid. What only the delegate plugin
can judge (its own keys, IPAM ranges) is for `multus_api` to warn about.
"""

from __future__ import annotations

from .cnijson import type_name
from .findings import Finding, join
from .names import ifname_problem, network_name_problem, plugin_type_problem
from .versions import version_problem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# A conf is read up to 1 MiB: the plugin's stdin, a conf file, a network object's conf.
MAX_CONF_BYTES = 1 << 20


def string_value(raw: dict[str, Any], key: str, base: str, found: list[Finding]) -> str:
    """`raw[key]` as a string ("" when absent or null); a finding when it is not one."""
    value = raw.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        found.append(Finding(join(base, key), f"must be a string, not {type_name(value)}"))
        return ""
    return value


def check_network(
    raw: Any,
    base: str = "",
    *,
    default_version: str | None = None,
    default_name: str | None = None,
) -> list[Finding]:
    """Findings for one network conf or conflist at field path `base`.

    `default_version` / `default_name` are what the plugin fills in when the conf has
    none (the multus conf's version; the object's or file's name); None when unknown
    here, and then only a value the conf gives itself is checked.
    """
    if not isinstance(raw, dict):
        return [Finding(base, f"must be a JSON object, not {type_name(raw)}")]
    found: list[Finding] = []
    if "cniVersion" in raw or default_version is not None:
        problem = version_problem(raw.get("cniVersion", default_version))
        if problem is not None:
            found.append(Finding(join(base, "cniVersion"), problem[1], code=problem[0]))
    name = string_value(raw, "name", base, found) or default_name
    if name is not None:
        why = network_name_problem(name)
        if why:
            found.append(Finding(join(base, "name"), why))
    master = raw.get("masterplugin", False)
    if not isinstance(master, bool):
        found.append(Finding(join(base, "masterplugin"), f"must be true or false, not {master!r}"))
    ifname = string_value(raw, "if0name", base, found)
    if ifname:
        why = ifname_problem(ifname)
        if why:
            found.append(Finding(join(base, "if0name"), f"{ifname!r} {why}"))
    if "plugins" not in raw:
        return found + _check_plugin(raw, base)
    if "type" in raw:
        found.append(
            Finding(join(base, "type"), "ignored: a conflist runs its plugins", warning=True)
        )
    plugins = raw["plugins"]
    if not isinstance(plugins, list) or not plugins:
        found.append(Finding(join(base, "plugins"), "must be a non-empty list of plugin confs"))
        return found
    for index, plugin in enumerate(plugins):
        where = join(base, "plugins", index)
        found += _check_plugin(plugin, where)
        if isinstance(plugin, dict) and "if0name" in plugin:
            found.append(
                Finding(
                    join(where, "if0name"),
                    "ignored: a conflist asks for its interface name at its top level",
                    warning=True,
                )
            )
    return found


def _check_plugin(plugin: Any, base: str) -> list[Finding]:
    if not isinstance(plugin, dict):
        return [Finding(base, f"must be a JSON object, not {type_name(plugin)}")]
    found: list[Finding] = []
    why = plugin_type_problem(plugin.get("type"))
    if why:
        found.append(Finding(join(base, "type"), why))
    ipam = plugin.get("ipam")
    if ipam is not None:
        if not isinstance(ipam, dict):
            found.append(
                Finding(join(base, "ipam"), f"must be a JSON object, not {type_name(ipam)}")
            )
        elif "type" in ipam:
            why = plugin_type_problem(ipam["type"])
            if why:
                found.append(Finding(join(base, "ipam", "type"), why))
    return found


def masters_finding(networks: list[tuple[str, bool]]) -> Finding | None:
    """The seed's rule: at most one network is the master; `networks` are (source, master)."""
    masters = [source for source, master in networks if master]
    if len(masters) < 2:
        return None
    return Finding(
        join(masters[1], "masterplugin"),
        f"only one delegate may be the master, found {', '.join(m.rstrip(': ') for m in masters)}",
    )
