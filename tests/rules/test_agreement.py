"""One rulebook: what the operator calls Valid, the `multus` executable attaches, with
the interface names `multusctl explain` prints; what the executable refuses before
running a delegate, the operator calls Invalid, naming the same field.

The property tests generate NetworkAttachmentDefinitions, seed Networks and cluster
settings, judge them with the operator's checks, and exec the real plugin with them
in Kubernetes mode (the emulator serving the objects) and, for NAD confs, in conf-file
mode (see tests/rules/agreement.py for the harness and the property). Every row of
issue 8's table is an `@example` of them and a plain regression test below.

`MULTUS_AGREEMENT_EXAMPLES` sets how many generated examples each property runs
(default 20, derandomized: `make test` stays quick and reproducible; raise it to hunt).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from multus_operator.validation import parse_settings, validate_object
from multusctl import explaining
from multusctl.main import main as multusctl
from tests.operator.broken import PLAIN_NAME
from tests.rules.agreement import MASTER, NAD, NAMESPACE, NETWORK, Bench, Case, Outcome, judge

NPWG = "k8s.v1.cni.cncf.io/networks"
SEED = "networks"
EXTRA = "agree-extra"  # the fake of the fixed NADs below
EXAMPLES = int(os.environ.get("MULTUS_AGREEMENT_EXAMPLES", "20"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
_serial = itertools.count()


def _name(prefix: str) -> str:
    return f"{prefix}-{next(_serial)}"


def nad_body(name: str, config: Any, namespace: str = NAMESPACE) -> dict[str, Any]:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"config": config if isinstance(config, str) else json.dumps(config)},
    }


def network_body(name: str, plugin: Any, args: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "kubernetes.com/v1",
        "kind": "Network",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "plugin": plugin,
    }
    if args is not None:
        body["args"] = args
    return body


# Objects every Kubernetes-mode run may use: valid, each run by a fake.
CLUSTER_NETWORK = network_body("agree-cluster", MASTER, "[{}]")
FIXED = [
    nad_body("agree-cluster-nad", {"cniVersion": "1.0.0", "type": MASTER}, "kube-system"),
    nad_body("agree-nad", {"type": EXTRA}),
    nad_body("agree-nad", {"type": EXTRA}, "kube-system"),
]


@pytest.fixture(scope="module")
def fixed(agree: Bench) -> Bench:
    agree.install(EXTRA)
    for body in FIXED:
        agree.api.put_copy(NAD, body)
    agree.api.put_copy(NETWORK, CLUSTER_NETWORK)
    return agree


# ---- generated networks ----


def mostly(good: list[Any], bad: list[Any]) -> st.SearchStrategy[Any]:
    """Good values three times as likely as bad ones: most examples should get past the
    first rule."""
    return st.sampled_from(good * 3 * len(bad) + bad * len(good))


GOOD_TYPES = ["bridge", "macvlan", "sriov", "fake.plugin_1", "9lives"]
BAD_TYPES = [
    "../../tmp/x",
    "/usr/lib/cni/bridge",
    "bridge\n",
    "my plugin",
    "",
    ".",
    "..",
    "x" * 254,
]
TYPES = mostly(GOOD_TYPES, [*BAD_TYPES, 5])
IPAM_TYPES = mostly(["host-local", "static", "fake-ipam"], ["../../tmp/x", "/bin/sh", "ipam\n"])
IPAM = st.one_of(
    st.just({}),
    st.fixed_dictionaries(
        {"type": IPAM_TYPES},
        optional={
            "subnet": st.sampled_from(["10.9.0.0/24", "nonsense"]),
            "gateway": st.sampled_from(["10.9.0.1", "10.10.0.1"]),
        },
    ),
    st.just({"subnet": "10.9.0.0/24"}),
    st.just("x"),
)
PLUGIN = st.fixed_dictionaries(
    {"type": TYPES},
    optional={
        "ipam": IPAM,
        "mtu": st.sampled_from([0, 1500, "1500"]),
        "vlan": st.sampled_from([210, 5000]),
        "isGateway": st.sampled_from([True, "true"]),
        "if0": st.just("enp2s0"),
    },
)
NETWORK_KEYS = {
    "cniVersion": mostly(["0.3.1", "1.0.0", "1.1.0"], ["0.2.0", "2.0.0", 1, None]),
    "name": mostly(["n1", "agree-net", "a" * 256], ["my net", "", 5, None]),
    "if0name": mostly(["north", "net1", "net0", "eth0"], ["net/1", "x" * 16, 5, "", None]),
    "masterplugin": mostly([True, False], ["yes", None]),
}
SINGLE = st.builds(
    lambda plugin, keys: {**plugin, **keys},
    PLUGIN,
    st.fixed_dictionaries({}, optional=NETWORK_KEYS),
)
CONFLIST = st.builds(
    lambda plugins, keys: {**keys, "plugins": plugins},
    st.one_of(st.lists(PLUGIN, min_size=1, max_size=2), st.sampled_from(["x", []])),
    st.fixed_dictionaries({}, optional={**NETWORK_KEYS, "type": TYPES}),
)
NETWORK_CONF = st.one_of(SINGLE, SINGLE, CONFLIST)
RAW_CONFIG = st.sampled_from(
    [
        "",
        "{",
        "[]",
        '"x"',
        '{"type": "bridge", "mtu": NaN}',
        '{"type": "bridge", "x": 1e999}',
        '\ufeff{"type": "bridge"}',
        '{"type": "bridge"}\n',
        '{"type": "bridge", "x": ' + "[" * 64 + "]" * 64 + "}",  # 65 levels: too deep
    ]
)


# ---- NetworkAttachmentDefinitions ----


def check_nad(agree: Bench, config: Any, seed_style: bool) -> tuple[Outcome, Outcome | None]:
    """One NAD, judged by the operator, explained, and run in both modes."""
    name = _name("agree-nad")
    body = nad_body(name, config)
    report = validate_object(body)
    errors = [p.path for p in report.errors]
    agree.install_all(config)
    settings = agree.settings({"delegates": [{"type": MASTER}]})
    with agree.objects((NAD, body)):
        pod, k8s = agree.pod_add(agree.conf(settings), {NPWG: name})
    plan = explaining.explain(pod, [*FIXED, body], settings, str(agree.conf_dir))
    context = f"NetworkAttachmentDefinition {NAMESPACE}/{name}: "
    judge(Case(f"NAD {name} (Kubernetes mode)", context), report.valid, errors, plan, k8s)
    if not isinstance(config, dict):
        return k8s, None  # no conf to write into a conf file
    master: dict[str, Any] = {"type": MASTER, **({"masterplugin": True} if seed_style else {})}
    delegates, index = ([config, master], 0) if seed_style else ([master, config], 1)
    settings = agree.settings({"delegates": delegates}, k8s=False)
    conf_file = agree.add(agree.conf(settings))
    plan = explaining.explain({"metadata": {"name": "p"}}, [], settings, str(agree.conf_dir))
    case = Case(f"NAD {name} conf (conf-file mode)", "", (f"delegates[{index}]", "spec.config"))
    judge(case, report.valid, errors, plan, conf_file)
    return k8s, conf_file


@PROPERTY
@given(config=st.one_of(NETWORK_CONF, NETWORK_CONF, RAW_CONFIG), seed_style=st.booleans())
@example(config={"type": "bridge", "ipam": {"type": "../../tmp/x"}}, seed_style=False)
@example(config={"type": "bridge", "ipam": {"type": "/usr/lib/cni/host-local"}}, seed_style=False)
@example(config={"type": "bridge\n"}, seed_style=False)
@example(config={"type": "bridge", "name": "my net"}, seed_style=False)
@example(config={"cniVersion": "0.2.0", "type": "bridge"}, seed_style=False)
@example(config={"type": "bridge", "if0name": 5}, seed_style=True)
@example(config={"type": "sriov", "if0name": "net/1"}, seed_style=False)
@example(config={"type": "bridge", "ipam": {}}, seed_style=False)
@example(config={"type": "bridge", "mtu": 0}, seed_style=True)
@example(config={"type": "bridge", "plugins": [{"type": "bridge"}]}, seed_style=False)
@example(config={"type": "sriov", "if0name": "north"}, seed_style=False)
@example(config='{"type": "bridge", "x": ' + "[" * 64 + "]" * 64 + "}", seed_style=False)
def test_nad_verdicts_agree(fixed: Bench, config: Any, seed_style: bool) -> None:
    check_nad(fixed, config, seed_style)


# ---- seed Networks ----


@st.composite
def seed_networks(draw: st.DrawFn) -> tuple[Any, str | None]:
    """(plugin, args): args mostly one conf, its `type` absent, equal, or not."""
    plugin = draw(TYPES)

    def args0() -> dict[str, Any]:
        conf = {k: v for k, v in draw(PLUGIN).items() if k != "type"}
        conf |= draw(st.fixed_dictionaries({}, optional=NETWORK_KEYS))
        typed = draw(mostly([None, None, plugin], ["flannel"]))
        return conf if typed is None else {**conf, "type": typed}

    shape = draw(mostly(["one"], ["two", "odd"]))
    if shape == "one":
        return plugin, json.dumps([args0()])
    if shape == "two":
        return plugin, json.dumps([args0(), args0()])
    return plugin, draw(st.sampled_from(["[]", "[1]", '{"a": 1}', "", "{", "[NaN]", None]))


def check_network(agree: Bench, plugin: Any, args: str | None, first: bool) -> Outcome:
    """One seed Network, first in the pod's `networks` annotation (the master) or second."""
    name = _name("agree-net")
    body = network_body(name, plugin, args)
    report = validate_object(body)
    agree.install(plugin)
    try:
        agree.install_all(*json.loads(args or "[]"))
    except (ValueError, TypeError):
        pass
    listed = [{"name": name}] if first else [{"name": CLUSTER_NETWORK["metadata"]["name"]}]
    listed += [] if first else [{"name": name}]
    settings = agree.settings({})
    with agree.objects((NETWORK, body)):
        pod, outcome = agree.pod_add(agree.conf(settings), {SEED: json.dumps(listed)})
    plan = explaining.explain(pod, [CLUSTER_NETWORK, body], settings, str(agree.conf_dir))
    case = Case(f"Network {name} (Kubernetes mode)", f"Network {NAMESPACE}/{name}: ")
    judge(case, report.valid, [p.path for p in report.errors], plan, outcome)
    return outcome


