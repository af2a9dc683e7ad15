"""The checks behind status conditions, the webhook and `multusctl validate`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from multus_operator.validation import parse_settings, validate_object
from tests.operator.broken import BROKEN, SEED_NETWORKS, WARNED, fixed, nad, network, seed


@pytest.mark.parametrize("name", SEED_NETWORKS)
def test_seed_networks_are_valid(name: str) -> None:
    report = validate_object(seed(name))
    assert report.valid and report.problems == ()


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_object_names_the_field(name: str) -> None:
    obj, message = BROKEN[name]
    report = validate_object(obj)
    assert not report.valid
    assert str(report.errors[0]) == message
    assert report.summary().startswith(message)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_fixed_object_is_valid(name: str) -> None:
    assert validate_object(fixed(name)).valid


@pytest.mark.parametrize("name", sorted(WARNED))
def test_what_the_delegate_judges_is_a_warning(name: str) -> None:
    obj, message = WARNED[name]
    report = validate_object(obj)
    assert report.valid
    assert str(report.warnings[0]) == message
    assert report.summary() == f"valid with warnings: {message}"


def test_seed_multus_conf_with_delegates() -> None:
    conf: dict[str, Any] = {
        "name": "multus-demo-network",
        "type": "multus",
        "delegates": [
            {"type": "sriov", "if0": "enp12s0f0", "ipam": {"type": "host-local",
             "subnet": "10.56.217.0/24", "rangeStart": "10.56.217.131",
             "rangeEnd": "10.56.217.190", "routes": [{"dst": "0.0.0.0/0"}],
             "gateway": "10.56.217.1"}},
            {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.168.1.0/24",
             "rangeStart": "10.168.1.11", "rangeEnd": "10.168.1.20",
             "routes": [{"dst": "0.0.0.0/0"}], "gateway": "10.168.1.1"}},
            {"type": "flannel", "masterplugin": True, "delegate": {"isDefaultGateway": True}},
        ],
    }  # fmt: skip
    assert validate_object(conf).valid
    conf["delegates"][0]["masterplugin"] = True
    report = validate_object(conf)
    assert [str(p) for p in report.errors] == [
        "delegates[2].masterplugin: only one delegate may be the master,"
        " found delegates[0], delegates[2]"
    ]


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"type": "macvlan", "master": "eth0", "mode": "bogus"}, "spec.config.mode: input should"),
        ({"type": "bridge", "vlan": 5000}, "spec.config.vlan: input should be less than"),
        ({"type": "sriov", "deviceID": "0000:02:00.1", "spoofchk": "no"}, "spec.config.spoofchk"),
        ({"type": "sriov", "vlanQoS": 3}, "spec.config.vlanQoS: needs a non-zero vlan"),
        (
            {"type": "sriov", "min_tx_rate": 100, "max_tx_rate": 10},
            "spec.config.min_tx_rate: 100 is above max_tx_rate 10",
        ),
        (
            {"type": "sriov", "deviceID": "0000:02:00.1", "vf": 1},
            "spec.config.vf: a fixed VF index needs if0 (its PF)",
        ),
        ({"type": "sriov", "vlanProto": "802.1ad"}, "spec.config.vlanProto: needs a vlan"),
        (
            {"type": "static", "ipam": {"type": "static", "addresses": [{"address": "10.1.1.1"}]}},
            "spec.config.ipam.addresses[0].address: 10.1.1.1 needs a prefix length",
        ),
        (
            {"type": "ptp", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.2.0.0/16",
             "gateway": "10.3.0.1"}]]}},
            "spec.config.ipam.ranges[0][0].gateway: 10.3.0.1 is outside subnet 10.2.0.0/16",
        ),
        (
            {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.2.0.0/16",
             "routes": [{"dst": "nowhere"}]}},
            "spec.config.ipam.routes[0].dst: 'nowhere' is not a CIDR (address/prefix)",
        ),
        (
            {"type": "macvlan", "ipam": {"type": "whereabouts", "range": "10.9.0.0/24",
             "range_start": "10.9.1.5"}},
            "spec.config.ipam.range_start: 10.9.1.5 is outside range 10.9.0.0/24",
        ),
        (
            {"type": "macvlan", "ipam": {"type": "host-local", "subnet": "10.2.0.0/16",
             "rangeStart": "10.2.0.50", "rangeEnd": "10.2.0.10"}},
            "spec.config.ipam.rangeEnd: 10.2.0.10 is before rangeStart 10.2.0.50",
        ),
        ({"type": "tuning", "sysctl": {"net.ipv4.ip_forward": 1}}, "spec.config.sysctl.net"),
        ({"type": "bandwidth", "ingressRate": -1}, "spec.config.ingressRate: input should be"),
        ({"type": "portmap", "markMasqBit": 40}, "spec.config.markMasqBit: input should be"),
        (
            {"plugins": [{"type": "bridge"}, {"type": "tuning", "mac": "zz"}]},
            "spec.config.plugins[1].mac: string should match pattern",
        ),
        ({"type": "bridge", "plugins": [{"type": "bridge"}]}, "spec.config.type: ignored"),
        ({"type": "bridge", "mtu": 0, "ipam": {"type": "host-local"}}, "spec.config.ipam.subnet"),
    ],
)  # fmt: skip
def test_nad_delegate_problems_are_warnings(conf: Any, message: str) -> None:
    """The delegate plugin judges its own keys when it runs: multus attaches the network
    and hands it the conf, so the operator warns and says Valid."""
    report = validate_object(nad("n", conf))
    assert report.valid, report.errors
    assert any(str(w).startswith(message) for w in report.warnings), report.warnings


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ({"plugins": []}, "spec.config.plugins: must be a non-empty list"),
        ('["not", "an", "object"]', "spec.config: must be a JSON object, not an array"),
        ({"type": "bridge\n"}, "spec.config.type: 'bridge\\n' is not a plain plugin name"),
        ({"type": "bridge", "ipam": {"type": "/bin/sh"}}, "spec.config.ipam.type: '/bin/sh'"),
        ({"type": "bridge", "name": "my net"}, "spec.config.name: 'my net' must match"),
        ({"type": "bridge", "if0name": 5}, "spec.config.if0name: must be a string"),
        ({"type": "bridge", "masterplugin": "yes"}, "spec.config.masterplugin: must be true"),
        ({"plugins": [{"type": "bridge"}, "x"]}, "spec.config.plugins[1]: must be a JSON object"),
    ],
)  # fmt: skip
def test_nad_errors_are_what_the_plugin_refuses(conf: Any, message: str) -> None:
    report = validate_object(nad("n", conf))
    assert not report.valid
    assert str(report.errors[0]).startswith(message), report.errors


@pytest.mark.parametrize(
    "conf",
    [
        {"type": "bridge", "ipam": {}},
        {"type": "bridge", "mtu": 0},
        {"cniVersion": "1.0.0", "name": "l", "type": "bridge", "plugins": [{"type": "bridge"}]},
    ],
)
def test_what_the_plugins_take_is_valid(conf: Any) -> None:
    """These were Invalid, yet multus and the plugins themselves take them."""
    report = validate_object(nad("n", conf))
    assert report.valid, report.errors


@pytest.mark.parametrize(
    "conf",
    [
        {"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0", "mode": "bridge",
         "ipam": {"type": "dhcp"}},
        {"cniVersion": "1.0.0", "type": "ipvlan", "master": "eth0", "mode": "l3",
         "ipam": {"type": "static", "addresses": [{"address": "10.10.0.1/24",
                                                   "gateway": "10.10.0.254"}]}},
        {"cniVersion": "1.0.0", "name": "l", "plugins": [
            {"type": "bridge", "bridge": "mybr0", "isGateway": True, "ipMasq": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.22.0.0/16"}],
                      [{"subnet": "2001:db8::/64"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "tuning", "sysctl": {"net.core.somaxconn": "500"}},
            {"type": "bandwidth", "ingressRate": 1000, "ingressBurst": 100},
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}]},
        {"type": "host-device", "device": "eth1"},
        {"type": "sriov", "deviceID": "0000:02:00.1", "vlan": 100, "vlanQoS": 2,
         "mac": "aa:bb:cc:dd:ee:ff", "spoofchk": "off", "trust": "on", "link_state": "auto",
         "min_tx_rate": 10, "max_tx_rate": 100, "ipam": {"type": "whereabouts",
         "range": "192.168.2.225/28", "exclude": ["192.168.2.229/30"]}},
        {"type": "sriov", "if0": "enp2s0", "dpdk": {"kernel_driver": "ixgbevf",
         "dpdk_driver": "igb_uio", "dpdk_tool": "/opt/dpdk/usertools/dpdk-devbind.py"}},
        {"type": "calico", "etcd_endpoints": "http://127.0.0.1:2379", "ipam": {"type":
         "calico-ipam"}, "feature_control": {"floating_ips": True}},
        {"type": "weave-net", "hairpinMode": True},
        {"type": "cilium-cni", "enable-debug": False},
        {"type": "flannel", "delegate": {"isDefaultGateway": True}},
    ],
)  # fmt: skip
def test_nad_valid_confs(conf: Any) -> None:
    report = validate_object(nad("n", conf))
    assert report.valid, report.errors


@pytest.mark.parametrize(
    "conf",
    [
        # multus injects deviceID into an if0 conf from the NAD's resourceName; the delegate
        # takes that VF and checks it belongs to if0
        {"type": "sriov", "if0": "enp2s0", "deviceID": "0000:02:00.1"},
        # a DPDK VF's addresses are allocated and reported (the DPDK app configures them)
        {"type": "sriov", "deviceID": "0000:02:00.1", "dpdk": {"kernel_driver": "ixgbevf",
         "dpdk_driver": "vfio-pci"}, "ipam": {"type": "host-local", "subnet": "10.1.0.0/24"}},
    ],
)  # fmt: skip
def test_sriov_confs_our_delegate_accepts_get_no_warning(conf: Any) -> None:
    """The operator judges an sriov conf by the delegate's own rules (multus_rules.sriov):
    what the delegate accepts draws neither an error nor a warning."""
    report = validate_object(nad("n", conf))
    assert report.valid and not report.warnings, (report.errors, report.warnings)


def test_unknown_plugin_is_valid_with_a_warning() -> None:
    report = validate_object(nad("n", {"type": "vhostuser", "vhost": {}}))
    assert report.valid
    assert [str(w) for w in report.warnings] == [
        "spec.config.type: unknown plugin 'vhostuser': not checked"
    ]
    assert report.summary().startswith("valid with warnings: ")


def test_unknown_bridge_field_is_a_warning_not_an_error() -> None:
    report = validate_object(nad("n", {"type": "bridge", "brdige": "br0"}))
    assert report.valid
    assert [str(w) for w in report.warnings] == ["spec.config.brdige: unknown bridge field"]


def test_network_args_type_must_match_plugin() -> None:
    report = validate_object(network("n", "flannel", [{"type": "bridge"}]))
    assert [str(p) for p in report.errors] == [
        "args[0].type: 'bridge' differs from plugin 'flannel'"
    ]


def test_network_args_must_be_a_list() -> None:
    report = validate_object(network("n", "flannel", json.dumps({"delegate": {}})))
    assert [str(p) for p in report.errors] == [
        "args: must be a JSON list holding exactly one conf, not an object"
    ]


def test_settings_problems_name_the_key() -> None:
    settings, problems = parse_settings("mode: thin\nlogLevel: loud\n", "settings")
    assert settings is None
    assert str(problems[0]) == (
        "settings.logLevel: 'loud' is not one of debug, verbose, error, panic"
    )
    text = "nodeOverrides:\n- nodeSelector: {matchLabels: {a: b}}\n  settings: {mode: fat}\n"
    settings, problems = parse_settings(text, "s")
    assert settings is None
    assert str(problems[0]).startswith("s.nodeOverrides[0].settings.mode: input should be")
    settings, problems = parse_settings("colour: blue\n", "s")
    assert [str(p) for p in problems] == ["s.colour: unknown setting"]
