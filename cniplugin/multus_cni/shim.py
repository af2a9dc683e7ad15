"""Thick mode's wire protocol, and `multus-shim-py`, the Python twin of the C shim.

kubelet executes the shim (`multus-py-shim` in the CNI bin dir); it forwards one call
to multus-node over `<daemonSocketDir>/multus.sock` and prints the answer unchanged.
Version 1 of the protocol, framed so that the C side needs no JSON parser:

    request   b"MPYSHIM 1 <env bytes> <stdin bytes>\\n"  env ("K=V\\0" ...)  stdin
    replies   b"MPYSHIM 1 ACK\\n"                         alive, working on it
              b"MPYSHIM <v> RESULT <rc> <out> <err>\\n"   stdout bytes, stderr bytes

The daemon answers RESULT; when that takes longer than a second it sends ACK first, so
that a daemon that accepted the connection but says nothing (hung, frozen) is told
apart from a long ADD. The RESULT line keeps this layout in every later version (new
fields may only be appended), so any shim can read any daemon's answer; a daemon
serves every version it knows and answers a newer one with CNI error 11, which the
runtime retries while a rolling update brings the matching pair.

The shim answers VERSION itself. When the daemon cannot be reached, or sends nothing
within `ACK_BUDGET` seconds, it answers CNI error 11 (STATUS: 50), except a DEL, which
succeeds when the attachment cache holds no record of the interface: nothing was
attached, so nothing is left to undo.

Standard library only, and lean: this runs once per pod call on hosts with Python.
"""

from __future__ import annotations

import _socket
import os
import sys
import time

from multus_rules.confs import MAX_CONF_BYTES
from multus_rules.names import is_safe_name

from . import cnijson, versions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

MAGIC = b"MPYSHIM"
PROTOCOL = 1
SOCKET_NAME = "multus.sock"
DEFAULT_SOCKET_DIR = "/run/multus"
DEFAULT_CNI_DIR = "/var/lib/cni/multus"
# Link the daemon keeps in its socket dir to its own attachment records.
RECORDS_LINK = "attachments"
MAX_HEADER = 128
MAX_ENV_BYTES = 1 << 20
MAX_STDIN_BYTES = MAX_CONF_BYTES + 1  # the engine refuses more than 1 MiB and says how much
MAX_OUTPUT_BYTES = 64 << 20
ACK_BUDGET = 9.0  # connect, send and ACK: the runtime gets code 11 within 10 s
REPLY_TIMEOUT = 300.0


class ProtocolError(Exception):
    """A frame that does not follow the protocol."""


# ---- framing (shared with multus-node) ----


def encode_request(environ: Mapping[str, str], stdin: bytes) -> bytes:
    env = b"".join(
        f"{k}={v}".encode("utf-8", "surrogateescape") + b"\0" for k, v in environ.items()
    )
    return b"%s %d %d %d\n" % (MAGIC, PROTOCOL, len(env), len(stdin)) + env + stdin


def parse_request_header(line: bytes) -> tuple[int, int, int]:
    """(version, env bytes, stdin bytes); ProtocolError for anything else. A version
    this side does not know is returned as is: the caller answers it."""
    parts = line.rstrip(b"\n").split(b" ")
    if len(parts) != 4 or parts[0] != MAGIC or not all(p.isdigit() for p in parts[1:]):
        raise ProtocolError(f"not a MPYSHIM request header: {line[:64]!r}")
    version, env_len, stdin_len = (int(p) for p in parts[1:])
    if env_len > MAX_ENV_BYTES:
        raise ProtocolError(f"environment of {env_len} bytes, more than {MAX_ENV_BYTES}")
    if stdin_len > MAX_STDIN_BYTES:
        raise ProtocolError(f"stdin of {stdin_len} bytes, more than {MAX_STDIN_BYTES}")
    return version, env_len, stdin_len