@PROPERTY
@given(network=seed_networks(), first=st.booleans())
@example(network=("sriov", '[{"if0": "enp2s0"}, {"if0": "enp3s0"}]'), first=False)
@example(network=("sriov", "[]"), first=False)
@example(network=("bridge", '[{"type": "flannel"}]'), first=True)
@example(network=("sriov", '[{"if0": "enp2s0", "if0name": "north"}]'), first=False)
def test_network_verdicts_agree(fixed: Bench, network: tuple[Any, str | None], first: bool) -> None:
    check_network(fixed, *network, first)


# ---- settings (rendered into every node's conf) ----

SETTINGS = st.fixed_dictionaries(
    {},
    optional={
        "cniVersion": mostly(["1.0.0", "0.3.1", "1.1.0"], ["0.2.0", "2.0.0"]),
        "name": mostly(["agree", "a_b.c-1"], ["my net", ""]),
        "logLevel": mostly(["debug", "ERROR", "verbose"], ["loud"]),
        "namespaceIsolation": st.booleans(),
        "globalNamespaces": st.lists(mostly(["default", "kube-system"], ["Bad_NS"]), max_size=2),
        "systemNamespaces": st.lists(mostly(["kube-system", "default"], ["Bad"]), max_size=2),
        "multusNamespace": mostly(["kube-system"], ["default", "Bad"]),
    },
)
# The cluster network: inline delegates (the first the master's fake), a NAD, or none.
CLUSTER = st.one_of(
    st.builds(
        lambda more: {"delegates": [{"type": MASTER}, *more]},
        st.lists(NETWORK_CONF, max_size=1),
    ),
    st.builds(
        lambda first, more: {"delegates": [first, *more]},
        NETWORK_CONF,
        st.lists(st.just({"type": MASTER, "masterplugin": True}), max_size=1),
    ),
    st.fixed_dictionaries(
        {"clusterNetwork": mostly(["agree-cluster-nad"], ["missing-nad"])},
        optional={
            "defaultNetworks": st.lists(mostly(["agree-cluster-nad"], ["missing"]), max_size=1),
            "delegates": st.just([{"type": MASTER}]),
        },
    ),
    st.just({}),
)
ANNOTATION = st.sampled_from([None, "agree-nad", "kube-system/agree-nad", "agree-nad@north"])


