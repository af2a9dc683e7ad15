"""Parsing the multus conf: total (a MultusConf or a CniError naming the field), and the
delegates as they will be sent."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from multus_cni.errors import CniError, DecodeFailure, IncompatibleVersion, InvalidConfig
from multus_cni.netconf import (
    DEFAULT_CNI_DIR,
    decode,
    load_conf_file,
    parse_conf,
)


@pytest.fixture(autouse=True)
def _not_in_a_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


def parse(**conf: Any) -> Any:
    doc = {"name": "mib-net", "type": "multus", **conf}
    return parse_conf(json.dumps({k: v for k, v in doc.items() if v is not None}).encode())


def test_seed_conf() -> None:
    conf = parse(
        delegates=[
            {"type": "sriov", "if0": "enp1s0f1"},
            {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.202.8.0/24"}},
            {"type": "flannel", "masterplugin": True, "delegate": {"isDefaultGateway": True}},
        ]
    )
    assert conf.cni_version == "0.3.1" and conf.seed_style
    assert [d.master for d in conf.delegates] == [False, False, True]
    assert [d.name for d in conf.delegates] == ["mib-net-0", "mib-net-1", "mib-net-2"]
    assert conf.delegates[0].plugins == [{"type": "sriov", "if0": "enp1s0f1"}]
    assert conf.delegates[2].plugins[0]["masterplugin"] is True  # passed through
    assert conf.cni_dir == DEFAULT_CNI_DIR and conf.log_level == "error"
    assert conf.delegate_timeout == 60.0


def test_v4_style_first_delegate_is_the_master_and_versions_are_inherited() -> None:
    conf = parse(
        cniVersion="1.0.0", delegates=[{"type": "a"}, {"type": "b", "cniVersion": "0.4.0"}]
    )
    assert not conf.seed_style
    assert [d.master for d in conf.delegates] == [True, False]
    assert [d.cni_version for d in conf.delegates] == ["1.0.0", "0.4.0"]


def test_per_call_keys_are_stripped_and_unknown_keys_kept() -> None:
    conf = parse(
        delegates=[
            {
                "type": "a",
                "name": "own",
                "cniVersion": "0.4.0",
                "prevResult": {"x": 1},
                "runtimeConfig": {"mac": "x"},
                "vendor": [1, {"k": None}],
            }
        ]
    )
    [delegate] = conf.delegates
    assert delegate.name == "own" and delegate.cni_version == "0.4.0"
    assert delegate.plugins == [{"type": "a", "vendor": [1, {"k": None}]}]
    assert delegate.to_dict() == {
        "type": "a",
        "vendor": [1, {"k": None}],
        "cniVersion": "0.4.0",
        "name": "own",
    }


def test_conflist_delegate() -> None:
    chain = {"name": "chain", "cniVersion": "1.0.0", "plugins": [{"type": "a"}, {"type": "b"}]}
    conf = parse(cniVersion="1.1.0", delegates=[chain])
    [delegate] = conf.delegates
    assert delegate.is_list and delegate.name == "chain"
    assert delegate.plugins == [{"type": "a"}, {"type": "b"}]
    assert delegate.to_dict() == chain


def test_options() -> None:
    conf = parse(
        cniVersion="1.0.0",
        delegates=[{"type": "a"}],
        cniDir="/x/cache",
        binDir="/x/bin",
        confDir="/x/conf",
        logFile="/x/log",
        logLevel="DEBUG",
        delegateTimeout=2.5,
        readinessTimeout=1,
        readinessindicatorfile="/x/ready",
    )
    assert (conf.cni_dir, conf.bin_dir, conf.conf_dir, conf.log_file) == (
        "/x/cache",
        "/x/bin",
        "/x/conf",
        "/x/log",
    )
    assert conf.log_level == "debug" and conf.delegate_timeout == 2.5
    assert conf.readiness_timeout == 1.0 and conf.readiness_file == "/x/ready"


def test_cluster_network_and_default_networks_from_files(tmp_path: Path) -> None:
    (tmp_path / "10-b.conf").write_text(json.dumps({"type": "bridge", "name": "br"}))
    (tmp_path / "00-a.conf").write_text(json.dumps({"type": "ptp", "cniVersion": "0.4.0"}))
    (tmp_path / "00-a.conflist").write_text(
        json.dumps({"name": "lst", "plugins": [{"type": "ptp"}, {"type": "tuning"}]})
    )
    (tmp_path / ".hidden.conf").write_text("{")
    (tmp_path / "extra.conf").write_text(json.dumps({"type": "macvlan"}))
    conf = parse(
        cniVersion="1.0.0",
        confDir=str(tmp_path),
        clusterNetwork=str(tmp_path),
        defaultNetworks=["extra.conf", str(tmp_path / "10-b.conf")],
    )
    assert [d.name for d in conf.delegates] == ["lst", "extra", "br"]
    assert conf.delegates[0].is_list and conf.delegates[0].master
    assert [d.cni_version for d in conf.delegates] == ["1.0.0", "1.0.0", "1.0.0"]


def test_a_bad_delegate_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.conf"
    bad.write_text("{nope")
    with pytest.raises(InvalidConfig, match=re.escape("bad.conf: file is not valid JSON")):
        parse(clusterNetwork=str(bad))
    (tmp_path / "sub").mkdir()
    with pytest.raises(InvalidConfig, match=re.escape("no .conf, .conflist or .json")):
        parse(clusterNetwork=str(tmp_path / "sub"))
    with pytest.raises(CniError, match="cannot read") as info:
        load_conf_file(str(tmp_path / "none.conf"), "1.0.0")
    assert info.value.code == 5


@pytest.mark.parametrize(
    ("conf", "error", "match"),
    [
        ({"cniVersion": "0.2.0"}, IncompatibleVersion, "cniVersion: '0.2.0' is not supported"),
        ({"cniVersion": 1}, InvalidConfig, "cniVersion: must be a string"),
        ({"name": None}, InvalidConfig, "name: missing"),
        ({"name": "../x"}, InvalidConfig, "name: '../x' must match"),
        ({"name": ["x"]}, InvalidConfig, "name: must be a string, not an array"),
        ({"cniDir": "rel"}, InvalidConfig, "cniDir: 'rel' must be an absolute path"),
        ({"logFile": 3}, InvalidConfig, "logFile: must be a string"),
        ({"logLevel": "trace"}, InvalidConfig, "logLevel"),
        ({"delegateTimeout": 0}, InvalidConfig, "delegateTimeout"),
        ({"delegateTimeout": 3601}, InvalidConfig, "delegateTimeout"),
        ({"delegateTimeout": "5"}, InvalidConfig, "delegateTimeout"),
        ({"readinessTimeout": False}, InvalidConfig, "readinessTimeout"),
        ({"delegates": []}, InvalidConfig, "at least one delegate"),
        ({"delegates": None}, InvalidConfig, "at least one delegate"),
        ({"delegates": "x"}, InvalidConfig, "delegates: must be a list"),
        ({"delegates": [[]]}, InvalidConfig, r"delegates\[0\]: must be a JSON object, not an arr"),
        ({"delegates": [{}]}, InvalidConfig, "delegates\\[0\\].type"),
        ({"delegates": [{"type": "a", "ipam": "x"}]}, InvalidConfig, "ipam: must be a JSON"),
        ({"delegates": [{"type": "a", "ipam": {"type": "../x"}}]}, InvalidConfig, "ipam.type"),
        ({"delegates": [{"type": "a", "masterplugin": 1}]}, InvalidConfig, "masterplugin"),
        ({"delegates": [{"type": "a", "if0name": 5}]}, InvalidConfig, "if0name"),
        ({"delegates": [{"type": "a", "name": "a b"}]}, InvalidConfig, "delegates\\[0\\].name"),
        ({"delegates": [{"plugins": {}}]}, InvalidConfig, "plugins: must be a non-empty list"),
        ({"delegates": [{"plugins": [{"type": "a"}, 5]}]}, InvalidConfig,
         "delegates\\[0\\].plugins\\[1\\]: must be a JSON object"),
        ({"delegates": [{"type": "a", "masterplugin": True}, {"type": "b", "masterplugin": True}]},
         InvalidConfig, r"delegates\[1\].masterplugin: .* found delegates\[0\], delegates\[1\]"),
        ({"delegates": [{"type": "a"}], "clusterNetwork": "/x"}, InvalidConfig, "not both"),
        ({"clusterNetwork": 5, "delegates": None}, InvalidConfig, "clusterNetwork: must be"),
        ({"delegates": [{"type": "a"}], "defaultNetworks": [1]}, InvalidConfig,
         "defaultNetworks"),
    ],
)  # fmt: skip
def test_errors_name_the_field(conf: dict[str, Any], error: type[CniError], match: str) -> None:
    conf.setdefault("delegates", [{"type": "a"}])
    with pytest.raises(error, match=match):
        parse(**conf)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"{", "not valid JSON"),
        (b"\xff", "not valid JSON"),
        (b"[]", "not an array"),
        (b"null", "not null"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"a": "' + b"x" * (1 << 20) + b'"}', "larger than 1048576"),
    ],
)
def test_decode_refuses(data: bytes, match: str) -> None:
    with pytest.raises(DecodeFailure, match=match) as info:
        decode(data)
    assert info.value.code == 6


@pytest.mark.parametrize(
    "value",
    ["", ".", "..", "...", "a/b", "/bin/sh", "..\\x", "x\x00", " x", "x\n", "a b", 5, None, ["x"]],
)
@pytest.mark.parametrize("field", ["type", "ipam.type"])
def test_plugin_type_must_be_a_bare_name(value: Any, field: str) -> None:
    delegate: dict[str, Any] = {"type": "a"}
    if field == "type":
        delegate["type"] = value
    else:
        delegate["ipam"] = {"type": value}
    with pytest.raises(InvalidConfig, match=re.escape(f"delegates[0].{field}: ")):
        parse(delegates=[delegate])


@pytest.mark.parametrize("value", ["bridge", "host-local", "sriov", "a.b", "a..b", "x_1", "9"])
def test_plain_plugin_names(value: str) -> None:
    conf = parse(delegates=[{"type": value, "ipam": {"type": value}}])
    assert conf.delegates[0].plugins[0]["type"] == value


@pytest.mark.parametrize(
    ("name", "why"),
    [("x" * 16, "longer than 15"), ("a/b", "'/'"), ("..", "'.' or '..'"), ("a b", "' '")],
)
@pytest.mark.parametrize("master", [False, True])
def test_bad_if0name_is_refused_whoever_asks(name: str, why: str, master: bool) -> None:
    """An interface name is judged with the conf, before naming: even the master's (which
    gets CNI_IFNAME anyway), since the operator cannot know which network is the master."""
    delegates = [{"type": "a"}, {"type": "b", "if0name": name, "masterplugin": master}]
    with pytest.raises(
        InvalidConfig, match=re.escape(f"delegates[1].if0name: {name!r} ") + ".*" + re.escape(why)
    ):
        parse(delegates=delegates)
