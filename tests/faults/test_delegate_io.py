"""What each delegate is given (environment, stdin, runtimeConfig, version) and what
comes back from it, read from the fake's invocation log (RELIABILITY.md rows 8-12,
20, 21)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.fakes.harness import FakeWorld, install_fake
from tests.faults.checks import assert_error, assert_ok

RUNTIME_CONFIG = {
    "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
    "bandwidth": {"ingressRate": 1000},
    "ips": ["10.202.1.5/24"],
    "mac": "c2:11:22:33:44:55",
    "dns": {"nameservers": ["10.202.0.53"]},
    "deviceID": "0000:00:01.0",
}


def test_environment_of_each_delegate(world: FakeWorld) -> None:
    d1, d2, d3 = world.delegate("d1"), world.delegate("d2"), world.delegate("d3")
    conf = world.conf([d1.conf(), d2.conf(), d3.conf()])
    assert_ok(world.run("ADD", conf, cni_args="K8S_POD_NAME=p;K8S_POD_NAMESPACE=ns"))
    assert_ok(world.run("DEL", conf, cni_args="K8S_POD_NAME=p;K8S_POD_NAMESPACE=ns"), prints=False)
    calls = [c for c in world.calls() if c["command"] != "VERSION"]
    assert [(c["label"], c["command"], c["env"]["CNI_IFNAME"]) for c in calls] == [
        ("d1", "ADD", "eth0"),
        ("d2", "ADD", "net1"),
        ("d3", "ADD", "net2"),
        ("d3", "DEL", "net2"),
        ("d2", "DEL", "net1"),
        ("d1", "DEL", "eth0"),
    ]
    for call in calls:
        env = call["env"]
        assert env["CNI_COMMAND"] == call["command"]
        assert env["CNI_CONTAINERID"] == world.container_id
        assert env["CNI_NETNS"] == world.netns
        assert env["CNI_ARGS"] == "IgnoreUnknown=1;K8S_POD_NAME=p;K8S_POD_NAMESPACE=ns"
        assert env["CNI_PATH"] == str(world.bin_dir)
    version_env = next(c["env"] for c in world.calls() if c["command"] == "VERSION")
    assert version_env["CNI_COMMAND"] == "VERSION" and "CNI_IFNAME" in version_env


def test_runtime_ignore_unknown_is_not_doubled_and_cni_path_adds_bin_dir(
    world: FakeWorld, tmp_path: Any
) -> None:
    d1 = world.delegate("d1")
    extra = tmp_path / "mib-extra"
    extra.mkdir()
    conf = world.conf([d1.conf()])
    path = f"{extra}:{world.bin_dir}"
    assert_ok(world.run("ADD", conf, cni_args="IgnoreUnknown=true;A=b", cni_path=path))
    [add] = d1.calls("ADD")
    assert add["env"]["CNI_ARGS"] == "IgnoreUnknown=true;A=b"
    assert add["env"]["CNI_PATH"] == f"{world.bin_dir}:{extra}"
    assert_ok(world.run("DEL", conf, cni_path=path), prints=False)
    world.assert_nothing_left()


def test_seed_masterplugin_gets_cni_ifname_and_the_others_net0_up(world: FakeWorld) -> None:
    d1, d2, d3 = world.delegate("d1"), world.delegate("d2"), world.delegate("d3")
    conf = world.conf([d1.conf(), d2.conf(masterplugin=True), d3.conf()], "0.3.1")
    result = assert_ok(world.run("ADD", conf))
    assert result["interfaces"][0]["name"] == "eth0"  # the master's result is returned
    assert [
        (c["label"], c["env"]["CNI_IFNAME"]) for c in world.calls() if c["label"] != "fake"
    ] == [
        ("d1", "net0"),
        ("d2", "eth0"),
        ("d3", "net1"),
    ]
    assert "masterplugin" in d2.calls("ADD")[0]["stdin"]  # plugin-specific keys pass through
    assert_ok(world.run("DEL", conf), prints=False)
    world.assert_nothing_left()


def test_stdin_is_the_conf_plus_injected_keys_only(world: FakeWorld) -> None:
    d1, d2 = world.delegate("d1"), world.delegate("d2")
    unknown = {"vendorKnob": {"nested": [1, "two", None]}, "args": {"cni": {"x": "y"}}}
    conf = world.conf([d1.conf(**unknown), d2.conf(name="second", cniVersion="0.4.0")])
    assert_ok(world.run("ADD", conf))
    [add1] = d1.calls("ADD")
    assert add1["stdin"] == {
        "cniVersion": "1.0.0",
        "name": "mib-net-0",
        "type": "fake",
        "debugFile": str(d1.debug_file),
        **unknown,
    }
    [add2] = d2.calls("ADD")
    assert add2["stdin"] == {
        "cniVersion": "0.4.0",
        "name": "second",
        "type": "fake",
        "debugFile": str(d2.debug_file),
    }
    add_results = {"d1": add1, "d2": add2}
    assert_ok(world.run("DEL", conf), prints=False)
    # DEL carries the delegate's own ADD result as prevResult (0.4.0 and later)
    for fake in (d1, d2):
        [delete] = fake.calls("DEL")
        prev = delete["stdin"].pop("prevResult")
        assert delete["stdin"] == add_results[fake.label]["stdin"]
        assert prev["interfaces"][0]["name"] == delete["env"]["CNI_IFNAME"]
        assert prev["cniVersion"] == delete["stdin"]["cniVersion"]
    world.assert_nothing_left()


def test_no_prev_result_on_del_before_0_4_0(world: FakeWorld) -> None:
    d1 = world.delegate("d1")
    conf = world.conf([d1.conf()], "0.3.1")
    assert_ok(world.run("ADD", conf))
    assert_ok(world.run("DEL", conf), prints=False)
    [delete] = d1.calls("DEL")
    assert "prevResult" not in delete["stdin"] and delete["stdin"]["cniVersion"] == "0.3.1"


def test_conflist_chains_prev_result_and_deletes_in_reverse(world: FakeWorld) -> None:
    a, b = world.delegate("a"), world.delegate("b", "fake2")
    a.steer(ADD={"result": {"cniVersion": "1.0.0", "ips": [{"address": "10.202.3.4/24"}]}})
    chain = {"cniVersion": "1.0.0", "name": "chain", "plugins": [a.conf(), b.conf()]}
    first = world.delegate("first")
    conf = world.conf([first.conf(), chain])
    assert_ok(world.run("ADD", conf))
    [add_b] = b.calls("ADD")
    assert add_b["stdin"]["prevResult"] == {
        "cniVersion": "1.0.0",
        "ips": [{"address": "10.202.3.4/24"}],
    }
    assert add_b["stdin"]["name"] == "chain" and add_b["env"]["CNI_IFNAME"] == "net1"
    assert "prevResult" not in a.calls("ADD")[0]["stdin"]
    assert_ok(world.run("DEL", conf), prints=False)
    assert world.sequence() == [
        ("first", "ADD"),
        ("a", "ADD"),
        ("b", "ADD"),
        ("b", "DEL"),
        ("a", "DEL"),
        ("first", "DEL"),
    ]
    world.assert_nothing_left()


def test_runtime_config_filtered_by_capabilities_and_for_the_master_only(
    world: FakeWorld,
) -> None:
    d1, d2, d3 = world.delegate("d1"), world.delegate("d2"), world.delegate("d3")
    conf = world.conf(
        [
            d1.conf(capabilities={"portMappings": True, "bandwidth": False, "foo": True}),
            d2.conf(capabilities={"portMappings": True, "ips": True}),
            d3.conf(),
        ],
        runtimeConfig=RUNTIME_CONFIG,
    )
    assert_ok(world.run("ADD", conf))
    assert_ok(world.run("DEL", conf), prints=False)
    for command in ("ADD", "DEL"):
        [master] = d1.calls(command)
        assert master["stdin"]["runtimeConfig"] == {"portMappings": RUNTIME_CONFIG["portMappings"]}
        for fake in (d1, d2, d3):
            [call] = fake.calls(command)
            assert "capabilities" not in call["stdin"]
            if fake is not d1:
                assert "runtimeConfig" not in call["stdin"]
    world.assert_nothing_left()


def test_newer_conf_is_negotiated_down_per_delegate_and_converted_up(world: FakeWorld) -> None:
    """Row 8: a 1.1.0 conf, delegates speaking at most 1.0.0 / 0.4.0 (like Debian's)."""
    world.install("fake")
    world.install("fake04")
    world.steer_binary("fake", VERSION={"versions": ["0.3.1", "0.4.0", "1.0.0"]})
    world.steer_binary("fake04", VERSION={"versions": ["0.3.0", "0.3.1", "0.4.0"]})
    d1, d2 = world.delegate("d1"), world.delegate("d2", "fake04")
    conf = world.conf([d1.conf(), d2.conf()], "1.1.0")
    result = assert_ok(world.run("ADD", conf))
    assert result["cniVersion"] == "1.1.0"
    assert "version" not in result["ips"][0]
    assert d1.calls("ADD")[0]["stdin"]["cniVersion"] == "1.0.0"
    assert d2.calls("ADD")[0]["stdin"]["cniVersion"] == "0.4.0"
    assert_ok(world.run("DEL", conf), prints=False)
    assert d2.calls("DEL")[0]["stdin"]["prevResult"]["ips"][0]["version"] == "4"
    world.assert_nothing_left()


def test_delegate_without_a_usable_version_fails_before_any_change(world: FakeWorld) -> None:
    world.install("fakeold")
    world.steer_binary("fakeold", VERSION={"versions": ["0.1.0", "0.2.0"]})
    d1, d2 = world.delegate("d1"), world.delegate("d2", "fakeold")
    doc = assert_error(world.run("ADD", world.conf([d1.conf(), d2.conf()], "1.0.0")), 1)
    assert "fakeold" in doc["msg"] and "0.2.0" in doc["msg"]
    assert world.sequence() == []
    world.assert_nothing_left()


def test_malformed_cni_args_pair_is_refused_before_anything_runs(world: FakeWorld) -> None:
    """Row 9: forwarding `FOO=a=b` would make every Go delegate fail with 999."""
    d1 = world.delegate("d1")
    call = world.run("ADD", world.conf([d1.conf()]), cni_args="K8S_POD_NAME=x;FOO=a=b;;")
    doc = assert_error(call, 4)
    assert "CNI_ARGS" in doc["msg"] and "'FOO=a=b'" in doc["msg"]
    assert world.calls() == []
    world.assert_nothing_left()


BAD_TYPES = {
    "relative-escape": "../outside/canary",
    "absolute": "{outside}/canary",
    "nul": "fake\x00",
    "dot": ".",
    "dotdot": "..",
    "empty": "",
    "backslash": "..\\canary",
    "space-padded": " fake",
    "not-a-string": 7,
    "symlink-out-of-path": "link",
    "directory": "adir",
    "not-executable": "noexec",
    "missing": "nosuch",
}


# multus resolves `type` itself; `ipam.type` is resolved by the delegate, so multus can
# only refuse the path-shaped ones.
BAD_TYPE_CASES = [("type", name) for name in sorted(BAD_TYPES)] + [
    ("ipam.type", name)
    for name in sorted(BAD_TYPES)
    if name not in ("symlink-out-of-path", "directory", "not-executable", "missing")
]


@pytest.mark.parametrize(("where", "name"), BAD_TYPE_CASES)
def test_bad_plugin_type_is_invalid_config_and_nothing_executes(
    world: FakeWorld, where: str, name: str
) -> None:
    """Row 12: a canary binary outside the plugin dirs must never run."""
    outside = world.root / "outside"
    install_fake(outside, "canary")
    canary_log = world.root / "canary.jsonl"
    (outside / "canary.debug.json").write_text(f'{{"log": "{canary_log}", "label": "canary"}}')
    os.symlink(outside / "canary", world.bin_dir / "link")
    (world.bin_dir / "adir").mkdir()
    world.install("noexec", mode=0o644)
    d1 = world.delegate("d1")
    bad = BAD_TYPES[name]
    bad = bad.format(outside=outside) if isinstance(bad, str) else bad
    if where == "type":
        second = world.delegate("d2").conf(type=bad)
    else:
        second = world.delegate("d2").conf(ipam={"type": bad})
    doc = assert_error(world.run("ADD", world.conf([d1.conf(), second])), 7)
    assert "delegates[1]" in doc["msg"] and where in doc["msg"]
    assert world.sequence() == []  # at most VERSION queries of d1 ran
    assert not canary_log.exists()
    world.assert_nothing_left()


RESULT_11: dict[str, Any] = {
    "interfaces": [
        {"name": "eth0", "sandbox": "/ns", "mtu": 1400, "socketPath": "/s", "pciID": "0:1"}
    ],
    "ips": [
        {"address": "10.202.5.2/24", "gateway": "10.202.5.1", "interface": 0},
        {"address": "fd00:202::2/64", "interface": 0},
    ],
    "routes": [
        {"dst": "0.0.0.0/0", "mtu": 1300, "advmss": 1200, "priority": 5, "table": 7, "scope": 0}
    ],
    "dns": {"nameservers": ["10.202.0.53"]},
}
VERSIONS = ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def result_at(version: str) -> dict[str, Any]:
    """RESULT_11 as a delegate speaking `version` would print it."""
    doc: dict[str, Any] = {"cniVersion": version, **RESULT_11}
    doc["ips"] = [dict(ip) for ip in RESULT_11["ips"]]
    if version < "1.0.0":
        for ip in doc["ips"]:
            ip["version"] = "6" if ":" in ip["address"] else "4"
    if version != "1.1.0":
        doc["interfaces"] = [{"name": "eth0", "sandbox": "/ns"}]
        doc["routes"] = [{"dst": "0.0.0.0/0"}]
    return doc


@pytest.mark.parametrize("result_version", VERSIONS)
@pytest.mark.parametrize("conf_version", VERSIONS)
def test_result_conversion_table(world: FakeWorld, conf_version: str, result_version: str) -> None:
    """Row 20: whatever version the delegate answers in, multus answers in the conf's."""
    d1 = world.delegate("d1")
    d1.steer(ADD={"result": result_at(result_version)})
    result = assert_ok(world.run("ADD", world.conf([d1.conf()], conf_version)))
    assert result["cniVersion"] == conf_version
    versions = [ip.get("version") for ip in result["ips"]]
    assert versions == (["4", "6"] if conf_version < "1.0.0" else [None, None])
    assert [ip["address"] for ip in result["ips"]] == ["10.202.5.2/24", "fd00:202::2/64"]
    assert result["ips"][0]["interface"] == 0 and result["interfaces"][0]["name"] == "eth0"
    both_11 = conf_version == result_version == "1.1.0"
    assert ("mtu" in result["interfaces"][0]) == both_11
    assert ("advmss" in result["routes"][0]) == both_11
    assert result["dns"] == RESULT_11["dns"]
    assert_ok(world.run("DEL", world.conf([d1.conf()], conf_version)), prints=False)
    world.assert_nothing_left()


def test_delegate_stderr_is_forwarded_to_the_log(world: FakeWorld) -> None:
    """Row 21: a delegate's stderr lands in multus's log (at verbose), never on stdout."""
    d1, d2 = world.delegate("d1"), world.delegate("d2")
    d2.steer(ADD={"stderr": "mib-diagnostic: carrier down\n"})
    log_file = world.root / "multus.log"
    conf = world.conf([d1.conf(), d2.conf()], logLevel="verbose", logFile=str(log_file))
    call = world.run("ADD", conf)
    assert_ok(call)
    assert "mib-diagnostic" not in call.stdout and "mib-diagnostic" not in call.stderr
    assert "net1, delegates[1]) ADD stderr: mib-diagnostic: carrier down" in log_file.read_text()
    assert_ok(world.run("DEL", conf), prints=False)
    world.assert_nothing_left()
