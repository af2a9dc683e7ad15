"""The plugin's own Kubernetes REST client and kubeconfig loader (no root): HTTP/1.1
framing (chunked, Content-Length, close), keep-alive reuse and stale sockets, retries,
TLS with CA and client certificates from kubeconfig data, token files re-read."""

from __future__ import annotations

import base64
import http.server
import json
import socketserver
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from multus_cni.errors import InvalidConfig, TryAgainLater
from multus_cni.k8s import client as client_module
from multus_cni.k8s.client import ApiError, Client, split_url
from multus_cni.k8s.kubeconfig import ApiConfig, in_cluster, load_kubeconfig

Handler = Callable[[socketserver.StreamRequestHandler], None]


class RawServer(socketserver.ThreadingTCPServer):
    """A TCP server on 127.0.0.1 whose per-connection behaviour a test scripts."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handle: Handler) -> None:
        outer = self

        class _Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                handle(self)

        self.connections = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def read_request(self, rfile: Any) -> tuple[str, dict[str, str]] | None:
        line = rfile.readline()
        if not line:
            return None
        headers: dict[str, str] = {}
        while True:
            header = rfile.readline().decode()
            if header in ("\r\n", ""):
                break
            name, _, value = header.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length:
            rfile.read(length)
        self.requests.append((line.decode().strip(), headers))
        return line.decode(), headers


@pytest.fixture
def raw_server() -> Iterator[Callable[[Handler], RawServer]]:
    servers: list[RawServer] = []

    def start(handle: Handler) -> RawServer:
        server = RawServer(handle)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def client_for(url: str, **kwargs: Any) -> Client:
    config = ApiConfig(url, "test")
    config.token = "t0ken"
    return Client(config, **{"timeout": 1.0, "backoff": 0.01, **kwargs})


def test_chunked_and_keep_alive(raw_server: Callable[[Handler], RawServer]) -> None:
    body = json.dumps({"kind": "Pod", "metadata": {"name": "p"}}).encode()

    def handle(h: socketserver.StreamRequestHandler) -> None:
        while server.read_request(h.rfile):
            h.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for start in range(0, len(body), 7):
                part = body[start : start + 7]
                h.wfile.write(f"{len(part):x};ext=1\r\n".encode() + part + b"\r\n")
            h.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")
            h.wfile.flush()

    server = raw_server(handle)
    client = client_for(server.url)
    assert client.get("/api/v1/namespaces/ns/pods/p") == json.loads(body)
    assert client.get("/api/v1/namespaces/ns/pods/p") == json.loads(body)
    assert server.connections == 1 and client.requests == 2
    line, headers = server.requests[0]
    assert line == "GET /api/v1/namespaces/ns/pods/p HTTP/1.1"
    assert headers["authorization"] == "Bearer t0ken"
    assert headers["host"] == server.url.removeprefix("http://")


def test_stale_keep_alive_socket_is_replaced(raw_server: Callable[[Handler], RawServer]) -> None:
    """The server closes an idle connection after one answer: not an API failure."""

    def handle(h: socketserver.StreamRequestHandler) -> None:
        server.read_request(h.rfile)
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        h.wfile.flush()

    server = raw_server(handle)
    client = client_for(server.url, attempts=1)
    assert client.get("/a") == {}
    assert client.get("/b") == {}
    assert server.connections == 2


def test_connection_close_and_read_to_end(raw_server: Callable[[Handler], RawServer]) -> None:
    def handle(h: socketserver.StreamRequestHandler) -> None:
        server.read_request(h.rfile)
        h.wfile.write(b'HTTP/1.0 404 Not Found\r\nConnection: close\r\n\r\n{"reason": "NotFound"}')

    server = raw_server(handle)
    client = client_for(server.url)
    assert client.get("/x") is None
    status, doc = client.request("GET", "/y")
    assert (status, doc) == (404, {"reason": "NotFound"})


def test_garbage_and_oversize_answers_are_retried_then_code_11(
    raw_server: Callable[[Handler], RawServer],
) -> None:
    answers = [b"SMTP ready\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n"]

    def handle(h: socketserver.StreamRequestHandler) -> None:
        server.read_request(h.rfile)
        h.wfile.write(answers[(server.connections - 1) % 2])
        h.wfile.flush()

    server = raw_server(handle)
    with pytest.raises(TryAgainLater) as caught:
        client_for(server.url).get("/x")
    assert "4 attempts" in caught.value.msg and caught.value.code == 11
    assert server.connections == 4


def test_forbidden_is_not_retried(raw_server: Callable[[Handler], RawServer]) -> None:
    def handle(h: socketserver.StreamRequestHandler) -> None:
        while server.read_request(h.rfile):
            doc = b'{"kind": "Status", "reason": "Forbidden", "message": "nodes cannot"}'
            h.wfile.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: %d\r\n\r\n" % len(doc) + doc)
            h.wfile.flush()

    server = raw_server(handle)
    with pytest.raises(ApiError) as caught:
        client_for(server.url).get("/x")
    assert caught.value.status == 403 and "nodes cannot" in caught.value.msg
    assert len(server.requests) == 1


def test_refused_connection_gives_code_11() -> None:
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(TryAgainLater, match="connection failed"):
        client_for(f"http://127.0.0.1:{port}").get("/x")


def test_token_file_reread_per_request(
    tmp_path: Path, raw_server: Callable[[Handler], RawServer]
) -> None:
    def handle(h: socketserver.StreamRequestHandler) -> None:
        while server.read_request(h.rfile):
            h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            h.wfile.flush()

    server = raw_server(handle)
    token = tmp_path / "token"
    token.write_text("one\n")
    config = ApiConfig(server.url, "test")
    config.token_file = str(token)
    client = Client(config)
    client.get("/a")
    token.write_text("two\n")
    client.get("/b")
    assert [h["authorization"] for _, h in server.requests] == ["Bearer one", "Bearer two"]


@pytest.mark.parametrize(
    ("url", "parts"),
    [
        ("https://10.0.0.1:6443", (True, "10.0.0.1", 6443, "10.0.0.1:6443", "")),
        ("http://api.example/prefix/", (False, "api.example", 80, "api.example", "/prefix")),
        ("https://[fd00::1]:443", (True, "fd00::1", 443, "[fd00::1]:443", "")),
        ("https://kubernetes", (True, "kubernetes", 443, "kubernetes", "")),
    ],
)
def test_split_url(url: str, parts: tuple[bool, str, int, str, str]) -> None:
    assert split_url(url, "test") == parts


@pytest.mark.parametrize("url", ["ftp://x", "https://", "https://h:port", "10.0.0.1:6443"])
def test_split_url_rejects(url: str) -> None:
    with pytest.raises(InvalidConfig):
        split_url(url, "test")


# ---- kubeconfig ----

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority: pki/ca.crt
    server: https://10.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: node
  name: node@kubernetes
current-context: node@kubernetes
users:
- name: node
  user:
    client-certificate: /etc/pki/node.crt
    client-key: pki/node.key
    tokenFile: "token"
"""


