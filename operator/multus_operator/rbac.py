"""The RBAC each component needs, from `rbac/rules.yaml` (a deployment takes it from there).

The file maps a component (`operator`, `plugin`, `node`) to a list of rules, each
`{apiGroups, resources, verbs, scope}`: `scope: cluster` goes in a ClusterRole,
`scope: namespace` in a Role in the operator's namespace. No wildcards: every verb and
resource is named, and the tests check that each is one the code really uses.

    python -m multus_operator.rbac rbac/rules.yaml   # the README's RBAC section
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml

Scope = Literal["cluster", "namespace"]
SCOPES = ("cluster", "namespace")
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


class RulesError(ValueError):
    """The rules file is malformed; the message names the component and the entry."""


@dataclasses.dataclass(frozen=True)
class Rule:
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]  # "pods", "pods/status"
    verbs: tuple[str, ...]
    scope: Scope

    def allows(
        self, verb: str, group: str, resource: str, namespace: str | None, own_namespace: str
    ) -> bool:
        """Whether this rule grants `verb` on `resource` (with its subresource) of API
        `group`, in `namespace` (None: cluster-wide or a cluster-scoped resource)."""
        if verb not in self.verbs or group not in self.api_groups:
            return False
        if resource not in self.resources:
            return False
        return self.scope == "cluster" or namespace == own_namespace


def parse(doc: Any) -> dict[str, list[Rule]]:
    if not isinstance(doc, Mapping):
        raise RulesError("must be a mapping of component -> list of rules")
    parsed: dict[str, list[Rule]] = {}
    for component, rules in doc.items():
        if rules is None:
            parsed[str(component)] = []
            continue
        if not isinstance(rules, list):
            raise RulesError(f"{component}: must be a list of rules")
        parsed[str(component)] = [_rule(str(component), i, r) for i, r in enumerate(rules)]
    return parsed


def _rule(component: str, index: int, raw: Any) -> Rule:
    where = f"{component}[{index}]"
    if not isinstance(raw, Mapping):
        raise RulesError(f"{where}: must be a mapping")
    unknown = set(raw) - {"apiGroups", "resources", "verbs", "scope"}
    if unknown:
        raise RulesError(f"{where}: unknown keys {sorted(unknown)}")
    lists = {}
    for key in ("apiGroups", "resources", "verbs"):
        value = raw.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise RulesError(f"{where}.{key}: must be a non-empty list of strings")
        if "*" in value:
            raise RulesError(f"{where}.{key}: no wildcards; name each one")
        lists[key] = tuple(value)
    bad_verbs = [v for v in lists["verbs"] if v not in VERBS]
    if bad_verbs:
        raise RulesError(f"{where}.verbs: unknown {bad_verbs}")
    scope = raw.get("scope")
    if scope not in SCOPES:
        raise RulesError(f"{where}.scope: must be one of {', '.join(SCOPES)}")
    return Rule(lists["apiGroups"], lists["resources"], lists["verbs"], scope)


class _UniqueKeys(yaml.SafeLoader):
    """YAML keeps the last of two equal keys; a component listed twice is a mistake."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        keys = [self.construct_object(k, deep=deep) for k, _ in node.value]
        twice = sorted({str(k) for k in keys if keys.count(k) > 1})
        if twice:
            raise RulesError(f"line {node.start_mark.line + 1}: {', '.join(twice)} given twice")
        return super().construct_mapping(node, deep=deep)


def load(path: Path) -> dict[str, list[Rule]]:
    return parse(yaml.load(path.read_text(), Loader=_UniqueKeys))  # a SafeLoader


def allowed(
    rules: Iterable[Rule],
    verb: str,
    group: str,
    resource: str,
    namespace: str | None,
    own_namespace: str,
) -> bool:
    return any(r.allows(verb, group, resource, namespace, own_namespace) for r in rules)


def markdown(components: Mapping[str, list[Rule]]) -> str:
    """The README's RBAC tables, one per component with rules."""
    lines = []
    for component, rules in components.items():
        if not rules:
            continue
        lines += [
            f"`{component}`:",
            "",
            "| API group | resources | verbs | scope |",
            "| --- | --- | --- | --- |",
        ]
        for rule in rules:
            groups = ", ".join(f"`{g}`" if g else '`""` (core)' for g in rule.api_groups)
            resources = ", ".join(f"`{r}`" for r in rule.resources)
            verbs = ", ".join(f"`{v}`" for v in rule.verbs)
            scope = "cluster" if rule.scope == "cluster" else "operator's namespace"
            lines.append(f"| {groups} | {resources} | {verbs} | {scope} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(markdown(load(Path(sys.argv[1] if len(sys.argv) > 1 else "rbac/rules.yaml"))))