def check_settings(agree: Bench, raw: dict[str, Any], annotation: str | None) -> Outcome:
    """Cluster settings: the operator's SettingsValid against the plugin running the conf
    they render, for a pod (with an NPWG annotation or none)."""
    agree.install_all(*raw.get("delegates", []))
    settings = agree.settings(raw)
    dumped = {**raw, "mode": "thin", "kubeconfig": settings.kubeconfig}
    dumped |= {"cniDir": settings.cniDir, "binDir": settings.binDir}
    parsed, problems = parse_settings(yaml.safe_dump(dumped))
    annotations = {NPWG: annotation} if annotation else {}
    pod, outcome = agree.pod_add(agree.conf(settings), annotations)
    plan = explaining.explain(pod, FIXED, settings, str(agree.conf_dir))
    case = Case("settings (Kubernetes mode)", "", multi=("interface name ",))
    judge(case, parsed is not None, [p.path for p in problems if p.is_error], plan, outcome)
    return outcome


@PROPERTY
@given(raw=st.builds(lambda a, b: {**a, **b}, SETTINGS, CLUSTER), annotation=ANNOTATION)
@example(raw={"cniVersion": "2.0.0", "delegates": [{"type": MASTER}]}, annotation=None)
@example(raw={"delegates": [{"type": MASTER}, {"type": "macvlan"}]}, annotation="agree-nad")
@example(raw={"clusterNetwork": "agree-cluster-nad"}, annotation="agree-nad@north")
def test_settings_verdicts_agree(fixed: Bench, raw: dict[str, Any], annotation: str | None) -> None:
    check_settings(fixed, raw, annotation)


