"""A delegate fails mid-ADD in every way a plugin can: the right error comes back and
the rollback leaves nothing (RELIABILITY.md rows 13, 15-19)."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import pytest

from tests.fakes.harness import FakeDelegate, FakeWorld
from tests.faults.checks import assert_error, assert_ok, run_measured


def three(world: FakeWorld) -> tuple[FakeDelegate, FakeDelegate, FakeDelegate]:
    return world.delegate("d1"), world.delegate("d2", "fake2"), world.delegate("d3")


def rolled_back_after(world: FakeWorld, failed: str) -> list[tuple[str, str]]:
    """The call sequence expected when delegate `failed` (of d1..d3) fails its ADD:
    every delegate started so far is DEL'd, the failed one first (reverse order)."""
    started = ["d1", "d2", "d3"][: ["d1", "d2", "d3"].index(failed) + 1]
    return [(d, "ADD") for d in started] + [(d, "DEL") for d in reversed(started)]


def test_delegate_code_is_kept_named_and_earlier_delegates_rolled_back(world: FakeWorld) -> None:
    d1, d2, d3 = three(world)
    d2.steer(ADD={"error": {"code": 11, "msg": "pool busy", "details": "try later"}})
    call = world.run("ADD", world.conf([d1.conf(), d2.conf(), d3.conf()]))
    doc = assert_error(call, 11)
    assert "pool busy" in doc["msg"] and "fake2" in doc["msg"] and "net1" in doc["msg"]
    assert doc["details"] == "try later"
    assert doc["cniVersion"] == "1.0.0"
    assert world.sequence() == rolled_back_after(world, "d2")
    world.assert_nothing_left()
    # the runtime's DEL after a failed ADD still succeeds and runs the delegates again
    assert_ok(world.run("DEL", world.conf([d1.conf(), d2.conf(), d3.conf()])), prints=False)
    world.assert_nothing_left()


def test_delegate_error_without_cni_version_is_accepted(world: FakeWorld) -> None:
    d1, d2, _ = three(world)
    d2.steer(ADD={"stdout": '{"code": 51, "msg": "limited"}', "exit": 1})
    doc = assert_error(world.run("ADD", world.conf([d1.conf(), d2.conf()])), 51)
    assert "limited" in doc["msg"]
    world.assert_nothing_left()


@pytest.mark.parametrize(
    ("spec", "in_msg", "details"),
    [
        ({"stdout": "segfault at 0x0 <garbage>", "stderr": "panic: boom", "exit": 2},
         "non-CNI output: segfault", "panic: boom"),
        ({"stdout": "", "stderr": "first line\nfatal: no bridge", "exit": 1},
         "exited with code 1: fatal: no bridge", "first line\nfatal: no bridge"),
        ({"stdout": "", "exit": 3}, "exited with code 3 with no output", None),
        ({"stdout": '{"code": "11", "msg": "code is a string"}', "exit": 1},
         "non-CNI output", None),
    ],
    ids=["garbage-stdout", "only-stderr", "no-output", "code-not-int"],
)  # fmt: skip
def test_failure_without_a_cni_error_is_999_with_stderr_in_details(
    world: FakeWorld, spec: dict[str, Any], in_msg: str, details: str | None
) -> None:
    d1, d2, d3 = three(world)
    d2.steer(ADD=spec)
    doc = assert_error(world.run("ADD", world.conf([d1.conf(), d2.conf(), d3.conf()])), 999)
    assert in_msg in doc["msg"] and "fake2" in doc["msg"]
    assert doc.get("details") == details
    assert world.sequence() == rolled_back_after(world, "d2")
    world.assert_nothing_left()


@pytest.mark.parametrize("stdout", ["all good!", "", "[1, 2]", '"a string"', "{trunc"])
def test_success_exit_without_a_json_result_fails_and_rolls_back(
    world: FakeWorld, stdout: str
) -> None:
    d1, d2, d3 = three(world)
    d3.steer(ADD={"stdout": stdout, "exit": 0})
    doc = assert_error(world.run("ADD", world.conf([d1.conf(), d2.conf(), d3.conf()])), 999)
    assert "printed no JSON result" in doc["msg"] and "net2" in doc["msg"]
    assert world.sequence() == rolled_back_after(world, "d3")
    world.assert_nothing_left()


