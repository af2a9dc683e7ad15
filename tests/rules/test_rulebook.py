"""The rulebook's own rules, and each rule's other spellings held to it: the regex
patterns the CRD and pydantic use, the CEL rules the API server runs, the models."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import celpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from multus_api import crdgen
from multus_api.inventory import PF_RULES, PhysicalFunction
from multus_operator.validation import validate_object
from multus_rules import confs, interfaces, isolation, multusconf, names, objects, versions
from multus_rules.findings import Finding, RuleError, first_error, join

REPO = Path(__file__).resolve().parents[2]
NAME_TEXT = st.text(
    alphabet=st.sampled_from("aZ09_.-/\\: \n\t\x00é+@"), min_size=0, max_size=12
) | st.sampled_from(["bridge", "host-local", "a..b", "...", ".", "..", "x" * 254, "9"])


@settings(max_examples=300, deadline=None)
@given(NAME_TEXT)
def test_plugin_name_pattern_is_the_rule(value: str) -> None:
    """The CRD's pattern for `plugin` (RE2 reads `$` as the end of text, as fullmatch
    does) accepts exactly what the plugin accepts as a `type`."""
    by_pattern = (
        re.fullmatch(names.PLUGIN_NAME_PATTERN.strip("^$"), value) is not None
        and len(value) <= names.MAX_PLUGIN_NAME
    )
    assert by_pattern == (names.plugin_type_problem(value) is None)


@settings(max_examples=300, deadline=None)
@given(NAME_TEXT)
def test_safe_name_pattern_is_the_rule(value: str) -> None:
    by_pattern = re.fullmatch(names.SAFE_NAME_PATTERN.strip("^$"), value) is not None
    assert by_pattern == names.is_safe_name(value)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("bridge\n", "is not a plain plugin name"),
        ("../../tmp/x", "is not a plain plugin name"),
        ("/usr/bin/x", "is not a plain plugin name"),
        ("my plugin", "is not a plain plugin name"),
        ("x" * 254, "254 characters long, more than 253"),
        ("", "must be a non-empty plugin name"),
        (5, "must be a non-empty plugin name, not 5"),
    ],
)
def test_plugin_type_problems(value: Any, why: str) -> None:
    problem = names.plugin_type_problem(value)
    assert problem is not None and why in problem


def test_kubernetes_names() -> None:
    assert names.namespace_problem("team-a") is None
    assert names.namespace_problem("Team") is not None
    assert names.namespace_problem("a" * 64) is not None
    assert names.object_name_problem("a.b-c") is None
    assert names.object_name_problem("a_b") is not None
    assert names.object_name_problem("a" * 254) is not None


def test_versions() -> None:
    assert versions.version_problem("1.0.0") is None
    assert versions.version_problem("0.2.0") == (
        1,
        "'0.2.0' is not supported (supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)",
    )
    assert versions.version_problem(1) == (7, "must be a string, not 1")


def test_join_and_findings() -> None:
    assert join("spec.config", "ipam", "type") == "spec.config.ipam.type"
    assert join("args", 0, "if0name") == "args[0].if0name"
    assert join("/etc/cni/net.d/x.conf: ", "if0name") == "/etc/cni/net.d/x.conf: if0name"
    assert str(Finding("/etc/cni/net.d/x.conf: ", "bad")) == "/etc/cni/net.d/x.conf: bad"
    found = [Finding("a", "w", warning=True), Finding("b", "e")]
    assert first_error(found) == Finding("b", "e")


def test_check_network_collects_every_error_in_the_plugins_order() -> None:
    found = confs.check_network(
        {"cniVersion": "9.9.9", "name": "a b", "if0name": "x/y", "type": "../t"}, "spec.config"
    )
    assert [str(f) for f in found] == [
        "spec.config.cniVersion: '9.9.9' is not supported "
        "(supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)",
        "spec.config.name: 'a b' must match [A-Za-z0-9][A-Za-z0-9_.-]*",
        "spec.config.if0name: 'x/y' may not contain '/'",
        "spec.config.type: '../t' is not a plain plugin name: a letter or digit, then letters, "
        "digits, '_', '.' or '-' (no path)",
    ]
    assert found[0].code == 1 and found[1].code == 7


def test_check_network_defaults_are_checked_only_when_known() -> None:
    assert confs.check_network({"type": "bridge"}) == []
    bad_default = confs.check_network({"type": "bridge"}, default_name="my net")
    assert [str(f) for f in bad_default] == ["name: 'my net' must match [A-Za-z0-9][A-Za-z0-9_.-]*"]


def test_conflist_warnings() -> None:
    found = confs.check_network({"type": "x", "plugins": [{"type": "a", "if0name": "n"}]}, "c")
    assert [(str(f), f.warning) for f in found] == [
        ("c.type: ignored: a conflist runs its plugins", True),
        ("c.plugins[0].if0name: ignored: a conflist asks for its interface name at its top level",
         True),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (None, None),
        ('[{"if0": "enp2s0"}]', None),
        ('[{"type": "sriov"}]', None),
        ("[]", "args: must hold exactly one conf, found 0"),
        ("[{}, {}]", "args: must hold exactly one conf, found 2"),
        ('{"a": 1}', "args: must be a JSON list holding exactly one conf, not an object"),
        ("[1]", "args[0]: must be a JSON object, not a number"),
        ('[{"type": "bridge"}]', "args[0].type: 'bridge' differs from plugin 'sriov'"),
        ("", "args: invalid JSON: expecting a JSON value at character 0"),
        ("[NaN]", "args: invalid JSON: NaN is not valid JSON"),
    ],
)
def test_seed_network_shape(args: Any, message: str | None) -> None:
    conf, found = objects.seed_network_conf("n", "sriov", args)
    if message is None:
        assert found == [] and conf is not None and conf["type"] == "sriov"
    else:
        assert conf is None and str(found[0]) == message


def test_nad_conf_shapes() -> None:
    assert objects.nad_conf({"config": ""}) == (None, [])
    assert objects.nad_conf(None) == (None, [])
    assert objects.nad_conf({"config": '{"type": "x"}'}) == ({"type": "x"}, [])
    _, found = objects.nad_conf({"config": 5})
    assert str(found[0]) == "spec.config: must be a string holding a JSON conf, not a number"
    _, found = objects.nad_conf({"config": "[]"})
    assert str(found[0]) == "spec.config: must be a JSON object, not an array"


class Net:
    def __init__(self, source: str, master: bool = False, requested: str = "") -> None:
        self.source = source
        self.master = master
        self.requested_ifname = requested


@pytest.mark.parametrize(
    ("nets", "seed", "expected"),
    [
        ([Net("a", True), Net("b"), Net("c")], False, ["eth0", "net1", "net2"]),
        ([Net("a"), Net("b", requested="north"), Net("c", True), Net("d")], True,
         ["net0", "north", "eth0", "net1"]),
        ([Net("a", True), Net("b", requested="north"), Net("c")], False,
         ["eth0", "north", "net2"]),
    ],
)  # fmt: skip
def test_interface_naming(nets: list[Net], seed: bool, expected: list[str]) -> None:
    reasons: list[str] = []
    assert interfaces.assign_ifnames(nets, "eth0", seed, reasons) == expected
    assert len(reasons) == len(expected)


def test_interface_clash_names_both() -> None:
    with pytest.raises(RuleError) as info:
        interfaces.assign_ifnames([Net("a", True), Net("b", requested="eth0")], "eth0", False)
    assert str(info.value.finding) == "b: interface name 'eth0' is already used by a"


def test_isolation() -> None:
    assert isolation.may_use("a", "a", True, ["default"])
    assert isolation.may_use("a", "default", True, ["default"])
    assert not isolation.may_use("a", "b", True, ["default"])
    assert isolation.may_use("a", "b", False, [])
    assert isolation.seed_lookup("default") == ("default",)
    assert isolation.seed_lookup("x") == ("x", "default")


def test_multus_conf_keys() -> None:
    base = {"name": "m", "type": "multus", "delegates": [{"type": "a"}]}
    assert multusconf.check_multus_conf(base, k8s=False) == []
    found = multusconf.check_multus_conf({**base, "logLevel": "LOUD"}, k8s=False)
    assert [str(f) for f in found] == [
        "logLevel: 'LOUD' is not one of debug, verbose, error, panic"
    ]
    assert multusconf.check_multus_conf({**base, "logLevel": "DEBUG"}, k8s=False) == []
    assert [str(f) for f in multusconf.check_k8s_keys({"globalNamespaces": "a,B"})] == [
        "globalNamespaces: namespace 'B' is not a DNS-1123 label"
    ]


# ---- CEL rules of the CRDs, run by the API server, and their offline twins ----


def _cel(rule: str, value: Any) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(rule))
    return bool(program.evaluate({"self": celpy.json_to_cel(value)}))


PF = st.fixed_dictionaries(
    {"name": st.just("enp2s0"), "pciAddress": st.just("0000:02:00.0")},
    optional={"numVfs": st.integers(0, 130), "totalVfs": st.integers(0, 130)},
)


@settings(max_examples=60, deadline=None)
@given(PF)
def test_nodestate_cel_rule_and_model_agree(pf: dict[str, Any]) -> None:
    """numVfs <= totalVfs is written once (PF_RULES): the CRD's CEL rule and the model's
    check are both derived from it, and give one verdict."""
    crd = crdgen.nodestate_crd()
    items = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"][
        "properties"
    ]["pfs"]["items"]
    (rule,) = items["x-kubernetes-validations"]
    assert rule == {"rule": PF_RULES[0].cel(), "message": PF_RULES[0].message}
    by_api = _cel(rule["rule"], pf)
    try:
        PhysicalFunction.model_validate(pf)
        offline = True
    except ValidationError as exc:
        assert "numVfs cannot exceed totalVfs" in str(exc)
        offline = False
    assert by_api == offline


def test_nodestate_numvfs_over_total_is_invalid_offline() -> None:
    state = {
        "apiVersion": "multus.cni.cncf.io/v1",
        "kind": "NodeState",
        "metadata": {"name": "node1"},
        "status": {"pfs": [{"name": "enp2s0", "pciAddress": "0000:02:00.0", "numVfs": 8,
                            "totalVfs": 4}]},
    }  # fmt: skip
    report = validate_object(state)
    assert [str(p) for p in report.errors] == ["status.pfs[0]: numVfs cannot exceed totalVfs"]


ARGS_TEXT = st.one_of(
    st.sampled_from(["", " ", "[", " [{}]", "[{}]", "[]", "{}", '{"a": 1}', "[1]", "x"]),
    st.text(alphabet=st.sampled_from('[]{}" :,1a\n'), max_size=10),
)


@settings(max_examples=150, deadline=None)
@given(ARGS_TEXT)
def test_what_the_network_cel_rule_refuses_is_refused_offline(args: str) -> None:
    """The CRD's CEL rule on `args` is a cheap prefix test; the rulebook's shape is
    stricter. Whatever the API server refuses, the operator and the plugin refuse."""
    (rule,) = crdgen.network_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"][
        "x-kubernetes-validations"
    ]
    if not _cel(rule["rule"], {"plugin": "bridge", "args": args}):
        conf, found = objects.seed_network_conf("n", "bridge", args)
        assert conf is None and found


def test_readmes_say_the_seed_args_shape_alike() -> None:
    """The README and crds/README.md describe `args` in the rulebook's words."""
    for path in (REPO / "README.md", REPO / "crds" / "README.md"):
        text = " ".join(path.read_text().split())
        assert objects.SEED_ARGS_SHAPE in text, path
