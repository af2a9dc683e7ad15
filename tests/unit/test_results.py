"""Result conversion between every pair of spec versions (pkg/types/040 <-> 100 rules)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from multus_cni import results
from multus_cni.errors import IncompatibleVersion
from multus_cni.versions import SUPPORTED_VERSIONS

PAIRS = [(a, b) for a in SUPPORTED_VERSIONS for b in SUPPORTED_VERSIONS]


def result_at(version: str) -> dict[str, Any]:
    """One result, in the shape a plugin speaking `version` prints it."""
    old = version < "1.0.0"
    full = version == "1.1.0"
    iface: dict[str, Any] = {"name": "eth0", "mac": "c2:00:00:00:00:01", "sandbox": "/ns"}
    if full:
        iface.update(mtu=1400, socketPath="/run/x.sock", pciID="0000:00:01.0")
    route: dict[str, Any] = {"dst": "0.0.0.0/0", "gw": "10.202.9.1"}
    if full:
        route.update(mtu=1300, advmss=1260, priority=10, table=100, scope=0)
    ips: list[dict[str, Any]] = [
        {"address": "10.202.9.2/24", "gateway": "10.202.9.1", "interface": 0},
        {"address": "fd00:202::2/64", "interface": 0},
    ]
    if old:
        ips[0]["version"], ips[1]["version"] = "4", "6"
    return {
        "cniVersion": version,
        "interfaces": [iface],
        "ips": ips,
        "routes": [route],
        "dns": {"nameservers": ["10.202.9.53"], "search": ["example"]},
    }


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_every_version_pair(source: str, target: str) -> None:
    given = result_at(source)
    original = copy.deepcopy(given)
    out = results.convert(given, target)
    assert given == original, "the input must not be modified"
    assert out["cniVersion"] == target
    if source == target:
        assert out == given and out is not given
        return
    # ips[].version: added (from the address) going below 1.0.0, dropped going to 1.x
    versions = [ip.get("version") for ip in out["ips"]]
    assert versions == (["4", "6"] if target < "1.0.0" else [None, None])
    assert [ip["address"] for ip in out["ips"]] == ["10.202.9.2/24", "fd00:202::2/64"]
    assert out["ips"][0]["gateway"] == "10.202.9.1"
    assert all(ip["interface"] == 0 for ip in out["ips"])
    # 1.1-only fields survive only 1.1.0 -> 1.1.0 (handled above)
    assert set(out["interfaces"][0]) == {"name", "mac", "sandbox"}
    assert set(out["routes"][0]) == {"dst", "gw"}
    assert out["dns"] == given["dns"]


def test_converting_there_and_back_is_lossless_below_1_1() -> None:
    for source in ("0.3.0", "0.3.1", "0.4.0", "1.0.0"):
        for via in SUPPORTED_VERSIONS:
            there = results.convert(result_at(source), via)
            assert results.convert(there, source) == result_at(source), (source, via)


def test_output_is_a_deep_copy() -> None:
    given = result_at("1.1.0")
    out = results.convert(given, "1.1.0")
    out["interfaces"][0]["name"] = "changed"
    out["dns"]["nameservers"].append("x")
    assert given == result_at("1.1.0")


@pytest.mark.parametrize("bad", [None, "", "0.2.0", "0.1.0", "2.0.0", 1, ["1.0.0"]])
def test_unknown_source_version_is_refused(bad: Any) -> None:
    doc = {"cniVersion": bad} if bad is not None else {}
    with pytest.raises(IncompatibleVersion, match="cannot convert"):
        results.convert(doc, "1.0.0")


@pytest.mark.parametrize("bad", ["", "0.2.0", "1.2.0", "latest"])
def test_unknown_target_version_is_refused(bad: str) -> None:
    with pytest.raises(IncompatibleVersion, match="cannot convert"):
        results.convert(result_at("1.0.0"), bad)


def test_odd_shapes_are_carried_not_crashed_on() -> None:
    doc = {
        "cniVersion": "1.1.0",
        "ips": ["not-an-object", {"no": "address"}, {"address": 5}],
        "interfaces": "not-a-list",
        "routes": [None, {"dst": "::/0", "mtu": 9000}],
        "vendor": {"kept": True},
    }
    out = results.convert(doc, "0.4.0")
    assert out["ips"] == [
        "not-an-object",
        {"no": "address", "version": "4"},
        {"address": 5, "version": "4"},
    ]
    assert out["interfaces"] == "not-a-list"
    assert out["routes"] == [None, {"dst": "::/0"}]
    assert out["vendor"] == {"kept": True}


def test_empty_result() -> None:
    assert results.empty("0.4.0") == {"cniVersion": "0.4.0", "interfaces": [], "ips": [], "dns": {}}
