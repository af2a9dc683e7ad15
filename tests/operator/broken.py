"""Broken network objects, each with the one message the checks must give for it.

Shared by the validation, multusctl, operator and webhook tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SEED_NETWORKS = ("flannel-conf.yaml", "sriov-conf.yaml", "sriov-vlanid-l2enable-conf.yaml")


def seed(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())  # type: ignore[no-any-return]


def network(name: str, plugin: str, args: Any) -> dict[str, Any]:
    text = args if isinstance(args, str) else json.dumps(args)
    return {
        "apiVersion": "kubernetes.com/v1",
        "kind": "Network",
        "metadata": {"name": name, "namespace": "default"},
        "plugin": plugin,
        "args": text,
    }


def nad(name: str, config: Any) -> dict[str, Any]:
    text = config if isinstance(config, str) else json.dumps(config)
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"config": text},
    }


_IPAM = {
    "type": "host-local",
    "subnet": "10.56.217.0/24",
    "rangeStart": "10.56.218.1",
    "rangeEnd": "10.56.217.181",
}

# (object, the exact first error message)
BROKEN: dict[str, tuple[dict[str, Any], str]] = {
    "bad-json": (
        network("bad-json", "sriov", '[{"if0": "enp2s0",]'),
        "args: invalid JSON: Expecting property name enclosed in double quotes:"
        " line 1 column 19 (char 18)",
    ),
    "plugin-path": (
        network("plugin-path", "../x", [{}]),
        "plugin: '../x' is not a plain plugin name",
    ),
    "nad-type-path": (
        nad("nad-type-path", {"cniVersion": "1.0.0", "type": "../x"}),
        "spec.config.type: '../x' is not a plain plugin name",
    ),
    "range-outside": (
        network("range-outside", "sriov", [{"if0": "enp12s0f1", "ipam": _IPAM}]),
        "args[0].ipam.rangeStart: 10.56.218.1 is outside subnet 10.56.217.0/24",
    ),
    "two-masters": (
        network(
            "two-masters",
            "bridge",
            [{"bridge": "br0", "masterplugin": True}, {"bridge": "br1", "masterplugin": True}],
        ),
        "args[1].masterplugin: only one delegate can be the master; args[0] already is",
    ),
    "unknown-sriov-field": (
        network("unknown-sriov-field", "sriov", [{"if0": "enp2s0", "vlanid": 210}]),
        "args[0].vlanid: unknown sriov field",
    ),
}


def fixed(name: str) -> dict[str, Any]:
    """The same object as BROKEN[name], corrected."""
    fixes: dict[str, dict[str, Any]] = {
        "bad-json": network("bad-json", "sriov", [{"if0": "enp2s0"}]),
        "plugin-path": network("plugin-path", "x", [{}]),
        "nad-type-path": nad("nad-type-path", {"cniVersion": "1.0.0", "type": "x"}),
        "range-outside": network(
            "range-outside",
            "sriov",
            [{"if0": "enp12s0f1", "ipam": {**_IPAM, "rangeStart": "10.56.217.171"}}],
        ),
        "two-masters": network(
            "two-masters", "bridge", [{"bridge": "br0", "masterplugin": True}, {"bridge": "br1"}]
        ),
        "unknown-sriov-field": network("unknown-sriov-field", "sriov", [{"if0": "enp2s0"}]),
    }
    return fixes[name]
