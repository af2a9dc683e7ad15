"""A small blocking Kubernetes REST client for one CNI call.

HTTP/1.1 is spoken directly over `_socket`, and TLS over `_ssl`'s memory BIOs:
`http.client` drags in the `email` package (~15 ms per pod ADD), `socket` costs ~5 ms
(enum, selectors) and `ssl` ~11 ms on top, at every exec. One keep-alive
connection serves the whole call. Every request has a timeout; 5xx, 429, refused
connections and timeouts are retried with exponential backoff inside a fixed budget,
then reported as CNI code 11 (try again later) so the runtime retries the whole ADD.
"""

from __future__ import annotations

import _socket
import binascii
import os
import time

from .. import cnijson
from ..errors import CniError, InvalidConfig, TryAgainLater
from ..logs import log

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

    from .kubeconfig import ApiConfig

DEFAULT_TIMEOUT = 10.0
DEFAULT_ATTEMPTS = 4
MAX_RESPONSE_BYTES = 16 << 20
MAX_HEADER_LINE = 65536
MAX_HEADERS = 200
USER_AGENT = "multus-py-cni"
_TRANSIENT_STATUS = frozenset((429, 500, 502, 503, 504))
# TLS straight over `_ssl` (see _TlsConnection); False falls back to the `ssl` module.
RAW_TLS = True


class ApiError(CniError):
    """The API server answered with an error we do not retry (4xx other than 429)."""

    def __init__(self, msg: str, status: int) -> None:
        super().__init__(msg)
        self.status = status


class _Transient(Exception):
    """A failure worth retrying; `fresh` marks a stale keep-alive socket."""

    def __init__(self, why: str, fresh: bool = False) -> None:
        super().__init__(why)
        self.fresh = fresh


