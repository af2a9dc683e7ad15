"""The Kubernetes API through the `kubernetes` client: credentials from `$KUBECONFIG` or
the pod's service account (whose token the client re-reads as it rotates), raw JSON
requests by path, and watch streams as lines.

Objects stay plain dicts (what the API sent): the engine reads them as such, and no
model conversion runs per event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import kubernetes

logger = logging.getLogger("multus_node.kubeapi")

DEFAULT_TIMEOUT = 15.0


class ApiError(Exception):
    """The API answered with an error status (or not at all: status 0)."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status


def configuration(kubeconfig: str) -> Any:
    """A client configuration: the kubeconfig at `kubeconfig`, else in-cluster."""
    config = kubernetes.client.Configuration()
    if kubeconfig:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, client_configuration=config
        )
    else:
        kubernetes.config.load_incluster_config(  # type: ignore[no-untyped-call]
            client_configuration=config
        )
    return config


class KubeApi:
    def __init__(self, config: Any) -> None:
        self.client = kubernetes.client.ApiClient(config)

    def _send(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        request = self.client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list(query),
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            return self.client.call_api(*request, _request_timeout=timeout)
        except kubernetes.client.ApiException as exc:
            raise ApiError(method, path, int(exc.status or 0), str(exc.reason)) from None
        except Exception as exc:  # urllib3: refused, reset, timed out
            raise ApiError(method, path, 0, f"{type(exc).__name__}: {exc}") from None

    def request(
        self,
        method: str,
        path: str,
        query: Sequence[tuple[str, str]] = (),
        body: Any = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """(status, decoded body); no exception for an HTTP error status."""
        response = self._send(method, path, query, body, content_type)
        try:
            data = response.read()
        finally:
            response.response.release_conn()
        return int(response.status), _decode(data)

    def get(self, path: str, query: Sequence[tuple[str, str]] = ()) -> dict[str, Any] | None:
        """The object at `path`, None on 404; ApiError on any other failure."""
        status, doc = self.request("GET", path, query)
        if status == 404:
            return None
        if not 200 <= status < 300 or not isinstance(doc, dict):
            raise ApiError("GET", path, status, _message(doc))
        return doc

    def stream(
        self, path: str, query: Sequence[tuple[str, str]], read_timeout: float
    ) -> Iterator[bytes]:
        """The lines of a streaming GET (a watch); ApiError when it cannot start."""
        response = self._send("GET", path, query, timeout=(10.0, read_timeout))
        raw = response.response
        try:
            if not 200 <= int(response.status) < 300:
                raise ApiError("GET", path, int(response.status), _message(_decode(raw.read())))
            buffer = b""
            for chunk in raw.stream(amt=None, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield line
            if buffer.strip():
                yield buffer
        finally:
            raw.release_conn()

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]


def _decode(data: bytes) -> Any:
    """A response body as JSON; None when empty or not JSON."""
    try:
        return json.loads(data) if data else None
    except ValueError:
        return None


def _message(doc: Any) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return str(doc["message"])[:300]
    return "(no message)"
