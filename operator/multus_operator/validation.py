"""The checks every network object goes through, wherever it is checked.

The operator (status conditions), the admission webhook (refusals) and
`multusctl validate` (CI) all call `validate_object`, so a problem reads the same
everywhere: `<field path>: <what is wrong>`.

Order: the CRD schema (jsonschema, the same schema the API server enforces), then
JSON well-formedness of the embedded CNI confs, then each plugin's and IPAM's model
and semantic rules.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Any

import jsonschema
from pydantic import ValidationError

from multus_api import crdgen
from multus_api.objects import NodeState, kind_of
from multus_api.plugins import PLUGIN_NAME_PATTERN, check_plugin_conf, check_plugin_name
from multus_api.problems import Problem, Severity, from_validation_error, join_path
from multus_api.settings import MultusSettings

NETWORK = ("kubernetes.com/v1", "Network")
NAD = ("k8s.cni.cncf.io/v1", "NetworkAttachmentDefinition")
NODESTATE = ("multus.cni.cncf.io/v1", "NodeState")
SETTINGS_CONFIGMAP = "multus-settings"
SETTINGS_KEY = "settings.yaml"
PROBLEM_CHARS = 1024  # per problem in a summary; five of them stay far below 32768


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
    if err.validator == "pattern":
        if err.validator_value == PLUGIN_NAME_PATTERN:
            return f"{err.instance!r} is not a plain plugin name"
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
    elif obj.get("type") in ("multus", "multus-shim"):
        problems = check_multus_conf(obj)
    else:
        api, kind = api_kind
        return Report(kind, name, (Problem("kind", f"unsupported object {api}/{kind}"),))
    return Report(api_kind[1] or "MultusConf", name, tuple(problems))


def check_network(obj: dict[str, Any]) -> list[Problem]:
    """The seed's Network: top-level `plugin` and `args` (a JSON list of confs)."""
    found = schema_problems("Network", obj)
    if found:
        return found
    plugin = obj["plugin"]
    found = check_plugin_name(plugin, "plugin")
    if found:
        return found
    if obj.get("args") is None:
        return []
    confs, problem = _parse_json(obj["args"], "args")
    if problem is not None:
        return [problem]
    if not isinstance(confs, list):
        return [Problem("args", "must be a JSON list of plugin confs")]
    for i, conf in enumerate(confs):
        path = join_path("args", i)
        if isinstance(conf, dict) and "type" in conf and conf["type"] != plugin:
            found.append(
                Problem(join_path(path, "type"), f"{conf['type']!r} differs from plugin {plugin!r}")
            )
            continue
        found += check_plugin_conf(conf, path, plugin=plugin)
    found += _check_masters(confs, "args")
    return found


def check_nad(obj: dict[str, Any]) -> list[Problem]:
    """NPWG: `spec.config` holds a CNI conf or conflist as a JSON string."""
    found = schema_problems("NetworkAttachmentDefinition", obj)
    if found:
        return found
    text = (obj.get("spec") or {}).get("config")
    if not text:
        return [
            Problem(
                "spec.config",
                "empty: the conf file named after this object is used",
                Severity.WARNING,
            )
        ]
    conf, problem = _parse_json(text, "spec.config")
    if problem is not None:
        return [problem]
    return check_cni_conf(conf, "spec.config")


def check_cni_conf(conf: Any, base: str) -> list[Problem]:
    """A CNI network conf or conflist (structure, then each plugin)."""
    if not isinstance(conf, dict):
        return [Problem(base, "must be a JSON object")]
    if "plugins" in conf:
        found = []
        if "type" in conf:
            found.append(Problem(join_path(base, "type"), "a conflist has plugins, not type"))
        plugins = conf["plugins"]
        if not isinstance(plugins, list) or not plugins:
            return [*found, Problem(join_path(base, "plugins"), "must be a non-empty list")]
        for i, plugin in enumerate(plugins):
            found += check_plugin_conf(plugin, join_path(base, "plugins", i))
        return found
    return check_plugin_conf(conf, base)


def check_multus_conf(conf: dict[str, Any]) -> list[Problem]:
    """A `"type": "multus"` conf file (the seed's form with inline delegates)."""
    found: list[Problem] = []
    delegates = conf.get("delegates")
    if delegates is None:
        if not conf.get("kubeconfig") and not conf.get("clusterNetwork"):
            found.append(Problem("delegates", "required when there is no kubeconfig"))
        return found
    if not isinstance(delegates, list):
        return [Problem("delegates", "must be a list of plugin confs")]
    for i, delegate in enumerate(delegates):
        found += check_cni_conf(delegate, join_path("delegates", i))
    found += _check_masters(delegates, "delegates")
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
        return None, from_validation_error(exc, base, unknown_field="unknown setting")
    found: list[Problem] = []
    base_dump = settings.model_dump(exclude={"nodeOverrides"})
    for i, override in enumerate(settings.nodeOverrides):
        path = join_path(base, "nodeOverrides", i, "settings")
        if "nodeOverrides" in override.settings:
            found.append(Problem(join_path(path, "nodeOverrides"), "overrides cannot nest"))
            continue
        try:
            MultusSettings.model_validate({**base_dump, **override.settings})
        except ValidationError as exc:
            found += from_validation_error(exc, path, unknown_field="unknown setting")
    for i, delegate in enumerate(settings.delegates or []):
        found += check_cni_conf(delegate, join_path(base, "delegates", i))
    found += _check_masters(settings.delegates or [], join_path(base, "delegates"))
    if settings.delegates is not None and settings.clusterNetwork:
        found.append(Problem(join_path(base, "delegates"), "give clusterNetwork or delegates"))
    errors = [p for p in found if p.is_error]
    return (None if errors else settings), found


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


def _check_masters(confs: list[Any], base: str) -> list[Problem]:
    """The seed's rule: at most one delegate is the master (primary) network."""
    masters = [i for i, c in enumerate(confs) if isinstance(c, dict) and c.get("masterplugin")]
    return [
        Problem(
            join_path(base, i, "masterplugin"),
            f"only one delegate can be the master; {join_path(base, masters[0])} already is",
        )
        for i in masters[1:]
    ]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (math.inf, -math.inf):
        raise ValueError(f"{text} is out of the range of a JSON number")
    return value


def _parse_json(text: Any, path: str) -> tuple[Any, Problem | None]:
    """Parse as the plugin does: NaN, Infinity and numbers beyond a double are refused."""
    if not isinstance(text, str):
        return None, Problem(path, "must be a string holding JSON")
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float), None
    except ValueError as exc:  # JSONDecodeError, our refusals, an int of >4300 digits
        return None, Problem(path, f"invalid JSON: {exc}")
    except RecursionError:
        return None, Problem(path, "invalid JSON: nested too deeply")


def delegate_confs(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The plugin confs a valid network object runs, `type` filled in (Network form)."""
    api_kind = kind_of(obj)
    if api_kind == NETWORK:
        confs = json.loads(obj.get("args") or "[]")
        return [{**c, "type": obj["plugin"]} for c in confs if isinstance(c, dict)]
    if api_kind == NAD:
        conf = json.loads((obj.get("spec") or {}).get("config") or "{}")
        if not isinstance(conf, dict):
            return []
        if isinstance(conf.get("plugins"), list):
            return [p for p in conf["plugins"] if isinstance(p, dict)]
        return [conf]
    return []
