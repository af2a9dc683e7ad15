"""The CNI_* environment: what is required per command, what is refused, and how."""

from __future__ import annotations

import pytest

from multus_cni.environ import (
    ifname_problem,
    is_safe_name,
    parse_cni_args,
    read_env,
)
from multus_cni.errors import InvalidEnvironment

FULL = {
    "CNI_COMMAND": "ADD",
    "CNI_CONTAINERID": "abc123",
    "CNI_NETNS": "/var/run/netns/x",
    "CNI_IFNAME": "eth0",
    "CNI_PATH": "/opt/cni/bin::/usr/lib/cni:",
    "CNI_ARGS": "K8S_POD_NAME=p;;K8S_POD_NAMESPACE=ns",
}


def test_full_add_environment() -> None:
    env = read_env(FULL)
    assert (env.command, env.container_id, env.netns, env.ifname) == (
        "ADD",
        "abc123",
        "/var/run/netns/x",
        "eth0",
    )
    assert env.path == ["/opt/cni/bin", "/usr/lib/cni"]
    assert env.args == {"K8S_POD_NAME": "p", "K8S_POD_NAMESPACE": "ns"}
    assert env.args_raw == FULL["CNI_ARGS"]


@pytest.mark.parametrize(
    ("command", "missing"),
    [
        ("ADD", "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH"),
        ("CHECK", "CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH"),
        ("DEL", "CNI_CONTAINERID,CNI_IFNAME,CNI_PATH"),
        ("GC", "CNI_PATH"),
        ("STATUS", "CNI_PATH"),
    ],
)
def test_every_missing_variable_is_named_in_one_error(command: str, missing: str) -> None:
    with pytest.raises(InvalidEnvironment) as info:
        read_env({"CNI_COMMAND": command})
    assert info.value.code == 4
    assert info.value.msg == f"required env variables [{missing}] missing"


def test_empty_counts_as_missing() -> None:
    with pytest.raises(InvalidEnvironment, match=r"\[CNI_NETNS\]"):
        read_env({**FULL, "CNI_NETNS": ""})


def test_del_needs_no_netns() -> None:
    env = read_env({k: v for k, v in FULL.items() if k != "CNI_NETNS"} | {"CNI_COMMAND": "DEL"})
    assert env.netns == ""


@pytest.mark.parametrize("command", ["", "add", "ATTACH", "VERSION ", "DEL\n"])
def test_command_must_be_known(command: str) -> None:
    with pytest.raises(InvalidEnvironment, match="CNI_COMMAND"):
        read_env({**FULL, "CNI_COMMAND": command})


def test_version_needs_and_checks_nothing_else() -> None:
    env = read_env({"CNI_COMMAND": "VERSION", "CNI_CONTAINERID": "../x", "CNI_ARGS": "a=b=c"})
    assert env.command == "VERSION" and env.container_id == ""


def test_container_id_and_ifname_problems_are_reported_together() -> None:
    with pytest.raises(InvalidEnvironment) as info:
        read_env({**FULL, "CNI_CONTAINERID": "../../etc/x", "CNI_IFNAME": "a/b"})
    assert "CNI_CONTAINERID: '../../etc/x'" in info.value.msg
    assert "CNI_IFNAME: 'a/b' may not contain '/'" in info.value.msg


@pytest.mark.parametrize(
    "cid", ["../../etc/x", ".x", "-x", "_x", "a/b", "a b", "a\nb", "a;b", "é", "a\x00"]
)
def test_bad_container_ids(cid: str) -> None:
    assert not is_safe_name(cid)
    with pytest.raises(InvalidEnvironment, match="CNI_CONTAINERID"):
        read_env({**FULL, "CNI_CONTAINERID": cid})


def test_container_id_longer_than_the_cache_can_name_is_refused() -> None:
    with pytest.raises(InvalidEnvironment, match="201 bytes, longer than 200"):
        read_env({**FULL, "CNI_CONTAINERID": "A" * 201})


@pytest.mark.parametrize("cid", ["a", "0", "a.b-c_d", "A" * 200, "9f8e7d6c5b4a" * 5])
def test_good_container_ids(cid: str) -> None:
    assert is_safe_name(cid)
    assert read_env({**FULL, "CNI_CONTAINERID": cid}).container_id == cid


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("", "is empty"),
        ("a" * 16, "longer than 15 bytes"),
        ("é" * 8, "longer than 15 bytes"),
        (".", "'.' or '..'"),
        ("..", "'.' or '..'"),
        ("a/b", "'/'"),
        ("a:b", "':'"),
        ("a b", "' '"),
        ("a\tb", "'\\t'"),
        ("a\u00a0b", "'\\xa0'"),
    ],
)
def test_ifname_problems(name: str, why: str) -> None:
    problem = ifname_problem(name)
    assert problem is not None and why in problem


@pytest.mark.parametrize("name", ["eth0", "a" * 15, "é" * 7, "net-1.2", "...", "@x"])
def test_good_ifnames(name: str) -> None:
    assert ifname_problem(name) is None


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("", {}),
        (";;", {}),
        ("A=1", {"A": "1"}),
        ("A=1;B=", {"A": "1", "B": ""}),
        ("A=1;A=2", {"A": "2"}),
        ("IgnoreUnknown=1;K8S_POD_NAME=x;", {"IgnoreUnknown": "1", "K8S_POD_NAME": "x"}),
    ],
)
def test_cni_args(raw: str, parsed: dict[str, str]) -> None:
    assert parse_cni_args(raw) == parsed


@pytest.mark.parametrize("pair", ["FOO=a=b", "FOO", "=x", "=", "a==b"])
def test_cni_args_pair_not_key_value(pair: str) -> None:
    with pytest.raises(InvalidEnvironment) as info:
        parse_cni_args(f"K8S_POD_NAME=x;{pair};")
    assert repr(pair) in info.value.msg and info.value.details