# ---- issue 8's table, row by row ----


@pytest.mark.parametrize(
    ("config", "message", "code"),
    [
        ({"type": "bridge", "ipam": {"type": "../../tmp/x"}},
         f"spec.config.ipam.type: '../../tmp/x' is not a plain plugin name: {PLAIN_NAME}", 7),
        ({"type": "bridge", "ipam": {"type": "/usr/lib/cni/host-local"}},
         "spec.config.ipam.type: '/usr/lib/cni/host-local' is not a plain plugin name: "
         f"{PLAIN_NAME}", 7),
        ({"type": "bridge\n"},
         f"spec.config.type: 'bridge\\n' is not a plain plugin name: {PLAIN_NAME}", 7),
        ({"type": "bridge", "name": "my net"},
         "spec.config.name: 'my net' must match [A-Za-z0-9][A-Za-z0-9_.-]*", 7),
        ({"cniVersion": "0.2.0", "type": "bridge"},
         "spec.config.cniVersion: '0.2.0' is not supported (supported: 0.3.0, 0.3.1, 0.4.0, "
         "1.0.0, 1.1.0)", 1),
        ({"type": "bridge", "if0name": 5},
         "spec.config.if0name: must be a string, not a number", 7),
        ({"type": "sriov", "if0name": "net/1"}, "spec.config.if0name: 'net/1' may not contain '/'",
         7),
    ],
)  # fmt: skip
def test_row_valid_in_the_operator_refused_by_the_plugin(
    fixed: Bench, config: dict[str, Any], message: str, code: int
) -> None:
    """Each was Valid (or admitted, or explained) and refused at ADD: now Invalid, with
    the plugin's own message, in both modes."""
    report = validate_object(nad_body("row", config))
    assert [str(p) for p in report.errors] == [message]
    k8s, conf_file = check_nad(fixed, config, seed_style=False)
    assert (k8s.code, conf_file and conf_file.code) == (code, code)
    assert k8s.msg.endswith(message) and not k8s.ran
    assert conf_file is not None and conf_file.msg == message.replace("spec.config", "delegates[1]")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ('[{"if0": "enp2s0"}, {"if0": "enp3s0"}]', "args: must hold exactly one conf, found 2"),
        ("[]", "args: must hold exactly one conf, found 0"),
    ],
)
def test_row_seed_network_args_hold_exactly_one_conf(fixed: Bench, args: str, message: str) -> None:
    report = validate_object(network_body("row", "sriov", args))
    assert [str(p) for p in report.errors] == [message]
    outcome = check_network(fixed, "sriov", args, first=False)
    assert outcome.code == 7 and outcome.msg.endswith(f": {message}") and not outcome.ran


@pytest.mark.parametrize(
    "config",
    [
        {"type": "bridge", "ipam": {}},
        {"type": "bridge", "mtu": 0},
        {"cniVersion": "1.0.0", "type": "bridge", "plugins": [{"type": "bridge"}]},
    ],
)
def test_row_invalid_in_the_operator_attached_by_the_plugin(
    fixed: Bench, config: dict[str, Any]
) -> None:
    """ipam: {}, mtu: 0 and a conflist with a top-level type were Invalid; multus and
    the plugins themselves take them: now Valid, and attached in both modes."""
    assert validate_object(nad_body("row", config)).valid
    k8s, conf_file = check_nad(fixed, config, seed_style=False)
    assert k8s.ifnames == ["eth0", "net1"]
    assert conf_file is not None and conf_file.ifnames == ["eth0", "net1"]


