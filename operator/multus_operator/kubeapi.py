"""The operator's Kubernetes API client: the verbs it needs, over aiohttp.

Errors come by kind (`NotFoundError`, `ConflictError`, `InvalidError`,
`TooManyRequestsError`, ...), chosen by HTTP status, so callers catch the one they
mean. A 429 is retried here after the `Retry-After` the server asked for; any error
that still carries one (`retry_after`) tells the caller how long to wait at least.
A 401 makes the client log in again once (a kubeconfig exec plugin's token or a
rotated service-account token expires) and repeat the request.

Every request is accounted: writes by verb and resource (metrics, and the "no write
when nothing changed" tests), and every outcome goes to `ApiHealth`, which turns a
failing verb on a resource into readiness false and one log line.
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import json
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any, ClassVar

import aiohttp
import kopf

from .health import ApiHealth
from .resources import Resource

MERGE_PATCH = "application/merge-patch+json"
RETRY_AFTER_CAP = 30.0  # seconds; a server asking for longer is asked again sooner
PAGE_SIZE = 500


class ApiError(Exception):
    """An API request that did not succeed. `status` is the HTTP code (None: no answer)."""

    status: ClassVar[int | None] = None
    # About one object (it is gone, changed meanwhile, or refused as it is): says nothing
    # about whether the API works for us, so it never makes the operator unready.
    object_level: ClassVar[bool] = False

    def __init__(
        self,
        verb: str,
        resource: str,
        message: str,
        *,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        shown = code if code is not None else self.status
        where = f"HTTP {shown}" if shown is not None else "no answer"
        super().__init__(f"{verb} {resource}: {where}: {message[:500]}")
        self.verb = verb
        self.resource = resource
        self.message = message
        self.code = shown
        self.retry_after = retry_after


class UnauthorizedError(ApiError):
    status = 401


class ForbiddenError(ApiError):
    status = 403


class NotFoundError(ApiError):
    status = 404
    object_level = True


class ConflictError(ApiError):
    status = 409
    object_level = True


class GoneError(ApiError):
    """410: a watch or a list continuation asked for a resourceVersion compacted away."""

    status = 410


class InvalidError(ApiError):
    status = 422
    object_level = True


class TooManyRequestsError(ApiError):
    status = 429


class ServerError(ApiError):
    """5xx, or any other status without a kind of its own."""


class UnreachableError(ApiError):
    """No answer: connection refused or dropped, TLS failure, timeout."""


_BY_STATUS: dict[int, type[ApiError]] = {
    cls.status: cls
    for cls in (
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        ConflictError,
        GoneError,
        InvalidError,
        TooManyRequestsError,
    )
    if cls.status is not None
}


def error_for(
    code: int, verb: str, resource: str, doc: Any, retry_after: float | None = None
) -> ApiError:
    """The error of the kind `code` says, with the Status message the server gave."""
    message = ""
    if isinstance(doc, dict):
        message = str(doc.get("message") or doc.get("reason") or "")
        details = doc.get("details")
        if retry_after is None and isinstance(details, dict):
            seconds = details.get("retryAfterSeconds")
            if isinstance(seconds, int | float) and seconds > 0:
                retry_after = float(seconds)
    elif isinstance(doc, str):
        message = doc
    cls = _BY_STATUS.get(code, ServerError)
    return cls(verb, resource, message or f"HTTP {code}", code=code, retry_after=retry_after)


def parse_retry_after(value: str | None) -> float | None:
    """`Retry-After`: delay-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


Login = Callable[[], Awaitable[kopf.ConnectionInfo]]


