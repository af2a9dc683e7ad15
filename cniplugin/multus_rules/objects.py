"""Network objects -> the network conf the plugin runs.

- The seed's `kubernetes.com/v1` `Network`: top-level `plugin` (a plugin name) and
  `args`, a string holding a JSON list with exactly one conf (the delegate's keys,
  `type` optional and then equal to `plugin`). The conf run is
  `{"type": plugin, "name": <object name>, ...args[0]}`.
- NPWG's `NetworkAttachmentDefinition`: `spec.config`, a string holding a conf or a
  conflist; `name` defaults to the object's name; an empty config names the conf file
  of that name on the node (which only the node can read).

Both return `(conf, findings)`: the conf when there is no error. The conf itself is
then held to `confs.check_network` at `args[0]` / `spec.config`.
"""

from __future__ import annotations

from . import cnijson
from .confs import MAX_CONF_BYTES
from .findings import Finding
from .names import plugin_type_problem

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SEED_ARGS_SHAPE = "a JSON list holding exactly one conf"


def parse_json_text(text: str, path: str) -> tuple[Any, Finding | None]:
    """A JSON document embedded in an object, read as the plugin reads it."""
    if len(text) > MAX_CONF_BYTES:
        return None, Finding(path, f"larger than {MAX_CONF_BYTES} bytes")
    try:
        return cnijson.loads(text), None
    except cnijson.TooDeep as exc:  # "is nested more than 64 levels deep"
        return None, Finding(path, str(exc))
    except ValueError as exc:  # also UnicodeDecodeError, an int of more than 4300 digits
        return None, Finding(path, f"invalid JSON: {exc}")


def seed_network_conf(
    name: str, plugin: Any, args: Any
) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The conf a seed `Network` object runs, or the findings that refuse it."""
    found: list[Finding] = []
    why = plugin_type_problem(plugin)
    if why:
        found.append(Finding("plugin", why))
    conf: dict[str, Any] = {}
    if args is not None:
        if not isinstance(args, str):
            found.append(
                Finding(
                    "args",
                    f"must be a string holding {SEED_ARGS_SHAPE}, not {cnijson.type_name(args)}",
                )
            )
            return None, found
        doc, problem = parse_json_text(args, "args")
        if problem is not None:
            found.append(problem)
        elif not isinstance(doc, list):
            found.append(
                Finding("args", f"must be {SEED_ARGS_SHAPE}, not {cnijson.type_name(doc)}")
            )
        elif len(doc) != 1:
            found.append(Finding("args", f"must hold exactly one conf, found {len(doc)}"))
        elif not isinstance(doc[0], dict):
            found.append(
                Finding("args[0]", f"must be a JSON object, not {cnijson.type_name(doc[0])}")
            )
        else:
            conf = doc[0]
            if "type" in conf and conf["type"] != plugin:
                found.append(
                    Finding("args[0].type", f"{conf['type']!r} differs from plugin {plugin!r}")
                )
    if found:
        return None, found
    return {"type": plugin, "name": name, **conf}, found


def nad_conf(spec: Any) -> tuple[dict[str, Any] | None, list[Finding]]:
    """The conf of a NetworkAttachmentDefinition's spec; (None, []) for an empty
    config (the node's conf file with the object's name is used)."""
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        return None, [Finding("spec", f"must be an object, not {cnijson.type_name(spec)}")]
    config = spec.get("config")
    if config is None:
        config = ""
    if not isinstance(config, str):
        return None, [
            Finding(
                "spec.config",
                f"must be a string holding a JSON conf, not {cnijson.type_name(config)}",
            )
        ]
    if not config.strip():
        return None, []
    doc, problem = parse_json_text(config, "spec.config")
    if problem is not None:
        return None, [problem]
    if not isinstance(doc, dict):
        return None, [
            Finding("spec.config", f"must be a JSON object, not {cnijson.type_name(doc)}")
        ]
    return doc, []
