"""Running one delegate: finding it, bounded capture, and turning its failure into ours."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from multus_cni import invoke
from multus_cni.errors import CniError, DelegateError, InvalidConfig, TryAgainLater
from multus_cni.invoke import (
    Delegate,
    VersionCache,
    delegate_failure,
    find_plugin,
    parse_result,
    run_bounded,
)

LABEL = "'fake' (net1, delegates[1])"


# ---- delegate_failure ----


def test_cni_error_keeps_code_message_and_details() -> None:
    out = json.dumps({"cniVersion": "1.0.0", "code": 11, "msg": "busy", "details": "d"})
    error = delegate_failure(LABEL, "ADD", 1, out.encode(), b"log line")
    assert isinstance(error, DelegateError)
    assert (error.code, error.msg, error.details) == (
        11,
        f"delegate {LABEL}: ADD failed: busy",
        "d",
    )


def test_cni_error_without_version_or_details_takes_stderr() -> None:
    error = delegate_failure(LABEL, "DEL", 1, b'{"code": 7, "msg": ""}', b" why \n")
    assert (error.code, error.details) == (7, "why")
    assert error.msg.endswith("DEL failed: (no message)")


@pytest.mark.parametrize(
    "out",
    [b'{"code": true, "msg": "x"}', b'{"code": "11"}', b'{"code": 1.5}', b"[11]", b"11",
     b'{"msg": "no code"}', b"\xff\xfe", b"[" * 50_000],
)  # fmt: skip
def test_anything_else_on_stdout_is_999_with_the_output_shown(out: bytes) -> None:
    error = delegate_failure(LABEL, "ADD", 2, out, b"the stderr")
    assert type(error) is CniError and error.code == 999
    assert f"delegate {LABEL}: ADD failed with exit code 2 and non-CNI output" in error.msg
    assert error.details == "the stderr"


def test_output_shown_is_bounded() -> None:
    error = delegate_failure(LABEL, "ADD", 1, b"x" * 100_000, b"")
    assert len(error.msg) < 700


@pytest.mark.parametrize(
    ("rc", "err", "msg"),
    [
        (1, b"", "ADD failed: exited with code 1 with no output"),
        (3, b"first\nlast line\n", "ADD failed: exited with code 3: last line"),
        (-9, b"", "ADD failed: was killed by signal 9 with no output"),
        (-15, b"bye", "ADD failed: was killed by signal 15: bye"),
    ],
)
def test_no_stdout_says_how_it_ended(rc: int, err: bytes, msg: str) -> None:
    error = delegate_failure(LABEL, "ADD", rc, b"  \n", err)
    assert error.code == 999 and error.msg == f"delegate {LABEL}: {msg}"
    assert error.details == err.decode().strip()


# ---- parse_result ----


def test_result_without_version_is_at_the_version_sent() -> None:
    assert parse_result(LABEL, b'{"ips": []}', "0.4.0") == {"ips": [], "cniVersion": "0.4.0"}
    assert parse_result(LABEL, b'{"cniVersion": "1.1.0"}', "0.4.0") == {"cniVersion": "1.1.0"}


@pytest.mark.parametrize("out", [b"", b"ok", b"[]", b'"x"', b"{", b"\xff", b"[" * 50_000])
def test_result_that_is_no_json_object_is_an_error(out: bytes) -> None:
    with pytest.raises(CniError, match="printed no JSON result") as info:
        parse_result(LABEL, out, "1.0.0")
    assert info.value.code == 999


# ---- find_plugin ----


def executable(path: Path, body: str = "#!/bin/sh\nexit 0\n", mode: int = 0o755) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    path.chmod(mode)
    return path


def test_find_plugin_searches_dirs_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    executable(second / "p")
    assert find_plugin("p", [str(first), str(second)], "") == str(second / "p")
    executable(first / "p")
    assert find_plugin("p", [str(first), str(second)], "") == str(first / "p")


def test_find_plugin_skips_unusable_candidates_and_says_why(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    (a / "p").mkdir(parents=True)
    executable(b / "p", mode=0o644)
    executable(c / "p")
    assert find_plugin("p", [str(a), str(b), str(c)], "") == str(c / "p")
    with pytest.raises(InvalidConfig) as info:
        find_plugin("p", [str(a), str(b)], "delegates[2].")
    assert info.value.msg.startswith("delegates[2].type: plugin 'p' not found")
    assert "is not a regular file" in info.value.msg and "is not executable" in info.value.msg


def test_find_plugin_symlinks(tmp_path: Path) -> None:
    bin_dir, other = tmp_path / "bin", tmp_path / "other"
    executable(bin_dir / "real")
    executable(other / "canary")
    os.symlink(bin_dir / "real", bin_dir / "inside")
    os.symlink(other / "canary", bin_dir / "outside")
    assert find_plugin("inside", [str(bin_dir)], "") == str(bin_dir / "inside")
    with pytest.raises(InvalidConfig, match="outside the plugin directories"):
        find_plugin("outside", [str(bin_dir)], "")
    # a link into another configured plugin directory is fine
    assert find_plugin("outside", [str(bin_dir), str(other)], "") == str(bin_dir / "outside")


def test_find_plugin_missing(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig, match=f"searched {tmp_path}"):
        find_plugin("nope", [str(tmp_path)], "")


# ---- run_bounded ----

ENV = {"PATH": "/usr/bin:/bin"}


def test_stdin_is_fed_and_outputs_captured(tmp_path: Path) -> None:
    script = executable(tmp_path / "p", "#!/bin/sh\nwc -c\necho err >&2\nexit 4\n")
    payload = b"x" * (3 << 20)  # far more than a pipe buffer
    rc, out, err = run_bounded(str(script), ENV, payload, 10, LABEL)
    assert (rc, out.strip(), err) == (4, str(len(payload)).encode(), b"err\n")


def test_plugin_that_ignores_stdin_does_not_hang_us(tmp_path: Path) -> None:
    script = executable(tmp_path / "p", "#!/bin/sh\necho '{}'\n")
    rc, out, _ = run_bounded(str(script), ENV, b"y" * (4 << 20), 10, LABEL)
    assert (rc, out) == (0, b"{}\n")


def test_stdout_over_the_bound_is_an_error(tmp_path: Path) -> None:
    script = executable(tmp_path / "p", "#!/bin/sh\nexec yes\n")
    started = time.monotonic()
    with pytest.raises(CniError, match="more than 1048576 bytes on stdout"):
        run_bounded(str(script), ENV, b"", 10, LABEL)
    assert time.monotonic() - started < 5


def test_stderr_is_drained_but_only_its_start_kept(tmp_path: Path) -> None:
    script = executable(tmp_path / "p", "#!/bin/sh\nhead -c 5000000 /dev/zero >&2\necho ok\n")
    rc, out, err = run_bounded(str(script), ENV, b"", 10, LABEL)
    assert (rc, out, len(err)) == (0, b"ok\n", invoke.MAX_STDERR_KEPT)


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild-alive"
    script = executable(
        tmp_path / "p", f"#!/bin/sh\n(sleep 1.5; touch {marker}) &\necho partial >&2\nsleep 30\n"
    )
    started = time.monotonic()
    with pytest.raises(TryAgainLater, match=r"timed out after 0\.5s") as info:
        run_bounded(str(script), ENV, b"", 0.5, LABEL)
    assert time.monotonic() - started < 3
    assert info.value.details == "partial\n"
    time.sleep(1.5)
    assert not marker.exists(), "a grandchild of the delegate survived the timeout"


def test_timeout_holds_after_the_delegate_closed_its_output(tmp_path: Path) -> None:
    script = executable(tmp_path / "p", "#!/bin/sh\necho early >&2\nexec >&- 2>&-\nsleep 30\n")
    started = time.monotonic()
    with pytest.raises(TryAgainLater, match="timed out") as info:
        run_bounded(str(script), ENV, b"", 0.5, LABEL)
    assert time.monotonic() - started < 3
    assert info.value.details == "early\n"


def test_grandchild_holding_the_pipes_does_not_keep_us_waiting(tmp_path: Path) -> None:
    script = executable(tmp_path / "p", "#!/bin/sh\nsleep 20 &\necho '{}'\n")
    started = time.monotonic()
    rc, out, _ = run_bounded(str(script), ENV, b"", 30, LABEL)
    assert (rc, out) == (0, b"{}\n")
    assert time.monotonic() - started < 5


def test_unexecutable_binary_is_an_io_error(tmp_path: Path) -> None:
    script = executable(tmp_path / "p", "not a script at all\x00\x01")
    with pytest.raises(CniError, match="cannot execute") as info:
        run_bounded(str(script), ENV, b"", 5, LABEL)
    assert info.value.code == 5


# ---- Delegate and VersionCache ----


def version_plugin(path: Path, versions: list[str], counter: Path) -> Path:
    answer = json.dumps({"cniVersion": "1.0.0", "supportedVersions": versions})
    return executable(path, f"#!/bin/sh\necho x >> {counter}\necho '{answer}'\n")


def test_version_answers_are_cached_per_binary_identity(tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    plugin = version_plugin(tmp_path / "bin" / "p", ["0.4.0", "1.0.0"], counter)
    delegate = Delegate(str(plugin), {**ENV, "CNI_PATH": "/x"}, 5, LABEL)
    cache_path = tmp_path / "versions.json"
    cache = VersionCache(str(cache_path))
    assert cache.supported(delegate, "1.1.0") == ["0.4.0", "1.0.0"]
    cache.save()
    again = VersionCache(str(cache_path))
    assert again.supported(delegate, "1.1.0") == ["0.4.0", "1.0.0"]
    assert counter.read_text().count("x") == 1
    # the binary is replaced (new inode): asked again
    replacement = version_plugin(tmp_path / "new", ["1.1.0"], counter)
    replacement.rename(plugin)
    assert VersionCache(str(cache_path)).supported(delegate, "1.1.0") == ["1.1.0"]
    assert counter.read_text().count("x") == 2


@pytest.mark.parametrize(
    "body", ["#!/bin/sh\nexit 1\n", "#!/bin/sh\necho nope\n", "#!/bin/sh\necho '{\"a\": 1}'\n"]
)
def test_no_usable_version_answer_is_none(tmp_path: Path, body: str) -> None:
    plugin = executable(tmp_path / "p", body)
    cache = VersionCache(str(tmp_path / "v.json"))
    assert cache.supported(Delegate(str(plugin), ENV, 5, LABEL), "1.0.0") is None


def test_corrupt_version_cache_is_ignored(tmp_path: Path) -> None:
    counter = tmp_path / "calls"
    plugin = version_plugin(tmp_path / "p", ["1.0.0"], counter)
    cache_path = tmp_path / "v.json"
    cache_path.write_text("{garbage")
    cache = VersionCache(str(cache_path))
    assert cache.supported(Delegate(str(plugin), ENV, 5, LABEL), "1.0.0") == ["1.0.0"]
    cache.save()
    assert json.loads(cache_path.read_text())[str(plugin)]["versions"] == ["1.0.0"]


def test_delegate_call_sets_command_ifname_and_netns(tmp_path: Path) -> None:
    dump = tmp_path / "env"
    plugin = executable(tmp_path / "p", f"#!/bin/sh\nenv | grep ^CNI_ | sort > {dump}\n")
    base = {**ENV, "CNI_COMMAND": "ADD", "CNI_IFNAME": "eth0", "CNI_NETNS": "/ns"}
    delegate = Delegate(str(plugin), base, 5, LABEL)
    delegate.call("DEL", "net1", b"{}", netns="")
    assert dump.read_text().split() == ["CNI_COMMAND=DEL", "CNI_IFNAME=net1"]
    delegate.call("CHECK", "net2", b"{}", netns="/other")
    assert dump.read_text().split() == ["CNI_COMMAND=CHECK", "CNI_IFNAME=net2", "CNI_NETNS=/other"]
    delegate.call("ADD", "", b"{}")
    assert dump.read_text().split() == ["CNI_COMMAND=ADD", "CNI_IFNAME=eth0", "CNI_NETNS=/ns"]
    assert base["CNI_COMMAND"] == "ADD"  # the shared base is not modified
