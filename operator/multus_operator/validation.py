"""The checks every network object goes through, wherever it is checked.

The operator (status conditions), the admission webhook (refusals) and
`multusctl validate` (CI) all call `validate_object`, so a problem reads the same
everywhere: `<field path>: <what is wrong>`.

Invalid exactly when the API server or the `multus` plugin would refuse the object:
the CRD schema (jsonschema, the schema the API server enforces), then the rulebook
(`multus_rules`), the very rules the plugin holds a network to before it runs
anything. What only the delegate plugin can judge when it runs (its own keys and
types, IPAM ranges and gateways) is a warning: multus attaches the network and the
delegate decides.

Each check reads one object. What needs other objects or the nodes (whether an sriov
network is usable on some node) is the Ready condition's, in status only: admission
never depends on which other objects exist or in which order they were applied.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jsonschema
from pydantic import ValidationError

from multus_api import crdgen
from multus_api.nodeconf import MULTUS_CONF_TYPES
from multus_api.objects import NodeState, kind_of
from multus_api.plugins import check_plugin_conf
from multus_api.problems import (
    Problem,
    Severity,
    as_warnings,
    from_findings,
    from_validation_error,
    join_path,
)
from multus_api.settings import MultusSettings, multus_conf
from multus_rules import confs, multusconf
from multus_rules import objects as rules
from multus_rules.names import plugin_type_problem

NETWORK = ("kubernetes.com/v1", "Network")
NAD = ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition")
NODESTATE = ("multus.cni.cncf.io/v1", "NodeState")
SETTINGS_CONFIGMAP = "multus-settings"
SETTINGS_KEY = "settings.yaml"
PROBLEM_CHARS = 1024  # per problem in a summary; five of them stay far below 32768
HOST_LOCAL_NAME_BYTES = 255  # a file name


@dataclasses.dataclass(frozen=True)
class Report:
    """The outcome of checking one object."""

    kind: str
    name: str
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.is_error]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if not p.is_error]

    @property
    def valid(self) -> bool:
        return not self.errors

    def summary(self, limit: int = 5) -> str:
        """One line for a condition message or an admission refusal.

        Each problem is clipped (they quote the offending value, which may be huge):
        the CRD caps a condition message at 32768 characters, like metav1.Condition,
        and the API server would refuse a longer one on every retry.
        """
        shown = self.errors or self.warnings
        if not shown:
            return "all checks passed"
        text = "; ".join(_clip(str(p), PROBLEM_CHARS) for p in shown[:limit])
        if len(shown) > limit:
            text += f"; and {len(shown) - limit} more"
        return text if self.errors else f"valid with warnings: {text}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


@functools.cache
def _validator(kind: str) -> jsonschema.protocols.Validator:
    crds = {
        "Network": crdgen.network_crd(),
        "NetworkAttachmentDefinition": crdgen.nad_crd(),
        "NodeState": crdgen.nodestate_crd(),
    }
    schema = crds[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def schema_problems(kind: str, obj: dict[str, Any]) -> list[Problem]:
    """What the API server would refuse by the CRD's OpenAPI schema."""
    found = []
    for err in sorted(_validator(kind).iter_errors(obj), key=lambda e: list(e.absolute_path)):
        path = join_path("", *[p for p in err.absolute_path if isinstance(p, str | int)])
        found.append(Problem(path, _schema_message(err)))
    return found


def _schema_message(err: jsonschema.ValidationError) -> str:
    if list(err.absolute_path) == ["plugin"]:
        # The CRD's pattern and length for `plugin` are the rulebook's: say it its way.
        why = plugin_type_problem(err.instance)
        if why:
            return why
    if err.validator == "pattern":
        return f"{err.instance!r} does not match {err.validator_value}"
    return str(err.message)