def test_kubeconfig_yaml_relative_paths(tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    config = load_kubeconfig(str(path))
    assert config.server == "https://10.0.0.1:6443"
    assert config.ca_file == str(tmp_path / "pki/ca.crt")
    assert config.cert_file == "/etc/pki/node.crt"
    assert config.key_file == str(tmp_path / "pki/node.key")
    assert config.token_file == str(tmp_path / "token")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["users"][0]["user"].update(exec={"command": "aws"}), "'exec'"),
        (lambda d: d.update({"current-context": "other"}), "no context named 'other'"),
        (lambda d: d["clusters"][0]["cluster"].update(server="10.0.0.1"), "not an http"),
        (
            lambda d: d["clusters"][0]["cluster"].update(
                {"certificate-authority-data": "%%%not base64"}
            ),
            "not valid base64",
        ),
    ],
)
def test_kubeconfig_rejects(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str
) -> None:
    import yaml

    doc = yaml.safe_load(KUBECONFIG)
    change(doc)
    path = tmp_path / "kubeconfig.json"
    path.write_text(json.dumps(doc))  # JSON is YAML too, and parsed without PyYAML
    with pytest.raises(InvalidConfig, match=message):
        load_kubeconfig(str(path))


def test_in_cluster_config(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("x")
    config = in_cluster(
        str(tmp_path), {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    )
    assert config.server == "https://[fd00::1]:443"
    assert (config.ca_file, config.bearer_token()) == (str(tmp_path / "ca.crt"), "sa-token")
    with pytest.raises(InvalidConfig):
        in_cluster(str(tmp_path), {})


# ---- TLS: CA and client certificate given as kubeconfig *-data (memfd, never a file) ----


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", "2", "-subj", "/CN=mid-ca", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for name, ext in (("server", ["-extfile", "san.ext"]), ("client", [])):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
                 f"{name}.csr", "-subj", f"/CN=mid-{name}", cwd=d)  # fmt: skip
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", *ext, cwd=d)  # fmt: skip
    return d


@pytest.mark.parametrize("raw_tls", [True, False], ids=["_ssl", "ssl"])
def test_tls_with_kubeconfig_data(
    pki: Path, tmp_path: Path, raw_tls: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both TLS paths: `_ssl` memory BIOs (the default) and the `ssl` module fallback."""
    monkeypatch.setattr(client_module, "RAW_TLS", raw_tls)
    seen: list[str] = []
    big = {"kind": "PodList", "items": ["x" * 1000] * 300}  # ~300 kB: many TLS records

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            cert = self.connection.getpeercert()
            seen.append(dict(x[0] for x in cert["subject"])["commonName"])
            body = json.dumps(big).encode() if self.path == "/big" else b'{"kind": "Pod"}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.crt", pki / "server.key")
    ctx.load_verify_locations(pki / "ca.crt")
    ctx.verify_mode = ssl.CERT_REQUIRED
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:

        def data(name: str) -> str:
            return base64.b64encode((pki / name).read_bytes()).decode()

        doc: dict[str, Any] = {
            "clusters": [
                {
                    "name": "c",
                    "cluster": {
                        "server": f"https://127.0.0.1:{server.server_address[1]}",
                        "certificate-authority-data": data("ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": "u",
                    "user": {
                        "client-certificate-data": data("client.crt"),
                        "client-key-data": data("client.key"),
                    },
                }
            ],
            "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "x",
        }
        path = tmp_path / "kubeconfig"
        path.write_text(json.dumps(doc))
        before = set(tmp_path.iterdir())
        client = Client(load_kubeconfig(str(path)))
        assert client.get("/api/v1/x") == {"kind": "Pod"}
        assert client.get("/big") == big  # same connection, kept alive
        assert client.get("/api/v1/x") == {"kind": "Pod"}
        assert seen == ["mid-client"] * 3 and client.requests == 3
        assert set(tmp_path.iterdir()) == before  # no key or cert written anywhere here

        # The server going away between requests: a fresh connection, no error.
        assert client._sock is not None
        client._sock.close()
        assert client.get("/api/v1/x") == {"kind": "Pod"}

        # A CA that did not sign the server: a configuration error, not retried.
        doc["clusters"][0]["cluster"]["certificate-authority-data"] = data("client.crt")
        path.write_text(json.dumps(doc))
        client = Client(load_kubeconfig(str(path)), backoff=0.01)
        with pytest.raises(InvalidConfig, match="certificate verify failed"):
            client.get("/api/v1/x")
        assert client.requests == 0 and len(seen) == 4

        # A name the server's certificate does not carry (it is for IP 127.0.0.1 only):
        # the hostname is checked, not just the chain.
        doc["clusters"][0]["cluster"]["certificate-authority-data"] = data("ca.crt")
        doc["clusters"][0]["cluster"]["server"] = f"https://localhost:{server.server_address[1]}"
        path.write_text(json.dumps(doc))
        client = Client(load_kubeconfig(str(path)), backoff=0.01)
        with pytest.raises(InvalidConfig, match="certificate verify failed"):
            client.get("/api/v1/x")
        assert client.requests == 0

        # ... unless the kubeconfig says insecure-skip-tls-verify.
        doc["clusters"][0]["cluster"]["insecure-skip-tls-verify"] = True
        path.write_text(json.dumps(doc))
        assert Client(load_kubeconfig(str(path))).get("/api/v1/x") == {"kind": "Pod"}
    finally:
        server.shutdown()
        server.server_close()


def test_kubernetes_mode_imports_stay_lean(tmp_path: Path) -> None:
    """Kubernetes mode adds its own modules to the plugin's imports: not PyYAML
    for a kubectl-style kubeconfig, nor socket/json/re/typing/http/urllib/email/subprocess."""
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    code = (
        "import sys, multus_cni.main, multus_cni.engine, multus_cni.k8s.resolve;"
        "from multus_cni.k8s.kubeconfig import load_kubeconfig;"
        f"load_kubeconfig({str(path)!r});"
        "print(' '.join(sorted(sys.modules)))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    heavy = {
        "yaml",
        "json",
        "re",
        "typing",
        "http",
        "urllib",
        "email",
        "subprocess",
        "ssl",
        "socket",
    }
    assert heavy & loaded == set()