class KubeApi:
    def __init__(
        self,
        info: kopf.ConnectionInfo,
        *,
        health: ApiHealth | None = None,
        relogin: Login | None = None,
        timeout: float = 30.0,
        max_throttled: int = 3,
    ) -> None:
        self.server = info.server.rstrip("/")
        self.health = health if health is not None else ApiHealth()
        self._relogin = relogin
        self._headers = dict(info.as_http_headers())  # bearer token or basic auth, as kopf does
        self._timeout = timeout
        self._max_throttled = max_throttled
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=32, ssl=info.as_ssl_context()),
        )
        self.writes: collections.Counter[str] = collections.Counter()  # "verb resource"
        self.errors: collections.Counter[tuple[str, str, str]] = collections.Counter()

    async def close(self) -> None:
        await self._session.close()

    # --- the verbs ------------------------------------------------------------------------

    async def get(
        self, res: Resource, name: str, *, namespace: str | None = None
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            found: dict[str, Any] = await self._call(
                "get", res.plural, "GET", res.path(namespace, name)
            )
        except NotFoundError:
            return None
        return found

    async def list(
        self,
        res: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = PAGE_SIZE,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """All items (fetched `page_size` at a time) and the list's resourceVersion.

        Items get `apiVersion` and `kind`, which the API server leaves out of list items
        of built-in kinds. NotFoundError: the resource is not served (a CRD not installed).
        """
        items: list[dict[str, Any]] = []
        params = _selectors(label_selector, field_selector)
        params["limit"] = str(page_size)
        version: str | None = None
        while True:
            page = await self._call("list", res.plural, "GET", res.path(namespace), params=params)
            page = page if isinstance(page, dict) else {}
            for item in page.get("items") or []:
                if isinstance(item, dict):
                    items.append(stamp_kind(res, item))
            meta = page.get("metadata") or {}
            version = meta.get("resourceVersion") or version
            token = meta.get("continue")
            if not token:
                return items, version
            params = {**params, "continue": str(token)}

    async def watch(
        self,
        res: Resource,
        *,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The raw watch events after `resource_version` (bookmarks included), until the
        server ends the stream (it does after `timeout_seconds`)."""
        params = _selectors(label_selector, field_selector)
        params.update(
            watch="true",
            allowWatchBookmarks="true",
            resourceVersion=resource_version,
            timeoutSeconds=str(timeout_seconds),
        )
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout, sock_read=timeout_seconds + 30
        )
        url = self.server + res.path(namespace)
        response = await self._open("watch", res.plural, "GET", url, None, {}, params, timeout)
        buffer = b""
        try:
            async for chunk in response.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        try:
                            event = json.loads(line)
                        except ValueError as exc:  # a cut or garbled stream: start again
                            raise UnreachableError(
                                "watch", res.plural, f"bad event: {exc}"
                            ) from exc
                        if isinstance(event, dict):
                            yield event
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UnreachableError("watch", res.plural, str(exc) or type(exc).__name__) from exc
        finally:
            response.release()

    async def create(
        self, res: Resource, body: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        self.writes[f"create {res.plural}"] += 1
        created: dict[str, Any] = await self._call(
            "create", res.plural, "POST", res.path(namespace), body
        )
        return created

    async def patch(
        self,
        res: Resource,
        name: str,
        patch: dict[str, Any],
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """A JSON merge patch (`metadata.resourceVersion` in it makes it conditional)."""
        resource = f"{res.plural}/{subresource}" if subresource else res.plural
        self.writes[f"patch {resource}"] += 1
        patched: dict[str, Any] = await self._call(
            "patch",
            resource,
            "PATCH",
            res.path(namespace, name, subresource),
            patch,
            content_type=MERGE_PATCH,
        )
        return patched

    async def delete(self, res: Resource, name: str, *, namespace: str | None = None) -> bool:
        """True if deleted now, False if it was gone already."""
        self.writes[f"delete {res.plural}"] += 1
        try:
            await self._call("delete", res.plural, "DELETE", res.path(namespace, name))
        except NotFoundError:
            return False
        return True

    async def discover(self, res: Resource) -> set[str] | None:
        """The resource names (`plural`, `plural/status`, ...) the API serves in the group
        version of `res`, or None when it serves none (no such group). Discovery is open
        to every authenticated client (the `system:discovery` ClusterRole)."""
        path = res.group_version_path
        try:
            found = await self._call("get", path, "GET", path)
        except NotFoundError:
            return None
        resources = (found or {}).get("resources") if isinstance(found, dict) else None
        return {str(r.get("name")) for r in resources or [] if isinstance(r, dict)}

    # --- one request ----------------------------------------------------------------------

    async def _call(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        timeout = aiohttp.ClientTimeout(total=self._timeout)
        response = await self._open(
            verb, resource, method, self.server + path, data, headers, params, timeout
        )
        try:
            text = await response.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            error: ApiError = UnreachableError(verb, resource, str(exc) or type(exc).__name__)
            self._account(verb, resource, error)
            raise error from exc
        finally:
            response.release()
        try:
            return json.loads(text) if text else None
        except ValueError as exc:
            error = ServerError(verb, resource, f"the answer is not JSON: {exc}")
            self._account(verb, resource, error)
            raise error from exc

    async def _open(
        self,
        verb: str,
        resource: str,
        method: str,
        url: str,
        data: str | None,
        headers: dict[str, str],
        params: dict[str, str] | None,
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """Send until answered 2xx (429: after Retry-After; 401: after a new login)."""
        throttled = 0
        relogged = False
        while True:
            try:
                response = await self._session.request(
                    method,
                    url,
                    data=data,
                    headers={**self._headers, **headers},
                    params=params,
                    timeout=timeout,
                )
            except (aiohttp.ClientError, TimeoutError) as exc:
                error: ApiError = UnreachableError(verb, resource, str(exc) or type(exc).__name__)
                self._account(verb, resource, error)
                raise error from exc
            if response.status < 400:
                self._account(verb, resource, None)
                return response
            try:
                text = await response.text()
            except (aiohttp.ClientError, TimeoutError):
                text = ""
            finally:
                response.release()
            try:
                doc: Any = json.loads(text) if text else None
            except ValueError:
                doc = text
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            error = error_for(response.status, verb, resource, doc, retry_after)
            if isinstance(error, TooManyRequestsError) and throttled < self._max_throttled:
                throttled += 1
                await asyncio.sleep(min(error.retry_after or 1.0, RETRY_AFTER_CAP))
                continue
            if isinstance(error, UnauthorizedError) and self._relogin and not relogged:
                relogged = True
                try:
                    info = await self._relogin()
                except Exception as exc:  # the login itself failed: report the 401
                    error = UnauthorizedError(verb, resource, f"{error.message}; login: {exc}")
                else:
                    self._headers = dict(info.as_http_headers())
                    continue
            self._account(verb, resource, error)
            raise error

    def _account(self, verb: str, resource: str, error: ApiError | None) -> None:
        if error is None:
            self.health.succeeded(verb, resource)
            return
        self.errors[(verb, resource, str(error.code or "none"))] += 1
        if not error.object_level:
            self.health.failed(verb, resource, error)


def _selectors(label_selector: str | None, field_selector: str | None) -> dict[str, str]:
    params: dict[str, str] = {}
    if label_selector:
        params["labelSelector"] = label_selector
    if field_selector:
        params["fieldSelector"] = field_selector
    return params


def stamp_kind(res: Resource, obj: dict[str, Any]) -> dict[str, Any]:
    obj.setdefault("apiVersion", res.api_version)
    obj.setdefault("kind", res.kind)
    return obj