def checked_content(obj: dict[str, Any]) -> dict[str, Any]:
    """The part of an object the checks read: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def validate_object(obj: Any) -> Report:
    """Check one Kubernetes object (or a multus conf) and say what is wrong."""
    if not isinstance(obj, dict):
        return Report("", "", (Problem("", "not a YAML/JSON object"),))
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = str((meta or {}).get("name") or obj.get("name") or "")
    api_kind = kind_of(obj)
    if api_kind == NETWORK:
        problems = check_network(obj)
    elif api_kind == NAD:
        problems = check_nad(obj)
    elif api_kind == NODESTATE:
        problems = check_nodestate(obj)
    elif api_kind == ("v1", "ConfigMap") and name == SETTINGS_CONFIGMAP:
        problems = check_settings_configmap(obj)
    elif obj.get("type") in MULTUS_CONF_TYPES:
        problems = check_multus_conf(obj)
    else:
        api, kind = api_kind
        return Report(kind, name, (Problem("kind", f"unsupported object {api}/{kind}"),))
    return Report(api_kind[1] or "MultusConf", name, tuple(problems))


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else ""


def check_network(obj: dict[str, Any]) -> list[Problem]:
    """The seed's Network: top-level `plugin` and `args` (a JSON list holding one conf)."""
    found = schema_problems("Network", obj)
    if found:
        return found
    name = _name(obj)
    conf, findings = rules.seed_network_conf(name, obj.get("plugin"), obj.get("args"))
    if conf is None:
        return from_findings(findings)
    return check_conf(conf, "args[0]", default_name=name)


def check_nad(obj: dict[str, Any]) -> list[Problem]:
    """NPWG: `spec.config` holds a CNI conf or conflist as a JSON string."""
    found = schema_problems("NetworkAttachmentDefinition", obj)
    if found:
        return found
    conf, findings = rules.nad_conf(obj.get("spec"))
    if findings:
        return from_findings(findings)
    if conf is None:
        return [
            Problem(
                "spec.config",
                "empty: the conf file named after this object is used",
                Severity.WARNING,
            )
        ]
    return check_conf(conf, "spec.config", default_name=_name(obj))


def check_conf(
    conf: Any, base: str, *, default_version: str | None = None, default_name: str | None = None
) -> list[Problem]:
    """One network conf or conflist: the rulebook's findings (its errors are what the
    plugin refuses), then, when it has none, what the delegate plugins would say."""
    found = from_findings(
        confs.check_network(conf, base, default_version=default_version, default_name=default_name)
    )
    if any(p.is_error for p in found):
        return found
    return found + as_warnings(_delegate_problems(conf, base))


def _delegate_problems(conf: dict[str, Any], base: str) -> list[Problem]:
    """What each plugin of a (rulebook-valid) conf or conflist makes of its conf."""
    if "plugins" not in conf:
        plugins = [(conf, base)]
    else:
        plugins = [(p, join_path(base, "plugins", i)) for i, p in enumerate(conf["plugins"])]
    found: list[Problem] = []
    for plugin, path in plugins:
        found += check_plugin_conf(plugin, path)
    name = conf.get("name")
    size = len(name.encode()) if isinstance(name, str) else 0
    if size > HOST_LOCAL_NAME_BYTES and any(_ipam_type(p) == "host-local" for p, _ in plugins):
        found.append(
            Problem(
                join_path(base, "name"),
                f"is {size} bytes: host-local keeps this network's leases in a directory "
                f"of that name, which may have {HOST_LOCAL_NAME_BYTES}",
            )
        )
    return found


def _ipam_type(plugin: dict[str, Any]) -> Any:
    ipam = plugin.get("ipam")
    return ipam.get("type") if isinstance(ipam, dict) else None


def check_multus_conf(conf: dict[str, Any]) -> list[Problem]:
    """A `"type": "multus"` conf file, judged as the plugin reads it (Kubernetes mode
    when it names a kubeconfig)."""
    k8s = bool(conf.get("kubeconfig"))
    findings = multusconf.check_multus_conf(conf, k8s=k8s)
    if k8s:
        findings += multusconf.check_k8s_keys(conf)
    found = from_findings(findings)
    if any(p.is_error for p in found):
        return found
    for i, delegate in enumerate(conf.get("delegates") or []):
        found += as_warnings(_delegate_problems(delegate, join_path("delegates", i)))
    return found


def check_nodestate(obj: dict[str, Any]) -> list[Problem]:
    found = schema_problems("NodeState", obj)
    if found:
        return found
    try:
        NodeState.model_validate(obj)
    except ValidationError as exc:
        return from_validation_error(exc, "")
    return []


def check_settings_configmap(obj: dict[str, Any]) -> list[Problem]:
    _, found = settings_from_configmap(obj.get("data"), f"data[{SETTINGS_KEY!r}]")
    return found


def settings_from_configmap(
    data: Any, base: str = SETTINGS_KEY
) -> tuple[MultusSettings | None, list[Problem]]:
    """Settings from the `multus-settings` ConfigMap's data; a missing key is a problem
    (a typo in it must not quietly render the defaults onto every node)."""
    text = data.get(SETTINGS_KEY) if isinstance(data, dict) else None
    if not isinstance(text, str):
        return None, [Problem(f"data[{SETTINGS_KEY!r}]", "required key is missing")]
    return parse_settings(text, base)