def test_result_without_cni_version_is_taken_at_the_version_sent(world: FakeWorld) -> None:
    """The delegate speaks up to 0.4.0: its version-less result (with 0.4.0's `ips[].version`)
    must be read as 0.4.0 and converted to the conf's 1.0.0, which drops `version`."""
    world.install("fake")
    world.steer_binary("fake", VERSION={"versions": ["0.3.1", "0.4.0"]})
    d1 = world.delegate("d1")
    d1.steer(ADD={"omitVersion": True})
    result = assert_ok(world.run("ADD", world.conf([d1.conf()], "1.0.0")))
    [add] = d1.calls("ADD")
    assert add["stdin"]["cniVersion"] == "0.4.0"
    assert result["cniVersion"] == "1.0.0"
    assert result["ips"] == [{"address": "10.202.255.2/24", "interface": 0}]
    assert_ok(world.run("DEL", world.conf([d1.conf()], "1.0.0")), prints=False)
    world.assert_nothing_left()


def test_empty_object_result_is_an_empty_result(world: FakeWorld) -> None:
    d1 = world.delegate("d1")
    d1.steer(ADD={"stdout": "{}"})
    result = assert_ok(world.run("ADD", world.conf([d1.conf()], "0.4.0")))
    assert result == {"cniVersion": "0.4.0"}
    assert_ok(world.run("DEL", world.conf([d1.conf()], "0.4.0")), prints=False)
    world.assert_nothing_left()


@pytest.mark.parametrize("how", ["kill", "exit"])
def test_crash_after_side_effect_is_rolled_back_too(world: FakeWorld, how: str) -> None:
    d1, d2, d3 = three(world)
    d2.steer(ADD={"crash": how, "exit": 7})
    doc = assert_error(world.run("ADD", world.conf([d1.conf(), d2.conf(), d3.conf()])), 999)
    assert ("killed by signal 9" if how == "kill" else "exited with code 7") in doc["msg"]
    assert world.sequence() == rolled_back_after(world, "d2")
    world.assert_nothing_left()


def test_missing_second_binary_fails_before_anything_runs(world: FakeWorld) -> None:
    d1 = world.delegate("d1")
    conf = world.conf([d1.conf(), {"type": "fake-missing", "debugFile": str(d1.debug_file)}])
    doc = assert_error(world.run("ADD", conf), 7)
    assert "fake-missing" in doc["msg"] and "delegates[1]" in doc["msg"]
    assert world.sequence() == []
    world.assert_nothing_left()


def test_hanging_delegate_is_killed_with_its_tree_and_rolled_back(world: FakeWorld) -> None:
    d1, d2, d3 = three(world)
    d2.steer(ADD={"sleep": 600})
    conf = world.conf([d1.conf(), d2.conf(), d3.conf()], delegateTimeout=2)
    started = time.monotonic()
    doc = assert_error(world.run("ADD", conf), 11)
    assert time.monotonic() - started < 15
    assert "timed out after 2s" in doc["msg"] and "fake2" in doc["msg"]
    assert world.sequence() == rolled_back_after(world, "d2")
    world.assert_nothing_left()  # includes: no leftover `sleep` child of the fake
    assert_ok(world.run("DEL", conf), prints=False)
    world.assert_nothing_left()


def test_delegate_that_closes_its_output_and_hangs_still_times_out(world: FakeWorld) -> None:
    d1, d2, _ = three(world)
    d2.steer(ADD={"closeOutput": True, "sleep": 600})
    conf = world.conf([d1.conf(), d2.conf()], delegateTimeout=1)
    started = time.monotonic()
    doc = assert_error(world.run("ADD", conf), 11)
    assert time.monotonic() - started < 10
    assert "timed out after 1s" in doc["msg"]
    assert world.sequence() == rolled_back_after(world, "d2")
    world.assert_nothing_left()


def test_stdout_flood_is_cut_off_fast_with_bounded_memory(world: FakeWorld) -> None:
    d1, d2, _ = three(world)
    d2.steer(ADD={"flood": {"stdout": 100 << 20}})
    conf = world.conf([d1.conf(), d2.conf()])
    measured = run_measured(json.dumps(conf).encode(), world.cni_env("ADD"))
    doc = assert_error(measured.call, 999)
    assert "more than 1048576 bytes on stdout" in doc["msg"] and "fake2" in doc["msg"]
    assert measured.seconds < 10
    assert measured.max_rss_kib < 40 * 1024, measured.max_rss_kib
    assert world.sequence() == rolled_back_after(world, "d2")
    world.assert_nothing_left()


