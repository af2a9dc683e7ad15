"""The fake delegate does what its debug file says; the fault tests rely on it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.fakes.harness import FakeWorld, install_fake, processes_with, run_fake, wait_until

ENV = {"CNI_CONTAINERID": "mib-c1", "CNI_IFNAME": "net1", "CNI_NETNS": "/x"}


def test_add_logs_writes_marker_and_prints_a_result_at_the_sent_version(world: FakeWorld) -> None:
    fake = world.delegate("d1")
    conf = json.dumps({**fake.conf(), "cniVersion": "0.4.0", "name": "n"}).encode()
    proc = run_fake(world.bin_dir / "fake", "ADD", conf, ENV)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["cniVersion"] == "0.4.0"
    assert result["ips"][0]["version"] == "4"
    assert result["interfaces"] == [{"name": "net1", "sandbox": "/x"}]
    assert fake.marker_names() == ["mib-c1-net1"]
    [call] = fake.calls()
    assert call["command"] == "ADD"
    assert call["env"]["CNI_IFNAME"] == "net1"
    assert call["stdin"]["name"] == "n"
    proc = run_fake(world.bin_dir / "fake", "DEL", conf, ENV)
    assert proc.returncode == 0 and proc.stdout == b""
    assert fake.marker_names() == []


def test_error_stderr_exit_and_omitted_version(world: FakeWorld) -> None:
    fake = world.delegate("d1")
    fake.steer(ADD={"error": {"code": 11, "msg": "busy"}, "stderr": "oops"})
    conf = json.dumps({**fake.conf(), "cniVersion": "1.0.0"}).encode()
    proc = run_fake(world.bin_dir / "fake", "ADD", conf, ENV)
    assert proc.returncode == 1
    assert json.loads(proc.stdout) == {"cniVersion": "1.0.0", "code": 11, "msg": "busy"}
    assert proc.stderr == b"oops"
    fake.steer(ADD={"omitVersion": True})
    proc = run_fake(world.bin_dir / "fake", "ADD", conf, ENV)
    assert "cniVersion" not in json.loads(proc.stdout)


def test_crash_after_the_side_effect(world: FakeWorld) -> None:
    fake = world.delegate("d1")
    fake.steer(ADD={"crash": "kill"})
    proc = run_fake(world.bin_dir / "fake", "ADD", json.dumps(fake.conf()).encode(), ENV)
    assert proc.returncode == -9 and proc.stdout == b""
    assert fake.marker_names() == ["mib-c1-net1"]


def test_flood_and_garbage(world: FakeWorld) -> None:
    fake = world.delegate("d1")
    fake.steer(ADD={"flood": {"stdout": 300000, "stderr": 70000}, "stdout": "", "effect": False})
    proc = run_fake(world.bin_dir / "fake", "ADD", json.dumps(fake.conf()).encode(), ENV)
    assert (len(proc.stdout), len(proc.stderr)) == (300000, 70000)
    fake.steer(ADD={"stdout": "not json", "exit": 3})
    proc = run_fake(world.bin_dir / "fake", "ADD", json.dumps(fake.conf()).encode(), ENV)
    assert (proc.returncode, proc.stdout) == (3, b"not json")


def test_sleep_runs_in_a_child_that_carries_the_cni_env(world: FakeWorld) -> None:
    fake = world.delegate("d1")
    fake.steer(ADD={"sleep": 30})
    env = {"PATH": "/usr/bin:/bin", "CNI_COMMAND": "ADD", **ENV, "CNI_CONTAINERID": "mib-sleepy"}
    proc = subprocess.Popen(
        [str(world.bin_dir / "fake")], stdin=subprocess.PIPE, env=env, start_new_session=True
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(fake.conf()).encode())
    proc.stdin.close()
    try:
        assert wait_until(lambda: len(processes_with("CNI_CONTAINERID=mib-sleepy")) == 2, 5)
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
    assert wait_until(lambda: not processes_with("CNI_CONTAINERID=mib-sleepy"), 5)


def test_version_without_a_conf_uses_the_sidecar(tmp_path: Path) -> None:
    binary = install_fake(tmp_path, "fake")
    log = tmp_path / "log.jsonl"
    sidecar = Path(f"{binary}.debug.json")
    sidecar.write_text(json.dumps({"log": str(log), "VERSION": {"versions": ["0.4.0"]}}))
    proc = run_fake(binary, "VERSION", b'{"cniVersion": "1.0.0"}')
    assert json.loads(proc.stdout) == {"cniVersion": "1.0.0", "supportedVersions": ["0.4.0"]}
    assert [json.loads(line)["command"] for line in log.read_text().splitlines()] == ["VERSION"]