def parse_settings(text: str, base: str = "") -> tuple[MultusSettings | None, list[Problem]]:
    """Settings from `settings.yaml`, or the problems that make them unusable."""
    import yaml  # local: only settings need YAML here

    try:
        raw = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        return None, [Problem(base, f"invalid YAML: {exc}")]
    except RecursionError:
        return None, [Problem(base, "invalid YAML: nested too deeply")]
    if not isinstance(raw, dict):
        return None, [Problem(base, "must be a YAML mapping")]
    not_json = _not_json(raw, base)
    if not_json:  # it would be rendered into every node's 00-multus.conf
        return None, not_json
    try:
        settings = MultusSettings.model_validate(raw)
    except ValidationError as exc:
        refused = from_validation_error(exc, base, unknown_field="unknown setting")
        return None, refused + _rendered_anyway(raw, base, refused)
    found: list[Problem] = []
    base_dump = settings.model_dump(exclude={"nodeOverrides"})
    rendered = _rendered_problems(settings)
    found += _rebased(rendered, base)
    for i, override in enumerate(settings.nodeOverrides):
        path = join_path(base, "nodeOverrides", i, "settings")
        if "nodeOverrides" in override.settings:
            found.append(Problem(join_path(path, "nodeOverrides"), "overrides cannot nest"))
            continue
        try:
            merged = MultusSettings.model_validate({**base_dump, **override.settings})
        except ValidationError as exc:
            found += from_validation_error(exc, path, unknown_field="unknown setting")
            continue
        # What the base settings already say is said once, at the base.
        found += _rebased([p for p in _rendered_problems(merged) if p not in rendered], path)
    errors = [p for p in found if p.is_error]
    return (None if errors else settings), found


def _rendered_problems(settings: MultusSettings) -> list[Problem]:
    """What the plugin will say of the conf these settings render on a node."""
    return check_multus_conf(multus_conf(settings))


def _rendered_anyway(raw: dict[str, Any], base: str, found: list[Problem]) -> list[Problem]:
    """For settings the model refuses: what the plugin would also say of the conf they
    render, so every field to fix is named at once (the plugin may name another first)."""
    fields = {k: v for k, v in raw.items() if k in MultusSettings.model_fields}
    fields.pop("nodeOverrides", None)
    try:
        problems = _rendered_problems(MultusSettings.model_construct(**fields))
    except (TypeError, AttributeError, ValueError):
        return []  # values of another shape: the model's errors say so
    known = {p.path for p in found}
    return [
        p
        for p in _rebased(problems, base)
        if not any(p.path == k or p.path.startswith((k + ".", k + "[")) for k in known)
    ]


def _rebased(problems: list[Problem], base: str) -> list[Problem]:
    return [dataclasses.replace(p, path=join_path(base, p.path)) for p in problems]


def _not_json(doc: Any, base: str) -> list[Problem]:
    """YAML values JSON cannot carry (dates, NaN, non-string keys...), where the plugin
    would refuse the rendered conf or rendering would fail."""
    found: list[Problem] = []
    stack: list[tuple[Any, str]] = [(doc, base)]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    found.append(Problem(path, f"key {key!r} is not a string"))
                else:
                    stack.append((item, join_path(path, key)))
        elif isinstance(value, list):
            stack.extend((item, join_path(path, i)) for i, item in enumerate(value))
        elif isinstance(value, float) and not math.isfinite(value):
            found.append(Problem(path, f"{value} is not a JSON number"))
        elif value is not None and not isinstance(value, str | int | float | bool):
            found.append(Problem(path, f"a YAML {type(value).__name__} is not a JSON value"))
    return sorted(found, key=lambda p: p.path)


def delegate_confs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The plugin confs a valid network object runs, as the rulebook derives them."""
    api_kind = kind_of(obj)
    if api_kind == NETWORK:
        conf, _ = rules.seed_network_conf(_name(obj), obj.get("plugin"), obj.get("args"))
    elif api_kind == NAD:
        conf, _ = rules.nad_conf(obj.get("spec"))
    else:
        conf = None
    if conf is None:
        return []
    if isinstance(conf.get("plugins"), list):
        return [p for p in conf["plugins"] if isinstance(p, dict)]
    return [conf]