@pytest.mark.parametrize("seed_style", [False, True])
def test_row_if0name_of_a_nad_is_honoured_in_both_modes(fixed: Bench, seed_style: bool) -> None:
    """The seed's sriov-vlanid-l2enable-conf relies on if0name; Kubernetes mode ignored
    it on a NAD."""
    k8s, conf_file = check_nad(fixed, {"type": "sriov", "if0name": "north"}, seed_style)
    assert k8s.ifnames == ["eth0", "north"]
    assert conf_file is not None and "north" in conf_file.ifnames


def test_row_seed_network_type_differing_from_plugin_is_refused_with_one_message(
    fixed: Bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It ran one plugin by the operator's rendering and the other in Kubernetes mode;
    now the plugin, the operator, `multusctl validate` and `explain` refuse it alike."""
    message = "args[0].type: 'flannel' differs from plugin 'bridge'"
    body = network_body("row", "bridge", '[{"type": "flannel"}]')
    assert [str(p) for p in validate_object(body).errors] == [message]
    outcome = check_network(fixed, "bridge", '[{"type": "flannel"}]', first=True)
    assert outcome.code == 7 and outcome.msg.endswith(f": {message}")
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump(body))
    assert multusctl(["validate", str(path)]) == 1
    assert f"Network/row: error: {message}" in capsys.readouterr().out


def test_row_explain_three_delegates_without_masterplugin(fixed: Bench) -> None:
    """explain said eth0, net0, net1; the plugin makes eth0, net1, net2."""
    settings = fixed.settings(
        {"delegates": [{"type": MASTER}, {"type": EXTRA}, {"type": EXTRA}]}, k8s=False
    )
    outcome = fixed.add(fixed.conf(settings))
    plan = explaining.explain({"metadata": {"name": "p"}}, [], settings, str(fixed.conf_dir))
    assert outcome.ifnames == plan.ifnames == ["eth0", "net1", "net2"]


def test_row_explain_inline_delegates_plus_an_npwg_annotation(fixed: Bench) -> None:
    """explain dropped the delegates and numbered from net0; the plugin keeps them and
    numbers the annotation's networks by position."""
    settings = fixed.settings({"delegates": [{"type": MASTER}, {"type": EXTRA}]})
    pod, outcome = fixed.pod_add(fixed.conf(settings), {NPWG: "agree-nad"})
    plan = explaining.explain(pod, FIXED, settings, str(fixed.conf_dir))
    assert outcome.ifnames == plan.ifnames == ["eth0", "net1", "net2"]


def test_row_explain_if0name_on_an_earlier_non_master(fixed: Bench) -> None:
    """Seed naming: a named delegate takes no number; explain shifted it differently."""
    delegates = [
        {"type": EXTRA, "if0name": "data"},
        {"type": EXTRA},
        {"type": MASTER, "masterplugin": True},
        {"type": EXTRA},
    ]
    settings = fixed.settings({"delegates": delegates}, k8s=False)
    outcome = fixed.add(fixed.conf(settings))
    plan = explaining.explain({"metadata": {"name": "p"}}, [], settings, str(fixed.conf_dir))
    assert outcome.ifnames == plan.ifnames == ["data", "net0", "eth0", "net1"]


def test_row_settings_cni_version_the_plugin_cannot_serve(fixed: Bench) -> None:
    """cniVersion 2.0.0 was Valid and rendered onto every node, where every ADD failed."""
    outcome = check_settings(fixed, {"cniVersion": "2.0.0", "delegates": [{"type": MASTER}]}, None)
    message = "cniVersion: '2.0.0' is not supported (supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)"
    assert (outcome.code, outcome.msg) == (1, message)
    _, problems = parse_settings("cniVersion: 2.0.0\n")
    assert [str(p) for p in problems] == [message]


def test_row_nodestate_over_its_total_vfs_is_refused_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The API server refuses it by the CRD's CEL rule; offline it was Valid."""
    path = tmp_path / "nodestate.yaml"
    pf = {"name": "enp2s0", "pciAddress": "0000:02:00.0", "numVfs": 8, "totalVfs": 4}
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "multus.cni.cncf.io/v1",
                "kind": "NodeState",
                "metadata": {"name": "node1"},
                "status": {"pfs": [pf]},
            }
        )
    )
    assert multusctl(["validate", str(path)]) == 1
    assert "error: status.pfs[0]: numVfs cannot exceed totalVfs" in capsys.readouterr().out
