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

PLAIN_NAME = "a letter or digit, then letters, digits, '_', '.' or '-' (no path)"

# What the plugin refuses before it runs anything: Invalid, refused at admission.
# (object, the exact first error message)
BROKEN: dict[str, tuple[dict[str, Any], str]] = {
    "bad-json": (
        network("bad-json", "sriov", '[{"if0": "enp2s0",]'),
        "args: invalid JSON: Expecting property name enclosed in double quotes:"
        " line 1 column 19 (char 18)",
    ),
    "plugin-path": (
        network("plugin-path", "../x", [{}]),
        f"plugin: '../x' is not a plain plugin name: {PLAIN_NAME}",
    ),
    "nad-type-path": (
        nad("nad-type-path", {"cniVersion": "1.0.0", "type": "../x"}),
        f"spec.config.type: '../x' is not a plain plugin name: {PLAIN_NAME}",
    ),
    "two-confs": (
        network(
            "two-confs",
            "bridge",
            [{"bridge": "br0", "masterplugin": True}, {"bridge": "br1", "masterplugin": True}],
        ),
        "args: must hold exactly one conf, found 2",
    ),
    "bad-if0name": (
        network("bad-if0name", "sriov", [{"if0": "enp2s0", "if0name": "net/1"}]),
        "args[0].if0name: 'net/1' may not contain '/'",
    ),
    "nad-version": (
        nad("nad-version", {"cniVersion": "0.2.0", "type": "bridge"}),
        "spec.config.cniVersion: '0.2.0' is not supported"
        " (supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)",
    ),
}

# What only the delegate plugin can judge when it runs: Valid, with a warning.
# (object, the exact first warning)
WARNED: dict[str, tuple[dict[str, Any], str]] = {
    "range-outside": (
        network("range-outside", "sriov", [{"if0": "enp12s0f1", "ipam": _IPAM}]),
        "args[0].ipam.rangeStart: 10.56.218.1 is outside subnet 10.56.217.0/24",
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
        "two-confs": network("two-confs", "bridge", [{"bridge": "br0", "masterplugin": True}]),
        "bad-if0name": network("bad-if0name", "sriov", [{"if0": "enp2s0", "if0name": "net1"}]),
        "nad-version": nad("nad-version", {"cniVersion": "0.3.1", "type": "bridge"}),
    }
    return fixes[name]
