"""Where the API server is and how to prove who we are: a kubeconfig or the pod's
service account.

A kubeconfig is YAML. JSON is valid YAML and is parsed with `_json`; the block-style
subset kubectl writes is parsed by `kubeyaml`; anything else goes to PyYAML, imported
only then (it costs ~10 ms per exec). Tokens
are never copied anywhere: a token *file* is re-read on every request (bound
service-account tokens rotate), inline client keys are handed to `ssl` through an
anonymous memfd, never a file on disk.
"""

from __future__ import annotations

import binascii
import os

from .. import cnijson
from ..errors import InvalidConfig, IoFailure
from . import kubeyaml

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
MAX_KUBECONFIG_BYTES = 1 << 20


class ApiConfig:
    """One API endpoint and the credentials for it."""

    __slots__ = (
        "ca_data",
        "ca_file",
        "cert_data",
        "cert_file",
        "insecure",
        "key_data",
        "key_file",
        "password",
        "server",
        "source",
        "token",
        "token_file",
        "username",
    )

    def __init__(self, server: str, source: str) -> None:
        self.server = server.rstrip("/")
        self.source = source
        self.ca_file = ""
        self.ca_data = b""
        self.insecure = False
        self.token = ""
        self.token_file = ""
        self.cert_file = ""
        self.cert_data = b""
        self.key_file = ""
        self.key_data = b""
        self.username = ""
        self.password = ""

    def bearer_token(self) -> str:
        """The token to send now: a token file wins and is read afresh each time."""
        if self.token_file:
            try:
                with open(self.token_file, encoding="utf-8") as handle:
                    return handle.read(65536).strip()
            except OSError as exc:
                raise IoFailure(
                    f"{self.source}: cannot read token file {self.token_file}: {exc.strerror}"
                ) from None
        return self.token


def in_cluster(
    sa_dir: str = SERVICE_ACCOUNT_DIR, environ: dict[str, str] | None = None
) -> ApiConfig:
    env = os.environ if environ is None else environ
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise InvalidConfig("kubeconfig: not set, and KUBERNETES_SERVICE_HOST is not in the env")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    config = ApiConfig(f"https://{host}:{port}", "in-cluster service account")
    config.token_file = os.path.join(sa_dir, "token")
    ca = os.path.join(sa_dir, "ca.crt")
    if os.path.exists(ca):
        config.ca_file = ca
    return config


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_KUBECONFIG_BYTES + 1)
    except OSError as exc:
        raise IoFailure(f"kubeconfig: cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > MAX_KUBECONFIG_BYTES:
        raise InvalidConfig(f"kubeconfig: {what} {path} is larger than {MAX_KUBECONFIG_BYTES}")
    return data


def parse_document(data: bytes, path: str) -> dict[str, Any]:
    """kubeconfig bytes -> dict: JSON, then kubectl's YAML subset, then PyYAML."""
    doc: Any
    try:
        doc = cnijson.loads(data)
    except ValueError:
        try:
            doc = kubeyaml.load(data.decode("utf-8"))
        except (kubeyaml.Unsupported, UnicodeDecodeError):
            import yaml  # only here: ~10 ms, for YAML beyond what kubectl writes

            try:
                doc = yaml.safe_load(data)
            except yaml.YAMLError as exc:
                raise InvalidConfig(f"kubeconfig: {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidConfig(f"kubeconfig: {path} must hold a mapping")
    return doc


def _named(doc: dict[str, Any], section: str, name: str, key: str, path: str) -> dict[str, Any]:
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise InvalidConfig(f"kubeconfig: {path}: {section} must be a list")
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            body = entry.get(key) or {}
            if not isinstance(body, dict):
                raise InvalidConfig(f"kubeconfig: {path}: {section} {name!r} must be a mapping")
            return body
    raise InvalidConfig(f"kubeconfig: {path}: no {key} named {name!r} in {section}")


def _b64(value: Any, field: str, path: str) -> bytes:
    try:
        return binascii.a2b_base64(str(value).encode(), strict_mode=True)
    except (ValueError, binascii.Error):
        raise InvalidConfig(f"kubeconfig: {path}: {field} is not valid base64") from None


def load_kubeconfig(path: str) -> ApiConfig:
    """The current context of the kubeconfig at `path` (relative paths inside it are
    relative to its directory, as kubectl resolves them)."""
    doc = parse_document(_read(path, "file"), path)
    base = os.path.dirname(path)

    def rel(value: Any) -> str:
        text = str(value)
        return text if os.path.isabs(text) else os.path.join(base, text)

    context_name = doc.get("current-context")
    contexts = doc.get("contexts") or []
    if not context_name:
        if isinstance(contexts, list) and len(contexts) == 1 and isinstance(contexts[0], dict):
            context_name = contexts[0].get("name")
        else:
            raise InvalidConfig(f"kubeconfig: {path}: no current-context")
    context = _named(doc, "contexts", str(context_name), "context", path)
    cluster = _named(doc, "clusters", str(context.get("cluster", "")), "cluster", path)
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith(("https://", "http://")):
        raise InvalidConfig(f"kubeconfig: {path}: cluster server {server!r} is not an http(s) URL")
    config = ApiConfig(server, f"kubeconfig {path}")
    if cluster.get("certificate-authority-data"):
        config.ca_data = _b64(
            cluster["certificate-authority-data"], "certificate-authority-data", path
        )
    elif cluster.get("certificate-authority"):
        config.ca_file = rel(cluster["certificate-authority"])
    config.insecure = cluster.get("insecure-skip-tls-verify") is True
    user_name = context.get("user")
    user = _named(doc, "users", str(user_name), "user", path) if user_name else {}
    for unsupported in ("exec", "auth-provider"):
        if user.get(unsupported):
            raise InvalidConfig(
                f"kubeconfig: {path}: user {user_name!r} uses {unsupported!r}, which the "
                "plugin does not run; give it a token, tokenFile or client certificate"
            )
    if user.get("tokenFile"):
        config.token_file = rel(user["tokenFile"])
    elif user.get("token"):
        config.token = str(user["token"])
    if user.get("client-certificate-data"):
        config.cert_data = _b64(user["client-certificate-data"], "client-certificate-data", path)
    elif user.get("client-certificate"):
        config.cert_file = rel(user["client-certificate"])
    if user.get("client-key-data"):
        config.key_data = _b64(user["client-key-data"], "client-key-data", path)
    elif user.get("client-key"):
        config.key_file = rel(user["client-key"])
    if user.get("username"):
        config.username = str(user["username"])
        config.password = str(user.get("password", ""))
    return config


def load(kubeconfig: str) -> ApiConfig:
    """The conf's `kubeconfig` when set, else the in-cluster service account."""
    return load_kubeconfig(kubeconfig) if kubeconfig else in_cluster()
