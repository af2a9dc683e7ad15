"""Network objects -> delegate networks (pure: no API calls here).

The rulebook (`multus_rules.objects`) says what conf an object runs and when it is
refused, so the operator's Valid condition gives the same verdict with the same field:

- Seed `kubernetes.com/v1` `Network`: top-level `plugin` and `args` (a string holding a
  JSON list with exactly one conf); the delegate is
  `{"type": plugin, "name": <object name>, ...args[0]}`.
- NPWG `k8s.cni.cncf.io/v1` `NetworkAttachmentDefinition`: `spec.config` is a conf or
  conflist (JSON string); `name` is injected when missing (NPWG §3.4.2); an empty
  config means the conf file in `confDir` whose network has that name (a conflist wins
  over a conf).
"""

from __future__ import annotations

import os

from multus_rules import objects as rules

from ..errors import DecodeFailure, InvalidConfig, IoFailure, refusal
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


def seed_network_delegate(obj: dict[str, Any], ref: str, cni_version: str) -> DelegateNetwork:
    """A seed Network object -> its delegate (the seed's YAML files work unchanged)."""
    where = f"Network {ref}: "
    name = _name(obj)
    conf, found = rules.seed_network_conf(name, obj.get("plugin"), obj.get("args"))
    if conf is None:
        raise refusal(found[0], where)
    return parse_delegate(conf, f"{where}args[0].", cni_version, name)


def nad_delegate(obj: dict[str, Any], ref: str, cni_version: str, conf_dir: str) -> DelegateNetwork:
    """A NetworkAttachmentDefinition -> its delegate network."""
    where = f"NetworkAttachmentDefinition {ref}"
    name = _name(obj)
    conf, found = rules.nad_conf(obj.get("spec"))
    if found:
        raise refusal(found[0], f"{where}: ")
    if conf is None:
        return conf_file_by_name(name, conf_dir, cni_version, where)
    return parse_delegate(conf, f"{where}: spec.config.", cni_version, name)


def _name(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) else ""


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
