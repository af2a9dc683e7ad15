"""The rulebook's rules (`multus_rules`) as pydantic types, for the models here.

Each type checks its value with the rulebook's own function, so a model never
accepts what the plugin refuses and never restates the rule; the message is the
rulebook's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from pydantic import AfterValidator, Field

from multus_rules import multusconf, names, versions


def _rule(problem: Callable[[str], str | None]) -> AfterValidator:
    def check(value: str) -> str:
        why = problem(value)
        if why:
            raise ValueError(why)
        return value

    return AfterValidator(check)


def _version_problem(value: str) -> str | None:
    problem = versions.version_problem(value)
    return problem[1] if problem else None


def _ifname_problem(value: str) -> str | None:
    why = names.ifname_problem(value)
    return f"{value!r} {why}" if why else None


def _conf_path_problem(value: str) -> str | None:
    # The plugin reads an empty path key as unset (the default).
    return names.absolute_path_problem(value) if value else None


def _log_level_problem(value: str) -> str | None:
    if value.lower() in multusconf.LOG_LEVELS:
        return None
    return f"{value!r} is not one of {', '.join(multusconf.LOG_LEVELS)}"


PluginName = Annotated[
    str,
    Field(pattern=names.PLUGIN_NAME_PATTERN, max_length=names.MAX_PLUGIN_NAME),
    _rule(names.plugin_type_problem),
]
NetworkName = Annotated[str, _rule(names.network_name_problem)]
CniVersion = Annotated[str, _rule(_version_problem)]
InterfaceName = Annotated[str, _rule(_ifname_problem)]
Namespace = Annotated[str, _rule(names.namespace_problem)]
ConfPath = Annotated[str, _rule(_conf_path_problem)]
LogLevel = Annotated[str, _rule(_log_level_problem)]
