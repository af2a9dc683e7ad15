"""Validation is total: any input gives a report (never an exception), every problem
names a field path, and the webhook, status and CLI can rely on that."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multus_api.plugins import PLUGIN_MODELS
from multus_operator.validation import validate_object

KEYS = st.sampled_from(
    ["type", "ipam", "subnet", "rangeStart", "rangeEnd", "gateway", "routes", "dst", "gw",
     "ranges", "addresses", "address", "range", "range_start", "if0", "vlan", "vlanQoS",
     "deviceID", "masterplugin", "plugins", "delegate", "mode", "master", "mtu", "sysctl",
     "spoofchk", "min_tx_rate", "max_tx_rate", "dpdk", "exclude", "ipRanges", "x"]
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5000),
    st.sampled_from(["10.1.2.3", "10.1.0.0/16", "::1", "2001:db8::/64", "eth0", "../x", ""]),
    st.sampled_from(["host-local", "static", "whereabouts", "dhcp", *PLUGIN_MODELS]),
    st.text(max_size=8),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
    max_leaves=25,
)
CONF = st.dictionaries(KEYS, JSON, max_size=6)
# Shaped like the real thing more often than not, so the plugin and IPAM checks run.
ARGS = st.one_of(st.lists(CONF, min_size=1, max_size=3), JSON)
CONFIG = st.one_of(
    st.builds(lambda t, c: {**c, "type": t}, st.sampled_from(sorted(PLUGIN_MODELS)), CONF),
    st.builds(lambda ps: {"cniVersion": "1.0.0", "name": "l", "plugins": ps}, st.lists(CONF)),
    JSON,
)


def _paths_ok(obj: Any) -> None:
    report = validate_object(obj)
    for problem in report.problems:
        assert problem.message
        assert str(problem) == (
            f"{problem.path}: {problem.message}" if problem.path else problem.message
        )
    assert report.summary()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plugin=st.sampled_from([*PLUGIN_MODELS, "../x", "vhostuser"]), args=ARGS)
def test_any_network_args(plugin: str, args: Any) -> None:
    _paths_ok(
        {
            "apiVersion": "kubernetes.com/v1",
            "kind": "Network",
            "metadata": {"name": "n"},
            "plugin": plugin,
            "args": json.dumps(args),
        }
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=CONFIG)
def test_any_nad_config(config: Any) -> None:
    _paths_ok(
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "n"},
            "spec": {"config": json.dumps(config)},
        }
    )


@settings(max_examples=200, deadline=None)
@given(obj=JSON)
def test_any_object(obj: Any) -> None:
    _paths_ok(obj)
