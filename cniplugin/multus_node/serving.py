"""The thick-mode socket: `<socket dir>/multus.sock`, for root on this node only.

The directory is 0700 and the socket 0600, and every peer's credentials are checked
with SO_PEERCRED: only uid 0 is served (a process in a user namespace shows up with
its mapped, non-zero uid). A connection is read by a short-lived thread (a slow or
broken peer holds no worker), answered by the worker that ran it, and acknowledged
when that takes longer than `ACK_DELAY` (the shim gives up on a daemon that says
nothing for 9 s). The wire format is `multus_cni.shim`'s.

Next to the socket, `attachments` links to the daemon's attachment records, so a shim
that cannot reach the daemon can still tell whether a DEL has anything to undo.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Protocol

from multus_cni import shim
from multus_cni.cache import AttachmentStore

from . import metrics
from .dispatching import Dispatcher, Job
from .handling import Reply, Request, error_reply

logger = logging.getLogger("multus_node.serving")

READ_TIMEOUT = 10.0  # a peer that does not send its request within this is dropped
ACK_DELAY = 1.0  # well within the shim's 9 s: only slower requests are acknowledged
_UCRED = struct.Struct("3i")  # pid, uid, gid


class Replier(Protocol):
    def reply(self, reply: Reply) -> None: ...


class Connection:
    """A peer waiting for its answer. The ACK and the RESULT may be written by two
    threads (the reader and the worker): one lock, and no ACK once answered."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.answered = threading.Event()
        self._lock = threading.Lock()

    def acknowledge(self) -> None:
        with self._lock:
            if self.answered.is_set():
                return
            try:
                self.sock.sendall(shim.encode_ack())
            except OSError:
                pass  # the shim is gone: the worker finds out when it answers

    def reply(self, reply: Reply) -> None:
        with self._lock:
            self.answered.set()
            try:
                self.sock.settimeout(READ_TIMEOUT)
                self.sock.sendall(shim.encode_result(reply.rc, reply.out, reply.err))
            except OSError as exc:  # the shim was killed meanwhile: nobody to tell
                logger.warning("could not deliver the answer: %s", exc)
            finally:
                self.sock.close()


def peer_uid(sock: socket.socket) -> int:
    _pid, uid, _gid = _UCRED.unpack(
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    )
    return int(uid)


def _read_exact(sock: socket.socket, size: int, buffer: bytearray) -> bytes:
    while len(buffer) < size:
        chunk = sock.recv(min(1 << 20, size - len(buffer)) or 1)
        if not chunk:
            raise ConnectionError("the shim closed the connection mid-request")
        buffer += chunk
    data = bytes(buffer[:size])
    del buffer[:size]
    return data


def read_request(sock: socket.socket) -> tuple[int, Request]:
    """(protocol version, request); ProtocolError or OSError when it cannot be read."""
    sock.settimeout(READ_TIMEOUT)
    buffer = bytearray()
    while b"\n" not in buffer:
        if len(buffer) > shim.MAX_HEADER:
            raise shim.ProtocolError("request header line too long")
        chunk = sock.recv(256)
        if not chunk:
            raise ConnectionError("the shim closed the connection before its request")
        buffer += chunk
    end = buffer.index(b"\n") + 1
    version, env_len, stdin_len = shim.parse_request_header(bytes(buffer[:end]))
    del buffer[:end]
    if version != shim.PROTOCOL:
        return version, Request({}, b"")
    env = shim.parse_env(_read_exact(sock, env_len, buffer))
    stdin = _read_exact(sock, stdin_len, buffer)
    return version, Request(env, stdin)


class Server:
    def __init__(
        self,
        socket_dir: str,
        cache_dir: str,
        dispatcher: Dispatcher[tuple[Request, Replier]],
    ) -> None:
        self.socket_dir = socket_dir
        self.path = os.path.join(socket_dir, shim.SOCKET_NAME)
        self.cache_dir = cache_dir
        self.dispatcher = dispatcher
        self.listening = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._accept, name="accept", daemon=True)

    def start(self) -> None:
        os.makedirs(self.socket_dir, mode=0o700, exist_ok=True)
        os.chmod(self.socket_dir, 0o700)
        self._link_records()
        try:
            os.unlink(self.path)  # a previous daemon's: nobody listens on it any more
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        sock.listen(128)
        self._sock = sock
        self.listening.set()
        self._thread.start()
        logger.info("serving CNI requests on %s", self.path)

    def _link_records(self) -> None:
        store = AttachmentStore(self.cache_dir)
        store.prepare()  # 0700, as the engine makes them
        records = store.records_dir
        link = os.path.join(self.socket_dir, shim.RECORDS_LINK)
        try:
            if os.readlink(link) == records:
                return
            os.unlink(link)
        except FileNotFoundError:
            pass
        except OSError:  # not a link: something else took the name; leave it alone
            return
        os.symlink(records, link)

    def stop(self) -> None:
        """Stop accepting; the socket file goes, so shims fail fast with code 11."""
        self.listening.clear()
        if self._sock is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            self._sock.close()

    def _accept(self) -> None:
        assert self._sock is not None
        while self.listening.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                if not self.listening.is_set():
                    return
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            uid = peer_uid(conn)
            if uid != 0:
                metrics.REFUSED_PEERS.inc()
                logger.error("refused a connection from uid %d: only root may call", uid)
                msg = f"multus-node serves root only; the caller runs as uid {uid}"
                Connection(conn).reply(error_reply(4, msg, b""))
                return
            version, request = read_request(conn)
        except (OSError, shim.ProtocolError) as exc:
            logger.error("unreadable request: %s", exc)
            Connection(conn).reply(error_reply(11, f"multus-node: unreadable request: {exc}", b""))
            return
        if version != shim.PROTOCOL:
            msg = (
                f"multus-node speaks shim protocol {shim.PROTOCOL}, the shim {version}; "
                "retry once both are updated"
            )
            Connection(conn).reply(error_reply(11, msg, b""))
            return
        connection = Connection(conn)
        command = request.command
        lane = request.container_id or ("" if command == "GC" else f"~{command}-{id(connection)}")
        if not self.dispatcher.submit(Job(lane, command, (request, connection))):
            logger.error(
                "queue full (%d waiting): %s answered with code 11", self.dispatcher.queued, command
            )
            msg = (
                f"multus-node is busy ({self.dispatcher.queued} requests waiting); try again later"
            )
            connection.reply(error_reply(11, msg, request.stdin))
            return
        # Most requests are answered well within ACK_DELAY: their shim gets the RESULT
        # alone. A longer one is acknowledged, so the shim knows the daemon is alive.
        if not connection.answered.wait(ACK_DELAY):
            connection.acknowledge()


def runner(handle: Callable[[Request], Reply]) -> Callable[[Job[tuple[Request, Replier]]], None]:
    """What a worker does with a job: serve it and answer the connection."""

    def run(job: Job[tuple[Request, Replier]]) -> None:
        request, connection = job.payload
        try:
            reply = handle(request)
        except Exception as exc:
            reply = error_reply(999, f"multus-node: internal error: {exc}", request.stdin)
        connection.reply(reply)

    return run