class Client:
    def __init__(
        self,
        config: ApiConfig,
        timeout: float = DEFAULT_TIMEOUT,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff: float = 0.2,
    ) -> None:
        self.config = config
        self.tls, self.host, self.port, self.host_header, self.prefix = split_url(
            config.server, config.source
        )
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.requests = 0  # requests sent, for diagnostics and benchmarks
        self._sock: Any = None  # _socket.socket, or ssl.SSLSocket for https
        self._reader: _Reader | None = None
        self._ssl: Any = None

    # ---- public verbs: (status, decoded JSON body) for non-transient answers ----

    def get(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None when the API says 404."""
        status, doc = self.request("GET", path)
        if status == 404:
            return None
        self.raise_for(status, doc, "GET", path)
        if not isinstance(doc, dict):
            raise CniError(
                f"Kubernetes API: GET {path} returned {cnijson.type_name(doc)}, not an object"
            )
        return doc

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        attempts: int = 0,
    ) -> tuple[int, Any]:
        """Send, retrying transient failures with backoff; TryAgainLater when they last."""
        payload = b"" if body is None else cnijson.dumps(body).encode()
        last = ""
        attempts = attempts or self.attempts
        for attempt in range(attempts):
            if attempt:
                jitter = 0.5 + os.urandom(1)[0] / 510  # spread the retries of many pods
                delay = self.backoff * (2 ** (attempt - 1)) * jitter
                time.sleep(delay)
            try:
                status, raw = self._exchange(method, path, payload, content_type)
            except _Transient as exc:
                last = str(exc)
                log.verbose(f"Kubernetes API {method} {path}: {last} (attempt {attempt + 1})")
                continue
            doc = _decode(raw)
            if status in _TRANSIENT_STATUS:
                last = f"HTTP {status}: {_message(doc, raw)}"
                log.verbose(f"Kubernetes API {method} {path}: {last} (attempt {attempt + 1})")
                continue
            return status, doc
        raise TryAgainLater(
            f"Kubernetes API at {self.config.server} did not serve {method} {path} after "
            f"{attempts} attempts: {last}"
        )

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._reader = None

    @staticmethod
    def raise_for(status: int, doc: Any, method: str, path: str) -> None:
        if 200 <= status < 300:
            return
        raise ApiError(
            f"Kubernetes API: {method} {path} failed with HTTP {status}: {_message(doc, b'')}",
            status,
        )

    # ---- transport ----

    def _exchange(
        self, method: str, path: str, payload: bytes, content_type: str
    ) -> tuple[int, bytes]:
        reused = self._sock is not None
        try:
            return self._once(method, path, payload, content_type)
        except _Transient as exc:
            self.close()
            if reused and exc.fresh:
                # The server closed an idle keep-alive connection: not a failure of the API.
                return self._once(method, path, payload, content_type)
            raise

    def _once(self, method: str, path: str, payload: bytes, content_type: str) -> tuple[int, bytes]:
        headers = [
            f"{method} {self.prefix}{path} HTTP/1.1",
            f"Host: {self.host_header}",
            f"User-Agent: {USER_AGENT}",
            "Accept: application/json",
            f"Content-Length: {len(payload)}",
        ]
        if payload:
            headers.append(f"Content-Type: {content_type}")
        token = self.config.bearer_token()
        if token:
            headers.append(f"Authorization: Bearer {token}")
        elif self.config.username:
            basic = (
                binascii.b2a_base64(
                    f"{self.config.username}:{self.config.password}".encode(), newline=False
                )
            ).decode()
            headers.append(f"Authorization: Basic {basic}")
        message = ("\r\n".join(headers) + "\r\n\r\n").encode() + payload
        try:
            if self._sock is None:
                self._connect()
            assert self._sock is not None and self._reader is not None
            self._sock.settimeout(self.timeout)
            self._sock.sendall(message)
            self.requests += 1
            return self._read_response(method)
        except TimeoutError:
            self.close()
            raise _Transient(f"no answer within {self.timeout:g}s") from None
        except (ConnectionError, OSError) as exc:
            self.close()
            if type(exc).__name__ == "SSLCertVerificationError":
                # Not transient: the server's certificate does not match the trusted CA.
                raise InvalidConfig(
                    f"{self.config.source}: cannot verify the API server "
                    f"{self.config.server}: {exc}"
                ) from None
            raise _Transient(
                f"connection failed: {exc}", fresh=isinstance(exc, ConnectionError)
            ) from None

    def _connect(self) -> None:
        if not self.tls:
            sock: Any = _plain_connection(self.host, self.port, self.timeout)
        elif RAW_TLS and self.host.isascii():
            raw = _plain_connection(self.host, self.port, self.timeout)
            try:
                sock = _TlsConnection(raw, self._tls_context(raw=True), self.host)
            except BaseException:
                raw.close()
                raise
        else:
            import socket  # ssl needs socket.socket objects

            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock = self._tls_context(raw=False).wrap_socket(sock, server_hostname=self.host)
        self._sock = sock
        self._reader = _Reader(sock)

    def _tls_context(self, raw: bool) -> Any:
        """A client context verifying the server (CA from the kubeconfig, else the
        system's) and presenting the client certificate, if any: `_ssl`'s own context
        when `raw` (~2 ms to import), else `ssl`'s (~11 ms with `socket`)."""
        if self._ssl is not None:
            return self._ssl
        ssl_impl: Any
        if raw:
            import _ssl

            ssl_impl = _ssl
        else:
            import ssl

            ssl_impl = ssl
        config = self.config
        cafile = config.ca_file or None
        cadata = config.ca_data.decode() if config.ca_data else None
        try:
            if raw:
                # What ssl.create_default_context() does for a client, on _ssl directly.
                ctx = ssl_impl._SSLContext(ssl_impl.PROTOCOL_TLS_CLIENT)
                if cafile or cadata:
                    ctx.load_verify_locations(cafile, None, cadata)
                else:
                    ctx.set_default_verify_paths()
            else:
                ctx = ssl_impl.create_default_context(cafile=cafile, cadata=cadata)
            if config.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl_impl.CERT_NONE
            if config.cert_file or config.cert_data:
                with (
                    _pem(config.cert_data, config.cert_file) as cert,
                    _pem(config.key_data, config.key_file) as key,
                ):
                    ctx.load_cert_chain(cert, key or None)
        except (OSError, ValueError) as exc:
            raise InvalidConfig(f"{config.source}: TLS settings are unusable: {exc}") from None
        self._ssl = ctx
        return ctx

    def _readline(self) -> bytes:
        assert self._reader is not None
        line = self._reader.readline(MAX_HEADER_LINE + 1)
        if len(line) > MAX_HEADER_LINE:
            raise _Transient("response header line too long")
        return line

    def _read_response(self, method: str) -> tuple[int, bytes]:
        assert self._reader is not None
        status_line = self._readline()
        if not status_line:
            raise _Transient("connection closed before a response", fresh=True)
        parts = status_line.decode("latin-1").split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise _Transient(f"malformed status line {status_line[:80]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            line = self._readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise _Transient("too many response headers")
        if status == 100:
            return self._read_response(method)
        body = self._read_body(method, status, headers)
        if headers.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0":
            self.close()
        return status, body

    def _read_body(self, method: str, status: int, headers: dict[str, str]) -> bytes:
        assert self._reader is not None
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return b""
        if "chunked" in headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size_line = self._readline().split(b";", 1)[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise _Transient(f"malformed chunk size {size_line[:20]!r}") from None
                if size == 0:
                    while self._readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_RESPONSE_BYTES:
                    raise _Transient(f"response larger than {MAX_RESPONSE_BYTES} bytes")
                chunks.append(self._exact(size))
                self._readline()
        if "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise _Transient("malformed Content-Length") from None
            if length > MAX_RESPONSE_BYTES:
                raise _Transient(f"response larger than {MAX_RESPONSE_BYTES} bytes")
            return self._exact(length)
        data = self._reader.read(MAX_RESPONSE_BYTES + 1)
        self.close()
        if len(data) > MAX_RESPONSE_BYTES:
            raise _Transient(f"response larger than {MAX_RESPONSE_BYTES} bytes")
        return data

    def _exact(self, size: int) -> bytes:
        assert self._reader is not None
        data = self._reader.read(size)
        if len(data) != size:
            raise _Transient("connection closed mid-response")
        return data


class _pem:
    """A PEM blob as a path ssl can open: an existing file, or an anonymous memfd (never
    written to disk, gone when closed)."""

    def __init__(self, data: bytes, path: str) -> None:
        self.data = data
        self.path = path
        self.fd = -1

    def __enter__(self) -> str:
        if not self.data:
            return self.path
        self.fd = os.memfd_create("multus-pem", os.MFD_CLOEXEC)
        os.write(self.fd, self.data)
        return f"/proc/self/fd/{self.fd}"

    def __exit__(self, *exc: object) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def split_url(server: str, source: str) -> tuple[bool, str, int, str, str]:
    """`http(s)://host[:port][/prefix]` -> (tls, host, port, Host header, path prefix)."""
    scheme, sep, rest = server.partition("://")
    netloc, slash, path = rest.partition("/")
    netloc = netloc.rsplit("@", 1)[-1]
    if not sep or scheme not in ("http", "https") or not netloc:
        raise InvalidConfig(f"{source}: server {server!r} is not an http(s) URL")
    tls = scheme == "https"
    if netloc.startswith("["):
        host, _, port_text = netloc[1:].partition("]")
        port_text = port_text.removeprefix(":")
    else:
        host, _, port_text = netloc.partition(":")
    if not host or (port_text and not port_text.isdigit()):
        raise InvalidConfig(f"{source}: server {server!r} has a bad host or port")
    port = int(port_text) if port_text else (443 if tls else 80)
    return tls, host, port, netloc, ("/" + path).rstrip("/") if slash else ""


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return cnijson.loads(raw)
    except ValueError:
        return None


def _message(doc: Any, raw: bytes) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return str(doc["message"])[:500]
    return raw[:200].decode("utf-8", "replace") or "(no body)"


class _TlsConnection:
    """TLS over a plain `_socket` through `_ssl`'s memory BIOs: what `ssl.SSLObject`
    does, without importing `ssl` and `socket` (~14 ms per exec). Offers the socket
    methods the client uses: sendall, recv, settimeout, close."""

    def __init__(self, sock: Any, context: Any, hostname: str) -> None:
        import _ssl

        self.sock = sock
        self._ssl = _ssl
        self.incoming = _ssl.MemoryBIO()
        self.outgoing = _ssl.MemoryBIO()
        # OpenSSL checks the certificate against `hostname` (a name or an IP address).
        self.tls = context._wrap_bio(self.incoming, self.outgoing, False, hostname)
        self._pump(self.tls.do_handshake)

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _pump(self, operation: Any, *args: Any) -> Any:
        while True:
            try:
                result = operation(*args)
            except self._ssl.SSLWantReadError:
                self._flush()
                chunk = self.sock.recv(65536)
                if chunk:
                    self.incoming.write(chunk)
                else:
                    self.incoming.write_eof()
                continue
            self._flush()
            return result

    def settimeout(self, timeout: float) -> None:
        self.sock.settimeout(timeout)

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._pump(self.tls.write, view) :]

    def recv(self, size: int) -> bytes:
        try:
            data: bytes = self._pump(self.tls.read, size)
        except (self._ssl.SSLZeroReturnError, self._ssl.SSLEOFError):
            return b""
        return data

    def close(self) -> None:
        self.sock.close()


def _plain_connection(host: str, port: int, timeout: float) -> Any:
    """A connected TCP `_socket.socket`: each address of `host` in turn."""
    last: OSError | None = None
    for family, kind, proto, _, address in _socket.getaddrinfo(host, port, 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
            sock.connect(address)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last if last is not None else OSError(f"{host}: no address")


class _Reader:
    """Buffered reads from a socket-like object (`recv`), like `socket.makefile("rb")`."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def readline(self, limit: int) -> bytes:
        """Up to and including b"\\n", at most `limit` bytes; b"" at end of stream."""
        start = 0
        while True:
            end = self.buffer.find(b"\n", start)
            if end >= 0 or len(self.buffer) >= limit:
                cut = min(end + 1 if end >= 0 else len(self.buffer), limit)
                line = bytes(self.buffer[:cut])
                del self.buffer[:cut]
                return line
            start = len(self.buffer)
            if not self._fill():
                line = bytes(self.buffer)
                self.buffer.clear()
                return line

    def read(self, size: int) -> bytes:
        """Exactly `size` bytes, fewer only at end of stream."""
        while len(self.buffer) < size and self._fill():
            pass
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data
