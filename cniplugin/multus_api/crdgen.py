"""Generate the CustomResourceDefinitions from the pydantic models.

    python -m multus_api.crdgen crds/          # write the YAMLs
    python -m multus_api.crdgen --check crds/  # exit 1 if a file differs

pydantic's JSON Schema is turned into a Kubernetes *structural* schema: references
inlined, `null` alternatives dropped (absence means null), free-form maps marked
`x-kubernetes-preserve-unknown-fields`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from . import inventory, objects

_API_VERSION_DOC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers"
    " should convert recognized schemas to the latest internal value, and may reject"
    " unrecognized values. More info:"
    " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"
)
_KIND_DOC = (
    "Kind is a string value representing the REST resource this object represents. Servers"
    " may infer this from the endpoint the client submits requests to. Cannot be updated. In"
    " CamelCase. More info:"
    " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"
)
_NAD_DOC = (
    "NetworkAttachmentDefinition is a CRD schema specified by the Network Plumbing Working"
    " Group to express the intent for attaching pods to one or more logical or physical"
    " networks. More information available at:"
    " https://github.com/k8snetworkplumbingwg/multi-net-spec"
)
_DROP = frozenset({"title", "default", "$defs", "format"})


def structural(model: type[BaseModel]) -> dict[str, Any]:
    """The structural OpenAPI v3 schema of a model."""
    raw = model.model_json_schema(mode="validation")
    schema: dict[str, Any] = _convert(raw, raw.get("$defs", {}))
    return schema


def _convert(node: Any, defs: dict[str, Any]) -> Any:
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _convert(merged, defs)
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if o != {"type": "null"}]
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if len(options) == 1:
            return _convert({**options[0], **rest}, defs)
        return {**_convert(rest, defs), "x-kubernetes-preserve-unknown-fields": True}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "description" and isinstance(value, str):
            out[key] = " ".join(value.split())
        elif key == "const":
            out["enum"] = [value]
        elif key == "properties":
            out["properties"] = {k: _convert(v, defs) for k, v in value.items()}
        elif key == "items":
            out["items"] = _convert(value, defs)
        elif key == "additionalProperties":
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif isinstance(value, dict):
                out["additionalProperties"] = _convert(value, defs)
        else:
            out[key] = value
    if not out.get("type") and "enum" not in out and "properties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if (
        out.get("type") == "object"
        and "properties" not in out
        and "additionalProperties" not in out
    ):
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _object_root(model: type[BaseModel], required: list[str]) -> dict[str, Any]:
    schema = structural(model)
    props = schema["properties"]
    props["apiVersion"] = {"description": _API_VERSION_DOC, "type": "string"}
    props["kind"] = {"description": _KIND_DOC, "type": "string"}
    props["metadata"] = {"type": "object"}
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)
    if "status" in props:
        conditions = props["status"].get("properties", {}).get("conditions")
        if conditions is not None:
            conditions["x-kubernetes-list-type"] = "map"
            conditions["x-kubernetes-list-map-keys"] = ["type"]
    return schema


def _condition_column(kind: str) -> dict[str, Any]:
    return {
        "name": kind,
        "type": "string",
        "jsonPath": f'.status.conditions[?(@.type=="{kind}")].status',
        "description": f"The {kind} condition.",
    }


_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def network_crd() -> dict[str, Any]:
    schema = _object_root(objects.Network, ["plugin"])
    schema["x-kubernetes-validations"] = [
        {
            "rule": "!has(self.args) || self.args.matches('^\\\\s*\\\\[')",
            "message": "args must be a JSON list, e.g. '[{\"delegate\": {}}]'",
        }
    ]
    return _crd(
        group=objects.NETWORK_GROUP,
        plural="networks",
        singular="network",
        kind="Network",
        short=["net"],
        scope="Namespaced",
        schema=schema,
        columns=[
            _condition_column("Valid"),
            _condition_column("Ready"),
            {"name": "Plugin", "type": "string", "jsonPath": ".plugin"},
            _AGE,
        ],
        status=True,
    )


def nad_crd() -> dict[str, Any]:
    """NPWG's schema, unchanged, so this CRD can replace or coexist with upstream's."""
    spec = structural(objects.NetworkAttachmentDefinitionSpec)
    spec["description"] = (
        "NetworkAttachmentDefinition spec defines the desired state of a network attachment"
    )
    schema = {
        "description": _NAD_DOC,
        "type": "object",
        "properties": {
            "apiVersion": {"description": _API_VERSION_DOC, "type": "string"},
            "kind": {"description": _KIND_DOC, "type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
        },
    }
    return _crd(
        group=objects.NAD_GROUP,
        plural="network-attachment-definitions",
        singular="network-attachment-definition",
        kind="NetworkAttachmentDefinition",
        short=["net-attach-def"],
        scope="Namespaced",
        schema=schema,
        columns=[_AGE],
        status=False,
    )


def nodestate_crd() -> dict[str, Any]:
    schema = _object_root(objects.NodeState, [])
    pfs = schema["properties"]["status"]["properties"]["pfs"]
    pfs["items"]["x-kubernetes-validations"] = [
        {"rule": rule.cel(), "message": rule.message} for rule in inventory.PF_RULES
    ]
    return _crd(
        group=objects.NODESTATE_GROUP,
        plural="nodestates",
        singular="nodestate",
        kind="NodeState",
        short=["mns"],
        scope="Cluster",
        schema=schema,
        columns=[
            {"name": "PFs", "type": "string", "jsonPath": ".status.pfs[*].name"},
            {"name": "Reported", "type": "date", "jsonPath": ".status.observedTime"},
            _AGE,
        ],
        status=True,
    )


def _crd(
    *,
    group: str,
    plural: str,
    singular: str,
    kind: str,
    short: list[str],
    scope: str,
    schema: dict[str, Any],
    columns: list[dict[str, Any]],
    status: bool,
) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": objects.VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": schema},
        "additionalPrinterColumns": columns,
    }
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "scope": scope,
            "names": {
                "plural": plural,
                "singular": singular,
                "kind": kind,
                "listKind": f"{kind}List",
                "shortNames": short,
                "categories": ["multus"],
            },
            "versions": [version],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """File name -> CRD, for every kind we ship."""
    crds = [network_crd(), nad_crd(), nodestate_crd()]
    return {f"{crd['metadata']['name']}.yaml": crd for crd in crds}


def render_yaml(crd: dict[str, Any]) -> str:
    header = "# Generated by `python -m multus_api.crdgen crds/`; do not edit.\n"
    return header + yaml.safe_dump(crd, sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m multus_api.crdgen", description=__doc__)
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for name, crd in all_crds().items():
        path = args.outdir / name
        text = render_yaml(crd)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"{path}: differs from the generator's output", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
