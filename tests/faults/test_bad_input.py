"""Bad stdin, bad environment, bad conf: a clear CNI error, and nothing runs or is
written (RELIABILITY.md rows 1-7, 36; invariant I4)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.fakes.harness import FakeWorld
from tests.faults.checks import assert_error, one_document, run_measured
from tests.support.cni import MULTUS, CniCall

MIB = 1 << 20


def good_conf(world: FakeWorld, **changes: Any) -> dict[str, Any]:
    d1, d2 = world.delegate("d1"), world.delegate("d2")
    conf = world.conf([d1.conf(), d2.conf()])
    conf.update(changes)
    return {k: v for k, v in conf.items() if v is not None}


def padded(world: FakeWorld, size: int) -> bytes:
    conf = good_conf(world)
    conf["padding"] = "x" * size
    return json.dumps(conf).encode()


def run_with_stdin_closed(world: FakeWorld) -> CniCall:
    env = world.cni_env("ADD")
    proc = subprocess.run(
        [MULTUS],
        env=env,
        capture_output=True,
        preexec_fn=lambda: os.close(0),
        check=False,
    )
    return CniCall(proc.returncode, proc.stdout.decode(), proc.stderr.decode())


Case = Callable[[FakeWorld], CniCall]
STDIN_CASES: dict[str, tuple[Case, int, str]] = {
    "invalid": (lambda w: w.run("ADD", b"{"), 6, "not valid JSON"),
    "empty": (lambda w: w.run("ADD", b""), 6, "empty"),
    "whitespace": (lambda w: w.run("ADD", b" \n\t "), 6, "empty"),
    "closed": (run_with_stdin_closed, 6, "empty"),
    "not-utf8": (lambda w: w.run("ADD", b'{"name": "\xff\xfe"}'), 6, "not valid JSON"),
    "bom": (lambda w: w.run("ADD", b"\xef\xbb\xbf" + json.dumps(good_conf(w)).encode()), 6, ""),
    "trailing-data": (lambda w: w.run("ADD", json.dumps(good_conf(w)) + " {}"), 6, ""),
    "array": (lambda w: w.run("ADD", b"[]"), 6, "must be a JSON object, not an array"),
    "string": (lambda w: w.run("ADD", b'"multus"'), 6, "not a string"),
    "null": (lambda w: w.run("ADD", b"null"), 6, "not null"),
    "number": (lambda w: w.run("ADD", b"1e999"), 6, "out of the range"),
    "float": (lambda w: w.run("ADD", b"1.5"), 6, "not a number"),
    "huge": (lambda w: w.run("ADD", padded(w, 2 * MIB)), 6, "larger than 1048576"),
    "just-over-1mib": (lambda w: w.run("ADD", padded(w, MIB)), 6, "larger than 1048576"),
    "deep-arrays": (lambda w: w.run("ADD", b"[" * 500_000 + b"]" * 500_000), 6, "nested"),
    "deep-objects": (lambda w: w.run("ADD", b'{"a":' * 150_000 + b"1" + b"}" * 150_000), 6, ""),
    "deep-in-conf": (
        lambda w: w.run("ADD", json.dumps(good_conf(w))[:-1] + ', "x": ' + "[" * 300_000 + "]"
                        * 300_000 + "}"), 6, "nested"),
}  # fmt: skip

ENV_CASES: dict[str, tuple[Case, int, str]] = {
    "no-command": (lambda w: w.run("ADD", good_conf(w), drop_env=("CNI_COMMAND",)), 4,
                   "[CNI_COMMAND]"),
    "unknown-command": (lambda w: w.run("ATTACH", good_conf(w)), 4, "'ATTACH'"),
    "lowercase-command": (lambda w: w.run("add", good_conf(w)), 4, "'add'"),
    "all-missing": (lambda w: w.run("ADD", good_conf(w), container_id="", netns="", ifname="",
                                    cni_path=""), 4,
                    "[CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH]"),
    "del-missing": (lambda w: w.run("DEL", good_conf(w), container_id="", ifname=""), 4,
                    "[CNI_CONTAINERID,CNI_IFNAME]"),
    "cid-traversal": (lambda w: w.run("ADD", good_conf(w), container_id="../../etc/x"), 4,
                      "CNI_CONTAINERID: '../../etc/x'"),
    "cid-leading-dot": (lambda w: w.run("ADD", good_conf(w), container_id=".hidden"), 4,
                        "CNI_CONTAINERID"),
    "cid-too-long": (lambda w: w.run("ADD", good_conf(w), container_id="a" * 201), 4,
                     "201 bytes, longer than 200"),
    "ifname-16": (lambda w: w.run("ADD", good_conf(w), ifname="a" * 16), 4, "longer than 15"),
    "ifname-16-bytes": (lambda w: w.run("ADD", good_conf(w), ifname="é" * 8), 4, "15 bytes"),
    "ifname-slash": (lambda w: w.run("ADD", good_conf(w), ifname="a/b"), 4, "'/'"),
    "ifname-colon": (lambda w: w.run("ADD", good_conf(w), ifname="a:b"), 4, "':'"),
    "ifname-space": (lambda w: w.run("ADD", good_conf(w), ifname="a b"), 4, "' '"),
    "ifname-dotdot": (lambda w: w.run("ADD", good_conf(w), ifname=".."), 4, "'..'"),
    "ifname-dot": (lambda w: w.run("ADD", good_conf(w), ifname="."), 4, "'.'"),
    "cid-and-ifname": (lambda w: w.run("ADD", good_conf(w), container_id="-x", ifname="a/b"), 4,
                       "CNI_CONTAINERID: '-x' must match"),
    "host-netns": (lambda w: w.run("ADD", good_conf(w), netns="/proc/self/ns/net"), 8,
                   "own (host) network namespace"),
    "pid1-netns": (lambda w: w.run("ADD", good_conf(w), netns="/proc/1/ns/net"), 8, "CNI_NETNS"),
    "missing-netns": (lambda w: w.run("ADD", good_conf(w), netns="/var/run/netns/mib-none"), 8,
                      "cannot be opened"),
    "check-missing-netns": (lambda w: w.run("CHECK", good_conf(w, cniVersion="1.0.0"),
                                            netns="/nonexistent/mib"), 8, "CNI_NETNS"),
    "bad-cni-args": (lambda w: w.run("ADD", good_conf(w), cni_args="K8S_POD_NAME=x;FOO=a=b;;"), 4,
                     "'FOO=a=b'"),
    "cni-args-no-key": (lambda w: w.run("ADD", good_conf(w), cni_args="=v"), 4, "'=v'"),
}  # fmt: skip

CONF_CASES: dict[str, tuple[Case, int, str]] = {
    "version-unknown": (lambda w: w.run("ADD", good_conf(w, cniVersion="9.9.9")), 1, "'9.9.9'"),
    "version-too-old": (lambda w: w.run("ADD", good_conf(w, cniVersion="0.2.0")), 1, "'0.2.0'"),
    "version-number": (lambda w: w.run("ADD", good_conf(w, cniVersion=1.0)), 7, "cniVersion"),
    "version-empty": (lambda w: w.run("ADD", good_conf(w, cniVersion="")), 1, "cniVersion"),
    "delegate-version": (lambda w: w.run("ADD", good_conf(
        w, delegates=[w.delegate("d1").conf(cniVersion="2.0.0")])), 1, "delegates[0].cniVersion"),
    "name-traversal": (lambda w: w.run("ADD", good_conf(w, name="../x")), 7, "name: '../x'"),
    "name-missing": (lambda w: w.run("ADD", good_conf(w, name=None)), 7, "name"),
    "name-number": (lambda w: w.run("ADD", good_conf(w, name=5)), 7, "name"),
    "delegate-name-traversal": (lambda w: w.run("ADD", good_conf(
        w, delegates=[w.delegate("d1").conf(name="a/../b")])), 7, "delegates[0].name"),
    "no-delegates": (lambda w: w.run("ADD", good_conf(w, delegates=[])), 7, "at least one"),
    "delegates-missing": (lambda w: w.run("ADD", good_conf(w, delegates=None)), 7,
                          "at least one"),
    "delegates-object": (lambda w: w.run("ADD", good_conf(w, delegates={"type": "fake"})), 7,
                         "delegates: must be a list"),
    "delegate-string": (lambda w: w.run("ADD", good_conf(w, delegates=["fake"])), 7,
                        "delegates[0]"),
    "two-masters": (lambda w: w.run("ADD", good_conf(w, delegates=[
        w.delegate("d1").conf(masterplugin=True), w.delegate("d2").conf(masterplugin=True)])),
        7, "only one delegate may be the master"),
    "masterplugin-string": (lambda w: w.run("ADD", good_conf(w, delegates=[
        w.delegate("d1").conf(masterplugin="true")])), 7, "masterplugin"),
    "empty-plugins": (lambda w: w.run("ADD", good_conf(w, delegates=[
        {"name": "l", "plugins": []}])), 7, "plugins"),
    "duplicate-ifname": (lambda w: w.run("ADD", good_conf(w, delegates=[
        w.delegate("d1").conf(), w.delegate("d2").conf(if0name="eth0")])), 7, "already used"),
    "bad-if0name": (lambda w: w.run("ADD", good_conf(w, delegates=[
        w.delegate("d1").conf(), w.delegate("d2").conf(if0name="x" * 20)])), 7, "if0name"),
    "relative-cni-dir": (lambda w: w.run("ADD", good_conf(w, cniDir="cache")), 7, "cniDir"),
    "bad-log-level": (lambda w: w.run("ADD", good_conf(w, logLevel="loud")), 7, "logLevel"),
    "bad-timeout": (lambda w: w.run("ADD", good_conf(w, delegateTimeout=-1)), 7,
                    "delegateTimeout"),
    "timeout-bool": (lambda w: w.run("ADD", good_conf(w, delegateTimeout=True)), 7,
                     "delegateTimeout"),
    "cluster-and-delegates": (lambda w: w.run("ADD", good_conf(w, clusterNetwork="/x.conf")), 7,
                              "not both"),
    "cluster-network-missing-file": (lambda w: w.run("ADD", good_conf(
        w, delegates=None, clusterNetwork="/nonexistent/mib.conf")), 5, "mib.conf"),
    "default-networks-not-list": (lambda w: w.run("ADD", good_conf(w, defaultNetworks="a")), 7,
                                  "defaultNetworks"),
}  # fmt: skip

ALL_CASES = {**STDIN_CASES, **ENV_CASES, **CONF_CASES}


@pytest.mark.parametrize("case", sorted(ALL_CASES))
def test_bad_input_is_one_clear_error_and_nothing_runs(world: FakeWorld, case: str) -> None:
    make_call, code, in_msg = ALL_CASES[case]
    started = time.monotonic()
    call = make_call(world)
    elapsed = time.monotonic() - started
    doc = assert_error(call, code)
    assert in_msg in doc["msg"], doc
    assert elapsed < 5, f"took {elapsed:.1f}s"
    assert world.calls() == [], "a delegate ran"
    assert not world.cni_dir.exists(), "something was written"


DEL_REFUSED_ENV: dict[str, dict[str, str]] = {
    "cid-traversal": {"container_id": "../x"},
    "cid-too-long": {"container_id": "a" * 300},
    "ifname-tab": {"ifname": "a\tb"},
    "ifname-not-utf8": {"ifname": "net\udcff"},
    "cni-args-malformed": {"cni_args": "K8S_POD_NAME=x;FOO=a=b"},
}


@pytest.mark.parametrize("case", sorted(DEL_REFUSED_ENV))
def test_del_of_an_environment_add_refuses_succeeds_and_says_why(
    world: FakeWorld, case: str
) -> None:
    """ADD refuses these, so nothing can be attached under them: DEL succeeds (a DEL
    that fails for ever is a pod stuck in Terminating), runs nothing, writes nothing,
    and says so in the log."""
    call = world.run("DEL", good_conf(world), **DEL_REFUSED_ENV[case])
    assert call.rc == 0, call.stdout
    assert call.stdout == ""
    assert "nothing" in call.stderr and "Traceback" not in call.stderr
    assert world.calls() == []
    written = [p for p in world.cni_dir.rglob("*") if p.is_file()]
    assert written == [], f"files left: {written}"


def test_version_ignores_stdin_and_the_rest_of_the_environment(world: FakeWorld) -> None:
    for stdin in (b"\xff garbage {", b"", b"[" * 100_000):
        # leftover CNI_* variables of a caller do not matter to VERSION either
        call = world.run("VERSION", stdin, container_id="../bad", ifname="a/b", cni_args="x")
        assert call.rc == 0, call.stdout
        assert one_document(call.stdout) == {
            "cniVersion": "1.1.0",
            "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"],
        }
        assert "Traceback" not in call.stderr
    assert world.calls() == []


def test_huge_stdin_is_refused_fast_with_bounded_memory(world: FakeWorld) -> None:
    """Row 2: 64 MiB on stdin; multus reads at most 1 MiB + 1 of it."""
    measured = run_measured(padded(world, 64 * MIB), world.cni_env("ADD"))
    assert "larger than 1048576 bytes" in assert_error(measured.call, 6)["msg"]
    assert measured.seconds < 5
    assert measured.max_rss_kib < 40 * 1024, measured.max_rss_kib
    assert world.calls() == []