def parse_env(block: bytes) -> dict[str, str]:
    """The `K=V\\0` block -> dict; entries without `=` are dropped, as execve would."""
    env: dict[str, str] = {}
    for entry in block.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key:
            env[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
    return env


def encode_ack() -> bytes:
    return b"%s %d ACK\n" % (MAGIC, PROTOCOL)


def encode_result(rc: int, out: bytes, err: bytes = b"") -> bytes:
    return b"%s %d RESULT %d %d %d\n" % (MAGIC, PROTOCOL, rc, len(out), len(err)) + out + err


def parse_reply_header(line: bytes) -> tuple[str, int, int, int]:
    """("ACK", 0, 0, 0) or ("RESULT", rc, out bytes, err bytes)."""
    parts = line.rstrip(b"\n").split(b" ")
    if len(parts) >= 3 and parts[0] == MAGIC and parts[1].isdigit() and int(parts[1]) >= 1:
        if parts[2] == b"ACK" and len(parts) == 3:
            return "ACK", 0, 0, 0
        if parts[2] == b"RESULT" and len(parts) >= 6 and all(p.isdigit() for p in parts[3:6]):
            rc, out_len, err_len = (int(p) for p in parts[3:6])
            if rc <= 255 and out_len <= MAX_OUTPUT_BYTES and err_len <= MAX_OUTPUT_BYTES:
                return "RESULT", rc, out_len, err_len
    raise ProtocolError(f"not a MPYSHIM reply: {line[:64]!r}")


def cni_error(code: int, msg: str, cni_version: str) -> bytes:
    return (cnijson.dumps({"cniVersion": cni_version, "code": code, "msg": msg}) + "\n").encode()


# ---- the shim ----


class _Unreachable(Exception):
    pass


class _Connection:
    def __init__(self, path: str, deadline: float) -> None:
        self.sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        self.buffer = b""
        while True:
            self._timeout(deadline)
            try:
                self.sock.connect(path)
                return
            except BlockingIOError:  # a unix socket's full backlog: EAGAIN, retry
                if time.monotonic() >= deadline:
                    raise _Unreachable("its listen queue stayed full") from None
                time.sleep(0.02)
            except OSError as exc:
                self.sock.close()
                raise _Unreachable(exc.strerror or str(exc)) from None

    def _timeout(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Unreachable("no answer in time")
        self.sock.settimeout(left)

    def send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            self._timeout(deadline)
            view = view[self.sock.send(view) :]

    def recv_exact(self, size: int, deadline: float, line: bool = False) -> bytes:
        while True:
            if line:
                end = self.buffer.find(b"\n")
                if end >= 0:
                    data, self.buffer = self.buffer[: end + 1], self.buffer[end + 1 :]
                    return data
                if len(self.buffer) > MAX_HEADER:
                    raise _Unreachable("it sent a reply this shim cannot read")
            elif len(self.buffer) >= size:
                data, self.buffer = self.buffer[:size], self.buffer[size:]
                return data
            self._timeout(deadline)
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise _Unreachable("it closed the connection")
            self.buffer += chunk


def _conf_string(conf: object, key: str, default: str) -> str:
    value = conf.get(key) if isinstance(conf, dict) else None
    return value if isinstance(value, str) and value else default


def scan_string(data: bytes, key: str) -> str | None:
    """The string value of top-level `key` in JSON that may be invalid or cut short,
    found the way the C shim finds it (no escapes in the value); None when absent."""
    depth = 0
    needle = key.encode()
    at, end = 0, len(data)
    while at < end:
        char = data[at : at + 1]
        if char in b"{[":
            depth += 1
        elif char in b"}]":
            depth -= 1
        if char != b'"':
            at += 1
            continue
        start = at = at + 1
        while at < end and data[at : at + 1] != b'"':
            at += 2 if data[at : at + 1] == b"\\" else 1
        if at >= end:
            return None
        word, at = data[start:at], at + 1
        if depth != 1 or word != needle:
            continue
        rest = data[at:].lstrip(b" \t\r\n")
        if not rest.startswith(b":"):
            continue
        rest = rest[1:].lstrip(b" \t\r\n")
        if not rest.startswith(b'"'):
            return None
        value, quote, _ = rest[1:].partition(b'"')
        if not quote or b"\\" in value:
            return None
        return value.decode("utf-8", "replace")
    return None


def _maybe_attached(environ: Mapping[str, str], socket_dir: str, conf: object) -> bool:
    """Whether the cache may hold a record of this interface (True when unsure)."""
    cid, ifname = environ.get("CNI_CONTAINERID", ""), environ.get("CNI_IFNAME", "")
    if not is_safe_name(cid) or not is_safe_name(ifname):
        return True
    records = os.path.join(socket_dir, RECORDS_LINK)
    if not os.path.lexists(records):
        cni_dir = _conf_string(conf, "cniDir", DEFAULT_CNI_DIR)
        records = os.path.join(
            cni_dir if os.path.isabs(cni_dir) else DEFAULT_CNI_DIR, "attachments"
        )
    try:
        os.stat(os.path.join(records, f"{cid}:{ifname}.json"))
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True


def call(stdin: bytes, environ: Mapping[str, str]) -> tuple[int, bytes, bytes]:
    """One CNI call through the daemon: (exit code, stdout bytes, stderr bytes)."""
    command = environ.get("CNI_COMMAND", "")
    if command == "VERSION":
        return 0, (cnijson.dumps(versions.version_answer()) + "\n").encode(), b""
    conf: object = None
    try:
        conf = cnijson.loads(stdin)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # The daemon says what is wrong with it; find the socket as the C shim does.
        conf = {
            key: found
            for key in ("cniVersion", "daemonSocketDir", "cniDir")
            if (found := scan_string(stdin, key)) is not None
        }
    cni_version = _conf_string(conf, "cniVersion", versions.LATEST)
    if len(stdin) > MAX_CONF_BYTES:  # the engine's own words for it
        msg = f"network configuration on stdin is {len(stdin)} bytes, more than {MAX_CONF_BYTES}"
        return 1, cni_error(6, msg, cni_version), b""
    socket_dir = _conf_string(conf, "daemonSocketDir", DEFAULT_SOCKET_DIR)
    if not os.path.isabs(socket_dir):
        return 1, cni_error(7, "daemonSocketDir: must be an absolute path", cni_version), b""
    path = os.path.join(socket_dir, SOCKET_NAME)
    deadline = time.monotonic() + ACK_BUDGET
    try:
        connection = _Connection(path, deadline)
        try:
            refused: OSError | None = None
            try:
                connection.send(encode_request(environ, stdin), deadline)
            except OSError as exc:  # a refusal may come before the whole request was read
                refused = exc
            try:
                line = connection.recv_exact(0, deadline, line=True)
            except (OSError, _Unreachable):
                if refused is not None:
                    raise refused from None
                raise
            kind, rc, out_len, err_len = parse_reply_header(line)
            if kind == "ACK":
                deadline = time.monotonic() + REPLY_TIMEOUT
                kind, rc, out_len, err_len = parse_reply_header(
                    connection.recv_exact(0, deadline, line=True)
                )
            if kind != "RESULT":
                raise ProtocolError("a second ACK")
            body = connection.recv_exact(out_len + err_len, deadline)
        finally:
            connection.sock.close()
    except ProtocolError:
        msg = "multus-py-shim: multus-node sent a reply this shim cannot read"
        return 1, cni_error(11, msg, cni_version), b""
    except (_Unreachable, OSError) as exc:
        why = str(exc) if isinstance(exc, _Unreachable) else (exc.strerror or str(exc))
        if command == "DEL" and not _maybe_attached(environ, socket_dir, conf):
            note = f"multus-py-shim: {path} ({why}); DEL: no attachment recorded, nothing to do\n"
            return 0, b"", note.encode()
        code = 50 if command == "STATUS" else 11
        return (
            1,
            cni_error(code, f"multus-node is not reachable at {path}: {why}", cni_version),
            b"",
        )
    return rc, body[:out_len], body[out_len:]


def main() -> None:
    try:
        data = b"" if sys.stdin is None else sys.stdin.buffer.read(MAX_STDIN_BYTES)
    except (OSError, ValueError):
        data = b""
    rc, out, err = call(data, os.environ)
    if out:
        sys.stdout.buffer.write(out)
    if err:
        sys.stderr.buffer.write(err)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    main()
