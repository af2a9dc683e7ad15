"""Network objects -> delegate networks (pure: no API calls here).

- Seed `kubernetes.com/v1` `Network`: top-level `plugin` and `args` (a string holding a
  JSON list with one object, or one object); the delegate is
  `{"type": plugin, "name": <object name>, ...that object}`.
- NPWG `k8s.cni.cncf.io/v1` `NetworkAttachmentDefinition`: `spec.config` is a conf or
  conflist (JSON string); `name` is injected when missing (NPWG §3.4.2); an empty
  config means the conf file in `confDir` whose network has that name (a conflist wins
  over a conf).
"""

from __future__ import annotations

import os

from .. import cnijson
from ..errors import DecodeFailure, InvalidConfig, IoFailure
from ..netconf import CONF_EXTENSIONS, MAX_CONF_BYTES, DelegateNetwork, decode, parse_delegate

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

NETWORK_API = "/apis/kubernetes.com/v1"
NAD_API = "/apis/k8s.cni.cncf.io/v1"
MAX_CONF_FILES = 512


def network_path(namespace: str, name: str) -> str:
    return f"{NETWORK_API}/namespaces/{namespace}/networks/{name}"


def nad_path(namespace: str, name: str) -> str:
    return f"{NAD_API}/namespaces/{namespace}/network-attachment-definitions/{name}"


def _json(text: str, where: str) -> Any:
    if len(text) > MAX_CONF_BYTES:
        raise InvalidConfig(f"{where}: larger than {MAX_CONF_BYTES} bytes")
    try:
        return cnijson.loads(text)
    except ValueError as exc:
        raise InvalidConfig(f"{where}: not valid JSON: {exc}") from None


def seed_network_delegate(obj: dict[str, Any], ref: str, cni_version: str) -> DelegateNetwork:
    """A seed Network object -> its delegate (the seed's YAML files work unchanged)."""
    where = f"Network {ref}"
    meta = obj.get("metadata") or {}
    name = meta.get("name") if isinstance(meta, dict) else None
    plugin = obj.get("plugin")
    if not isinstance(plugin, str) or not plugin:
        raise InvalidConfig(f"{where}: plugin must be a non-empty string, not {plugin!r}")
    args: Any = obj.get("args", {})
    if isinstance(args, str):
        args = _json(args, f"{where}: args") if args.strip() else {}
    if isinstance(args, list):
        if len(args) != 1:
            raise InvalidConfig(f"{where}: args must hold exactly one object, found {len(args)}")
        args = args[0]
    if not isinstance(args, dict):
        raise InvalidConfig(f"{where}: args must be a JSON object (or a list with one)")
    conf: dict[str, Any] = {"type": plugin, "name": name, **args}
    return parse_delegate(conf, f"{where}: ", cni_version, str(name))


def nad_delegate(obj: dict[str, Any], ref: str, cni_version: str, conf_dir: str) -> DelegateNetwork:
    """A NetworkAttachmentDefinition -> its delegate network."""
    where = f"NetworkAttachmentDefinition {ref}"
    meta = obj.get("metadata") or {}
    name = str(meta.get("name", "")) if isinstance(meta, dict) else ""
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        raise InvalidConfig(f"{where}: spec must be an object")
    config = spec.get("config", "")
    if config is None:
        config = ""
    if not isinstance(config, str):
        raise InvalidConfig(f"{where}: spec.config must be a JSON string")
    if not config.strip():
        return conf_file_by_name(name, conf_dir, cni_version, where)
    doc = _json(config, f"{where}: spec.config")
    if not isinstance(doc, dict):
        raise InvalidConfig(f"{where}: spec.config must be a JSON object")
    return parse_delegate(doc, f"{where}: spec.config.", cni_version, name)


def conf_file_by_name(name: str, conf_dir: str, cni_version: str, where: str) -> DelegateNetwork:
    """The conf file in `conf_dir` whose network is called `name` (libcni order; a
    conflist wins over a conf)."""
    network = find_conf_file(name, conf_dir, cni_version, f"{where}: spec.config is empty and")
    if network is None:
        raise InvalidConfig(
            f"{where}: spec.config is empty and no conf file in {conf_dir} has name {name!r}"
        )
    return network


def find_conf_file(name: str, conf_dir: str, cni_version: str, why: str) -> DelegateNetwork | None:
    """`conf_file_by_name` without the error when no file has that name; `why` starts the
    message when `conf_dir` cannot be listed."""
    try:
        files = sorted(
            f for f in os.listdir(conf_dir) if f.endswith(CONF_EXTENSIONS) and not f.startswith(".")
        )[:MAX_CONF_FILES]
    except OSError as exc:
        raise IoFailure(f"{why} confDir {conf_dir} cannot be listed: {exc.strerror}") from None
    found: list[tuple[str, dict[str, Any]]] = []
    for file in files:
        path = os.path.join(conf_dir, file)
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_CONF_BYTES + 1)
            doc = decode(data)
        except (OSError, DecodeFailure):  # unreadable or invalid files are not the one sought
            continue
        if doc.get("name") == name:
            found.append((path, doc))
    if not found:
        return None
    path, doc = next((f for f in found if f[0].endswith(".conflist")), found[0])
    return parse_delegate(doc, f"{path}: ", cni_version, name)
