"""Pure parts of Kubernetes mode (no root, no API): annotation parsing, network objects
to delegates (the seed's YAML files unchanged), settings, status entries and the NPWG
checks on results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from multus_cni.attachment import Attachment
from multus_cni.errors import CniError, InvalidConfig, InvalidEnvironment, IoFailure
from multus_cni.k8s import objects, selection, status
from multus_cni.k8s.resolve import PodRef, Reporter, Settings, pod_ref
from multus_cni.netconf import DelegateNetwork

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# ---- selection ----


def test_npwg_json_form_fields() -> None:
    text = json.dumps(
        [
            {
                "name": "blue",
                "namespace": "net-ns",
                "interface": "blue0",
                "ips": ["10.1.1.5/24", "fd00::5/64"],
                "mac": "0A:58:0a:01:01:05",
                "default-route": ["10.1.1.1"],
                "cni-args": {"foo": "bar"},
                "portMappings": [{"hostPort": 80, "containerPort": 8080}],
                "bandwidth": {"ingressRate": 100},
                "infiniband-guid": "c2:11:22:33:44:55:66:77",
                "some-future-key": 1,
            },
            {"name": "red"},
        ]
    )
    blue, red = selection.parse_npwg(text, "pod-ns")
    assert (blue.ref, blue.interface, blue.default_route) == ("net-ns/blue", "blue0", ["10.1.1.1"])
    assert blue.capability_args() == {
        "ips": ["10.1.1.5/24", "fd00::5/64"],
        "mac": "0A:58:0a:01:01:05",
        "portMappings": [{"hostPort": 80, "containerPort": 8080}],
        "bandwidth": {"ingressRate": 100},
        "infinibandGUID": "c2:11:22:33:44:55:66:77",
    }
    assert blue.cni_args == {"foo": "bar"}
    assert (red.ref, red.interface, red.capability_args()) == ("pod-ns/red", "", {})


def test_npwg_shorthand_form() -> None:
    items = selection.parse_npwg(" other/blue@b0 ,red, green@g1 ", "pod-ns")
    assert [(s.ref, s.interface) for s in items] == [
        ("other/blue", "b0"),
        ("pod-ns/red", ""),
        ("pod-ns/green", "g1"),
    ]
    assert selection.parse_npwg("  ", "pod-ns") == []


@pytest.mark.parametrize(
    "text",
    [
        "Blue",
        "blue-",
        "-blue",
        "bl_ue",
        "a" * 254,
        "ns.dotted/blue",
        ("n" * 64) + "/blue",
        "blue@",
        "blue@eth 0",
        "blue@a:b",
        "blue@..",
        "blue,,red",
        '[{"name": "blue", "interface": 5}]',
        '[{"namespace": "x"}]',
        '[{"name": "blue", "ips": ["10.0.0.1/33"]}]',
        '[{"name": "blue", "ips": ["10.0.0.1"], "mac": "0a:58"}]',
        '[{"name": "blue", "default-route": "10.0.0.1"}]',
        '[{"name": "blue", "default-route": ["10.0.0.1/24"]}]',
        '[{"name": "blue", "cni-args": []}]',
        '[{"name": "blue", "portMappings": [1]}]',
        '[{"name": "blue", "infiniband-guid": "zz"}]',
        "[" + ",".join(['{"name": "b"}'] * 65) + "]",
        "[1, 2",
    ],
)
def test_npwg_rejects(text: str) -> None:
    with pytest.raises(InvalidConfig):
        selection.parse_npwg(text, "pod-ns")


def test_dns1123_subdomain_names_allowed() -> None:
    (item,) = selection.parse_npwg("a.b-c.d9", "pod-ns")
    assert item.name == "a.b-c.d9"


def test_seed_annotation_of_the_seed_pod() -> None:
    doc = yaml.safe_load((EXAMPLES / "pod-multi-network.yaml").read_text())
    items = selection.parse_seed(doc["metadata"]["annotations"]["networks"], "default")
    assert [s.name for s in items] == [
        "flannel-conf",
        "sriov-conf",
        "sriov-vlanid-l2enable-conf",
    ]
    for bad in ("[]", '[{"name": 1}]', '{"name": "x"}', "flannel-conf"):
        with pytest.raises(InvalidConfig):
            selection.parse_seed(bad, "default")


def test_oversized_annotation_refused_before_parsing() -> None:
    text = "[" + " " * (selection.MAX_ANNOTATION_BYTES + 1) + "]"
    with pytest.raises(InvalidConfig, match="more than 262144"):
        selection.parse_npwg(text, "pod-ns")


def test_default_network_annotation() -> None:
    item = selection.parse_default_network("cluster-net", "kube-system")
    assert item.ref == "kube-system/cluster-net"
    with pytest.raises(InvalidConfig, match="exactly one"):
        selection.parse_default_network("a, b", "kube-system")


# ---- objects ----


def _seed_object(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return doc


def test_seed_yaml_files_unchanged_give_the_seed_delegates() -> None:
    flannel = objects.seed_network_delegate(
        _seed_object("flannel-conf"), "default/flannel-conf", "0.3.1"
    )
    assert (flannel.name, flannel.plugins) == (
        "flannel-conf",
        [{"type": "flannel", "delegate": {"isDefaultGateway": True}}],
    )
    sriov = objects.seed_network_delegate(_seed_object("sriov-conf"), "default/sriov-conf", "0.3.1")
    assert sriov.plugins[0]["type"] == "sriov" and sriov.plugins[0]["if0"] == "enp12s0f1"
    assert sriov.plugins[0]["ipam"]["rangeStart"] == "10.56.217.171"
    vlan = objects.seed_network_delegate(
        _seed_object("sriov-vlanid-l2enable-conf"), "default/x", "0.3.1"
    )
    assert vlan.requested_ifname == "north"
    assert (vlan.plugins[0]["vlan"], vlan.plugins[0]["l2enable"]) == (210, True)


def test_seed_args_absent_runs_the_plugin_alone() -> None:
    obj = {"metadata": {"name": "n"}, "plugin": "bridge"}
    delegate = objects.seed_network_delegate(obj, "default/n", "1.0.0")
    assert (delegate.name, delegate.plugins) == ("n", [{"type": "bridge"}])


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            {"plugin": None, "args": "[{}]"},
            "Network default/n: plugin: must be a non-empty plugin name, not None",
        ),
        ({"args": "[{}, {}]"}, "Network default/n: args: must hold exactly one conf, found 2"),
        ({"args": "[]"}, "Network default/n: args: must hold exactly one conf, found 0"),
        ({"args": "[1]"}, "Network default/n: args[0]: must be a JSON object, not a number"),
        ({"args": "{bad"}, "Network default/n: args: invalid JSON: "),
        ({"args": '{"a": 1}'}, "Network default/n: args: must be a JSON list holding exactly one"),
        ({"args": {"a": 2}}, "Network default/n: args: must be a string holding a JSON list"),
        ({"args": ""}, "Network default/n: args: invalid JSON: "),
        ({"plugin": "../x", "args": "[{}]"}, "Network default/n: plugin: '../x' is not a plain"),
        (
            {"args": '[{"type": "flannel"}]'},
            "Network default/n: args[0].type: 'flannel' differs from plugin 'bridge'",
        ),
        ({"args": '[{"if0name": 7}]'}, "Network default/n: args[0].if0name: must be a string"),
    ],
)
def test_seed_object_rejects(obj: dict[str, Any], message: str) -> None:
    """The rulebook's shape, in the operator's words: the CRD's CEL rule refuses an args
    that is no list, the plugin and the operator refuse what is not exactly one conf."""
    body = {"metadata": {"name": "n"}, "plugin": "bridge", **obj}
    with pytest.raises(InvalidConfig) as info:
        objects.seed_network_delegate(body, "default/n", "1.0.0")
    assert info.value.msg.startswith(message), info.value.msg


def _nad(config: Any) -> dict[str, Any]:
    return {"metadata": {"name": "blue", "namespace": "ns"}, "spec": {"config": config}}


def test_nad_name_injected_and_conflist(tmp_path: Path) -> None:
    conf = objects.nad_delegate(_nad('{"type": "ptp"}'), "ns/blue", "1.0.0", str(tmp_path))
    assert (conf.name, conf.is_list) == ("blue", False)
    named = objects.nad_delegate(
        _nad('{"name": "own", "type": "ptp"}'), "ns/blue", "1.0.0", str(tmp_path)
    )
    assert named.name == "own"
    conflist = objects.nad_delegate(
        _nad('{"cniVersion": "0.4.0", "plugins": [{"type": "ptp"}, {"type": "tuning"}]}'),
        "ns/blue",
        "1.0.0",
        str(tmp_path),
    )
    assert (conflist.name, conflist.is_list, conflist.cni_version) == ("blue", True, "0.4.0")


def test_nad_empty_config_reads_conf_dir_conflist_first(tmp_path: Path) -> None:
    (tmp_path / "10-blue.conf").write_text('{"name": "blue", "type": "bridge"}')
    (tmp_path / "20-blue.conflist").write_text('{"name": "blue", "plugins": [{"type": "ptp"}]}')
    (tmp_path / "05-junk.conf").write_text("{not json")
    (tmp_path / "06-other.conf").write_text('{"name": "other", "type": "macvlan"}')
    found = objects.nad_delegate(_nad(""), "ns/blue", "1.0.0", str(tmp_path))
    assert (found.is_list, found.plugins) == (True, [{"type": "ptp"}])
    (tmp_path / "20-blue.conflist").unlink()
    found = objects.nad_delegate({"metadata": {"name": "blue"}}, "ns/blue", "1.0.0", str(tmp_path))
    assert found.plugins == [{"type": "bridge"}]
    nope = {"metadata": {"name": "nope"}, "spec": {"config": ""}}
    with pytest.raises(InvalidConfig, match="no conf file"):
        objects.nad_delegate(nope, "ns/nope", "1.0.0", str(tmp_path))
    with pytest.raises(IoFailure, match="cannot be listed"):
        objects.nad_delegate(nope, "ns/nope", "1.0.0", str(tmp_path / "missing"))


@pytest.mark.parametrize("config", ["[1]", "{bad", 5, '{"type": "a/b"}', '"x"'])
def test_nad_rejects(config: Any, tmp_path: Path) -> None:
    with pytest.raises(CniError):
        objects.nad_delegate(_nad(config), "ns/blue", "1.0.0", str(tmp_path))


# ---- settings and pod identity ----


def test_settings_defaults_and_forms() -> None:
    settings = Settings({})
    assert (settings.namespace_isolation, settings.global_namespaces) == (False, ["default"])
    assert (settings.system_namespaces, settings.multus_namespace) == (
        ["kube-system"],
        "kube-system",
    )
    custom = Settings(
        {
            "namespaceIsolation": True,
            "globalNamespaces": "default, shared",
            "systemNamespaces": ["kube-system", "admin"],
            "multusNamespace": "multus",
        }
    )
    assert custom.global_namespaces == ["default", "shared"]
    assert custom.system_namespaces == ["kube-system", "admin"]
    for bad in (
        {"namespaceIsolation": "yes"},
        {"globalNamespaces": 5},
        {"systemNamespaces": ["Bad_NS"]},
        {"kubeApiTimeout": 0},
    ):
        with pytest.raises(InvalidConfig):
            Settings(bad)


def test_pod_ref_from_cni_args() -> None:
    assert pod_ref({"K8S_POD_NAME": "p"}) is None
    ref = pod_ref({"K8S_POD_NAMESPACE": "ns", "K8S_POD_NAME": "p", "K8S_POD_UID": "u"})
    assert ref is not None and (str(ref), ref.uid) == ("ns/p", "u")
    with pytest.raises(InvalidEnvironment):
        pod_ref({"K8S_POD_NAMESPACE": "ns", "K8S_POD_NAME": "../etc"})


# ---- status entries and NPWG result checks ----

RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "veth1", "mac": "aa:aa:aa:aa:aa:aa"},
        {"name": "net1", "mac": "0a:58:0a:01:01:05", "sandbox": "/var/run/netns/x", "mtu": 1400},
    ],
    "ips": [
        {"address": "10.1.1.5/24", "gateway": "10.1.1.1", "interface": 1},
        {"address": "fd00::5/64", "gateway": "fd00::1", "interface": 1},
        {"address": "192.0.2.9/32", "interface": 0},
    ],
    "routes": [{"dst": "0.0.0.0/0"}],
    "dns": {"nameservers": ["10.1.1.53"]},
}


def test_status_entry_fields() -> None:
    entry = status.status_entry(
        "ns/blue", "net1", RESULT, default=False, gateways=status.result_gateways(RESULT, {"4"})
    )
    assert entry == {
        "name": "ns/blue",
        "interface": "net1",
        "ips": ["10.1.1.5", "fd00::5"],
        "ips-with-prefix": ["10.1.1.5/24", "fd00::5/64"],
        "mac": "0a:58:0a:01:01:05",
        "mtu": 1400,
        "dns": {"nameservers": ["10.1.1.53"]},
        "gateway": ["10.1.1.1"],
    }
    # No IPv6 default route in the result: no IPv6 gateway reported.
    assert status.result_gateways(RESULT, {"4", "6"}) == ["10.1.1.1"]


def _reporter_check(request_json: str, result: dict[str, Any]) -> None:
    (request,) = selection.parse_npwg(request_json, "ns")
    network = DelegateNetwork("blue", "1.0.0", [{"type": "ptp"}], is_list=False, source="x")
    attachment = Attachment(network, "net1", [])
    attachment.result = result
    reporter = Reporter.__new__(Reporter)
    reporter.ref = PodRef("ns", "p", "")
    reporter._check_result(attachment, request)


def test_requested_ips_and_mac_must_be_in_the_result() -> None:
    _reporter_check(
        '[{"name": "blue", "ips": ["10.1.1.5/24"], "mac": "0A:58:0A:01:01:05"}]', RESULT
    )
    _reporter_check('[{"name": "blue", "ips": ["fd00::5"]}]', RESULT)
    with pytest.raises(CniError, match=r"requested IP 10\.1\.1\.6/24 is not in the result"):
        _reporter_check('[{"name": "blue", "ips": ["10.1.1.6/24"]}]', RESULT)
    with pytest.raises(CniError, match=r"requested IP 10\.1\.1\.5/25"):
        _reporter_check('[{"name": "blue", "ips": ["10.1.1.5/25"]}]', RESULT)
    with pytest.raises(CniError, match="requested MAC"):
        _reporter_check('[{"name": "blue", "mac": "0a:58:0a:01:01:06"}]', RESULT)
    # The host-side interface's MAC does not count.
    with pytest.raises(CniError, match="requested MAC"):
        _reporter_check('[{"name": "blue", "mac": "aa:aa:aa:aa:aa:aa"}]', RESULT)
