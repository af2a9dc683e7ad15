"""The two shims, one protocol: every test here runs against the static C shim and its
Python twin, against the real daemon or a fake server that misbehaves on purpose."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from multus_cni import shim as wire
from tests.node.conftest import SHIMS, Daemon, run_shim
from tests.support.cni import MULTUS, run_multus
from tests.support.lab import Node

pytestmark = pytest.mark.usefixtures("c_shim")
KINDS = ["c", "py"]
CONF = {"cniVersion": "1.0.0", "name": "mnd-shim", "delegates": [{"type": "bridge"}]}


def call(
    kind: str, command: str, socket_dir: Path, conf: dict[str, Any] | None = None, **kwargs: Any
) -> Any:
    kwargs.setdefault("container_id", "mndshim")
    kwargs.setdefault("netns", "/var/run/netns/none")
    return run_shim(kind, command, conf or CONF, socket_dir, node="", **kwargs)


class FakeServer:
    """A unix socket server that answers with `behave(conn)`."""

    def __init__(
        self, directory: Path, behave: Callable[[socket.socket], None], accept: bool = True
    ) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / wire.SOCKET_NAME
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        self.sock.listen(1 if accept else 0)
        self.behave = behave
        self.requests: list[bytes] = []
        self.conns: list[socket.socket] = []
        if accept:
            threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.behave, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def fake_server(tmp_path: Path) -> Iterator[Callable[..., FakeServer]]:
    made: list[FakeServer] = []

    def make(behave: Callable[[socket.socket], None], accept: bool = True) -> FakeServer:
        server = FakeServer(tmp_path / "run", behave, accept)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def read_request(conn: socket.socket) -> tuple[dict[str, str], bytes]:
    data = b""
    while b"\n" not in data:
        data += conn.recv(4096)
    head, _, rest = data.partition(b"\n")
    _, env_len, stdin_len = wire.parse_request_header(head + b"\n")
    while len(rest) < env_len + stdin_len:
        rest += conn.recv(65536)
    return wire.parse_env(rest[:env_len]), rest[env_len : env_len + stdin_len]


@pytest.mark.parametrize("kind", KINDS)
def test_version_is_answered_by_the_shim(kind: str, tmp_path: Path) -> None:
    mine = call(kind, "VERSION", tmp_path / "nobody-listens")
    theirs = run_multus("VERSION", b"", executable=MULTUS)
    assert mine.rc == 0 and json.loads(mine.stdout) == json.loads(theirs.stdout)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("command", ["ADD", "CHECK", "GC"])
def test_daemon_down_is_code_11_at_once(kind: str, command: str, tmp_path: Path) -> None:
    started = time.monotonic()
    result = call(kind, command, tmp_path / "run")
    assert time.monotonic() - started < 2
    assert result.rc == 1
    error = result.doc
    assert error["code"] == 11 and error["cniVersion"] == "1.0.0"
    assert str(tmp_path / "run" / "multus.sock") in error["msg"]


@pytest.mark.parametrize("kind", KINDS)
def test_status_with_the_daemon_down_is_plugin_unavailable(kind: str, tmp_path: Path) -> None:
    assert call(kind, "STATUS", tmp_path / "run").doc["code"] == 50


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("accept", [True, False], ids=["accepts-never-answers", "never-accepts"])
def test_silent_daemon_is_code_11_within_10s(
    kind: str, accept: bool, fake_server: Callable[..., FakeServer], tmp_path: Path
) -> None:
    fake_server(lambda conn: time.sleep(60), accept=accept)
    started = time.monotonic()
    result = call(kind, "ADD", tmp_path / "run", timeout=30)
    took = time.monotonic() - started
    assert result.doc["code"] == 11, result.stdout
    assert 5 < took < 10, took


@pytest.mark.parametrize("kind", KINDS)
def test_del_with_the_daemon_down(kind: str, tmp_path: Path) -> None:
    """Nothing recorded: DEL succeeds (nothing to undo). A record: code 11, the
    runtime retries until the daemon is back to undo it."""
    run_dir = tmp_path / "run"
    gone = call(kind, "DEL", run_dir, netns="")
    assert gone.rc == 0 and gone.stdout == "", gone.stdout
    assert "nothing to do" in gone.stderr
    # the conf's cniDir, when the daemon left no link to its records
    cni_dir = tmp_path / "cni"
    (cni_dir / "attachments").mkdir(parents=True)
    (cni_dir / "attachments" / "mndshim:eth0.json").write_text("{}")
    conf = {**CONF, "cniDir": str(cni_dir)}
    kept = call(kind, "DEL", run_dir, conf, netns="")
    assert kept.rc == 1 and kept.doc["code"] == 11
    assert call(kind, "DEL", run_dir, conf, netns="", ifname="net1").rc == 0
    # the daemon's link to its records wins over the conf's cniDir
    run_dir.mkdir()
    (tmp_path / "empty").mkdir()
    (run_dir / "attachments").symlink_to(tmp_path / "empty")
    assert call(kind, "DEL", run_dir, conf, netns="").rc == 0
    # a container id that cannot be a file name: unsure, so no success
    assert call(kind, "DEL", run_dir, conf, netns="", container_id="../x").doc["code"] == 11


@pytest.mark.parametrize("kind", KINDS)
def test_request_framing_and_answer_pass_through(
    kind: str, fake_server: Callable[..., FakeServer], tmp_path: Path
) -> None:
    """The whole environment and stdin reach the daemon byte for byte; its stdout,
    stderr and exit code reach the runtime unchanged (a delegate's own CNI code too)."""
    seen: dict[str, Any] = {}
    answer = b'{"cniVersion":"1.0.0","code":117,"msg":"delegate says no"}\n'

    def behave(conn: socket.socket) -> None:
        seen["env"], seen["stdin"] = read_request(conn)
        conn.sendall(wire.encode_ack())
        time.sleep(0.2)
        # a later daemon may append fields to RESULT: any shim must read it
        conn.sendall(b"MPYSHIM 1 RESULT 3 %d 6 future fields\n" % len(answer) + answer + b"boom!\n")
        conn.close()

    fake_server(behave)
    conf = {**CONF, "unicode": "ünï\u2603", "big": "x" * 300_000}
    result = call(
        kind,
        "ADD",
        tmp_path / "run",
        conf,
        cni_args="A=1;B=2",
        extra_env={"MND_EXTRA": "with=equals and spaces"},
    )
    assert result.rc == 3
    assert result.stdout.encode() == answer
    assert result.stderr == "boom!\n"
    sent = json.loads(seen["stdin"])
    assert sent["unicode"] == conf["unicode"] and sent["big"] == conf["big"]
    assert seen["env"]["CNI_ARGS"] == "A=1;B=2"
    assert seen["env"]["MND_EXTRA"] == "with=equals and spaces"
    assert seen["env"]["CNI_COMMAND"] == "ADD"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "reply",
    [b"garbage\n", b"MPYSHIM 1 RESULT 0 999999999999 0\n", b"MPYSHIM 1 ACK\nMPYSHIM 1 ACK\n"],
    ids=["garbage", "oversized", "two-acks"],
)
def test_unreadable_replies_are_code_11(
    kind: str, reply: bytes, fake_server: Callable[..., FakeServer], tmp_path: Path
) -> None:
    def behave(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(reply)
        time.sleep(1)
        conn.close()

    fake_server(behave)
    result = call(kind, "ADD", tmp_path / "run")
    assert result.rc == 1 and result.doc["code"] == 11, result.stdout


@pytest.mark.parametrize("kind", KINDS)
def test_daemon_dying_mid_request_is_code_11(
    kind: str, fake_server: Callable[..., FakeServer], tmp_path: Path
) -> None:
    def behave(conn: socket.socket) -> None:
        read_request(conn)
        conn.sendall(wire.encode_ack())
        conn.close()  # killed before it answered

    fake_server(behave)
    result = call(kind, "ADD", tmp_path / "run")
    msg = result.doc["msg"]
    assert result.doc["code"] == 11 and ("closed" in msg or "reset" in msg), msg


@pytest.mark.parametrize("kind", KINDS)
def test_relative_socket_dir_is_invalid_config(kind: str, tmp_path: Path) -> None:
    result = run_shim(
        kind,
        "ADD",
        json.dumps({**CONF, "daemonSocketDir": "run"}).encode(),
        tmp_path,
        node="",
        container_id="x",
        netns="/x",
    )
    assert result.doc["code"] == 7 and "daemonSocketDir" in result.doc["msg"]


@pytest.mark.parametrize("kind", KINDS)
def test_against_the_daemon(kind: str, thick: Daemon, node: Node) -> None:
    """Errors of the engine come back with their code; an oversized conf is refused by
    the engine with the size named, as the thin plugin does."""
    bad = thick.shim(
        kind,
        "ADD",
        {"cniVersion": "9.9.9", "name": "x"},
        container_id="mndv",
        netns=node.add_pod("mnd"),
    )
    assert bad.doc["code"] == 1 and "9.9.9" in bad.doc["msg"]
    huge = thick.shim(
        kind, "ADD", {"pad": "x" * (1 << 20), **CONF}, container_id="mndv", netns="/x"
    )
    assert huge.doc["code"] == 6 and "1048577 bytes" in huge.doc["msg"]
    missing = thick.shim(kind, "DEL", CONF, container_id="", netns="")
    assert missing.doc["code"] == 4 and "CNI_CONTAINERID" in missing.doc["msg"]


def test_socket_is_root_only(thick: Daemon) -> None:
    """Directory 0700, socket 0600; a peer that is not uid 0 is refused by SO_PEERCRED
    even where the file modes would let it in. (The shims reach the socket dir through
    an inherited descriptor, /proc/self/fd/N: the test's own tmp dirs are root-only.)"""
    assert stat.S_IMODE(os.stat(thick.socket_dir).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(thick.socket_dir / "multus.sock").st_mode) == 0o600
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    handle = os.open(thick.socket_dir, os.O_PATH | os.O_DIRECTORY)
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "x",
        "CNI_IFNAME": "eth0",
        "CNI_NETNS": "/x",
        "CNI_PATH": "/x",
        "PATH": os.environ["PATH"],
    }
    conf = json.dumps({**CONF, "daemonSocketDir": f"/proc/self/fd/{handle}"}).encode()

    def as_uid_65534(kind: str) -> dict[str, Any]:
        done = subprocess.run(
            [*as_nobody, SHIMS[kind]],
            input=conf,
            env=env,
            capture_output=True,
            check=False,
            pass_fds=(handle,),
        )
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    try:
        for kind in KINDS:
            denied = as_uid_65534(kind)
            assert denied["code"] == 11 and "Permission denied" in denied["msg"], denied
            os.chmod(thick.socket_dir, 0o755)
            os.chmod(thick.socket_dir / "multus.sock", 0o666)
            try:
                refused = as_uid_65534(kind)
            finally:
                os.chmod(thick.socket_dir, 0o700)
                os.chmod(thick.socket_dir / "multus.sock", 0o600)
            assert refused["code"] == 4 and "uid 65534" in refused["msg"], refused
    finally:
        os.close(handle)
    assert thick.metric("multus_node_refused_peers_total") == 2


def test_newer_protocol_is_answered_with_code_11(thick: Daemon) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(thick.socket_dir / "multus.sock"))
    sock.sendall(b"MPYSHIM 2 0 2\n{}")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\n")
    kind, rc, out_len, _ = wire.parse_reply_header(head)
    assert kind == "RESULT" and rc == 1
    error = json.loads(body[:out_len])
    assert error["code"] == 11 and "protocol 1" in error["msg"] and "shim 2" in error["msg"]