def test_stderr_flood_is_drained_and_bounded(world: FakeWorld) -> None:
    d1, d2, _ = three(world)
    d2.steer(ADD={"flood": {"stderr": 100 << 20}})
    conf = world.conf([d1.conf(), d2.conf()], logLevel="debug")
    measured = run_measured(json.dumps(conf).encode(), world.cni_env("ADD"))
    assert_ok(measured.call)
    assert measured.max_rss_kib < 40 * 1024, measured.max_rss_kib
    assert len(measured.call.stderr) < 1 << 20  # what multus logged of it is bounded
    assert_ok(world.run("DEL", conf), prints=False)
    world.assert_nothing_left()


def test_binary_busy_for_writing_is_retried(world: FakeWorld) -> None:
    """ETXTBSY (an installer still has the binary open for writing) is retried, not fatal."""
    d1, d2, _ = three(world)
    conf = world.conf([d1.conf(), d2.conf()])
    writer = os.open(world.bin_dir / "fake2", os.O_WRONLY)
    timer = threading.Timer(1.5, os.close, (writer,))
    timer.start()
    try:
        started = time.monotonic()
        assert_ok(world.run("ADD", conf))
        assert time.monotonic() - started >= 1.0
    finally:
        timer.join()
    assert world.sequence() == [("d1", "ADD"), ("d2", "ADD")]
    assert_ok(world.run("DEL", conf), prints=False)
    world.assert_nothing_left()


@pytest.mark.parametrize("exit_code", [0, 1])
def test_deeply_nested_output_is_a_clean_failure(world: FakeWorld, exit_code: int) -> None:
    d1, d2, _ = three(world)
    d2.steer(ADD={"stdout": "[" * 200_000 + "]" * 200_000, "exit": exit_code})
    doc = assert_error(world.run("ADD", world.conf([d1.conf(), d2.conf()])), 999)
    assert "fake2" in doc["msg"]
    assert world.sequence() == rolled_back_after(world, "d2")
    world.assert_nothing_left()


@pytest.mark.parametrize(
    "result",
    [
        {"cniVersion": "0.2.0", "ip4": {"ip": "10.202.6.2/24"}},
        {"cniVersion": "9.9.9"},
        {"cniVersion": 1, "ips": []},
    ],
    ids=["0.2.0", "future", "not-a-string"],
)
def test_result_in_a_version_we_cannot_convert_fails_and_rolls_back(
    world: FakeWorld, result: dict[str, Any]
) -> None:
    d1, d2, _ = three(world)
    d2.steer(ADD={"result": result})
    doc = assert_error(world.run("ADD", world.conf([d1.conf(), d2.conf()])), 1)
    assert "cannot convert" in doc["msg"]
    assert world.sequence() == rolled_back_after(world, "d2")
    world.assert_nothing_left()


def test_rollback_that_fails_leaves_the_record_for_the_runtimes_del(world: FakeWorld) -> None:
    """ADD of d2 fails and so does the rollback DEL of d1: the original error is
    returned, the record stays (state "failed", d1 still held, d2 undone), and the
    runtime's DEL finishes the job: d1 only."""
    d1, d2, _ = three(world)
    d2.steer(ADD={"error": {"code": 11, "msg": "busy"}})
    d1.steer(DEL={"error": {"code": 5, "msg": "disk full"}, "effect": False})
    conf = world.conf([d1.conf(), d2.conf()])
    doc = assert_error(world.run("ADD", conf), 11)
    assert "busy" in doc["msg"]
    record = world.record()
    assert record["state"] == "failed"
    assert [d["calls"][0]["state"] for d in record["delegates"]] == ["succeeded", "deleted"]
    assert "disk full" in record["lastDelError"] and record["delFailures"] == 1
    assert d1.marker_names() == [f"{world.container_id}-eth0"]
    d1.steer()
    before = len(world.sequence())
    assert_ok(world.run("DEL", conf), prints=False)
    assert world.sequence()[before:] == [("d1", "DEL")]
    world.assert_nothing_left()
