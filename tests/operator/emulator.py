"""kmock's Kubernetes emulator with the gaps of kmock 0.8 filled, for operator tests.

Added here (test code, not product code), each the way a real kube-apiserver does it:

- stamping: `resourceVersion` (one counter for everything), `uid`, `generation` (bumped
  when anything but metadata and status changes), `creationTimestamp`;
- the `/status` subresource per resource (`ResourceInfo.subresources`): a status patch
  touches only status, a main-resource write never touches it; PUT (replace);
- LIST: the current resourceVersion, label selectors, field selectors on
  `metadata.name`/`metadata.namespace`, pages (`limit`/`continue`);
- WATCH from a resourceVersion (the events after it are replayed, none twice), bookmarks
  when asked for, the stream ended after `timeoutSeconds`, `410 Gone` for a version
  older than the last `compact()`, and an object that stops matching a label selector
  delivered as DELETED (starts matching: ADDED); `break_watches()` ends every stream;
- authentication by bearer token and RBAC: a token in `users` is a subject with rules
  (`multus_operator.rbac.Rule`); anything else they do not grant is answered 403 with
  the API server's own wording; a request without a token is the test's admin;
- `refuse()`: an answer without applying the write, with a `Retry-After` if asked;
- validating admission webhooks from the stored ValidatingWebhookConfigurations: rules,
  `matchConditions` (CEL, by cel-python), `failurePolicy`, `timeoutSeconds`, TLS with
  the `caBundle`; a `service` reference resolves through `services` (kube-proxy's job);
- a log of every request (`requests_log`): method, path, subject, verb, API group,
  resource, namespace and the status answered.

kmock routes each request by scanning its whole request history, which makes a long
run quadratic; only the requests still in flight are kept (our own log is separate),
so the benchmark's thousands of requests stay linear.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import copy
import dataclasses
import datetime
import itertools
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import aiohttp.web
import attrs
import celpy
import kmock
from kmock._internal import dicts, enums, rendering
from kmock._internal.k8s import KubernetesError

from multus_operator.rbac import Rule, allowed

VERBS = {"create", "delete", "get", "list", "patch", "update", "watch"}
OUR_RESOURCES = {
    "kubernetes.com/v1/networks": ("Network", True, {"status"}),
    "k8s.cni.cncf.io/v1/network-attachment-definitions": (
        "NetworkAttachmentDefinition",
        True,
        set(),
    ),
    "multus.cni.cncf.io/v1/nodestates": ("NodeState", False, {"status"}),
}
DISCOVERY_PREFIXES = ("/api", "/apis", "/version", "/openapi", "/healthz", "/livez", "/readyz")
WEBHOOKS = "admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


def register_resources(resources: kmock.ResourcesArray) -> None:
    """kmock's bundled built-in kinds and the project's CRDs, served with every verb
    (an emulator's `self.resources`; shared by the operator's and the node's)."""
    resources.load_bundled()
    for key, (kind, namespaced, subresources) in OUR_RESOURCES.items():
        resources[key] = kmock.ResourceInfo(
            kind=kind, namespaced=namespaced, verbs=VERBS, subresources=subresources
        )


def selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality-based selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`, comma-joined."""
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


FIELD_LABELS = ("metadata.name", "metadata.namespace", "spec.nodeName")  # the last: pods'


def fields_match(selector: str, obj: dict[str, Any]) -> bool:
    """Field selectors on metadata.name and metadata.namespace (what every kind has), and
    a pod's spec.nodeName (what a node agent watches its pods by)."""
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        negate = "!=" in term
        key, value = term.replace("!=", "=").replace("==", "=").split("=", 1)
        if key.strip() not in FIELD_LABELS:
            raise ValueError(f"field label not supported: {key.strip()}")
        found: Any = obj
        for part in key.strip().split("."):
            found = found.get(part) if isinstance(found, dict) else None
        if (str(found or "") == value.strip()) == negate:
            return False
    return True


@dataclasses.dataclass(frozen=True)
class RequestInfo:
    """What a request asks, as the API server's RequestInfoResolver reads its path."""

    verb: str
    group: str = ""
    version: str = ""
    resource: str = ""  # "" for a non-resource URL; "pods/status" with a subresource
    namespace: str | None = None
    name: str | None = None

    @property
    def is_resource(self) -> bool:
        return bool(self.resource)


def request_info(method: str, path: str, params: dict[str, str]) -> RequestInfo:
    parts = [p for p in path.split("/") if p]
    verb_of = {"POST": "create", "PUT": "update", "PATCH": "patch"}
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return RequestInfo(verb=method.lower())
    namespace = None
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    elif rest[:1] == ["namespaces"]:  # /namespaces or /namespaces/<name>: the kind itself
        pass
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    if method == "GET":
        verb = "watch" if params.get("watch") in ("true", "1") else "get" if name else "list"
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = verb_of.get(method, method.lower())
    return RequestInfo(verb, group, version, resource, namespace, name)


@dataclasses.dataclass(frozen=True)
class Subject:
    """Who a bearer token is, and what RBAC lets it do."""

    username: str
    rules: tuple[Rule, ...]
    namespace: str  # where its namespace-scoped rules (its Role) apply


@dataclasses.dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    subject: str  # "" for the tests' own admin client
    info: RequestInfo
    status: int = 0


@dataclasses.dataclass(frozen=True)
class Change:
    version: int
    resource: str  # "group/version/plural"
    kind: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


def forbidden_message(subject: Subject, info: RequestInfo) -> str:
    plural, _, sub = info.resource.partition("/")
    what = f'resource "{plural}"' + (f' subresource "{sub}"' if sub else "")
    where = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
    named = f"{plural}.{info.group}" if info.group else plural
    if info.name:
        named += f' "{info.name}"'
    return (
        f'{named} is forbidden: User "{subject.username}" cannot {info.verb} {what}'
        f' in API group "{info.group}" {where}'
    )


def _status(code: int, message: str, reason: str = "") -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesEmulator):
    users: dict[str, Subject] = attrs.field(factory=dict)
    services: dict[tuple[str, str], str] = attrs.field(factory=dict)  # (ns, name) -> https URL
    bookmark_every: float = 1.0
    requests_log: list[Recorded] = attrs.field(factory=list)
    webhook_calls: list[tuple[str, str, str]] = attrs.field(factory=list)  # webhook, op, name
    _counter: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _version: int = attrs.field(default=0, init=False)
    _horizon: int = attrs.field(default=0, init=False)
    _changes: list[Change] = attrs.field(factory=list, init=False)
    _versions: list[int] = attrs.field(factory=list, init=False)
    _dropped: int = attrs.field(default=0, init=False)  # changes forgotten by compact()
    _wakers: set[asyncio.Event] = attrs.field(factory=set, init=False)  # open watch streams
    _webhook_configs: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _watch_epoch: int = attrs.field(default=0, init=False)
    _write_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    _write_log: list[str] = attrs.field(factory=list, init=False)
    _inflight: set[int] = attrs.field(factory=set, init=False)
    _refusals: list[tuple[Callable[[rendering.Request], bool], int, float | None]] = attrs.field(
        factory=list, init=False
    )

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        register_resources(self.resources)

    # --- controls for tests -------------------------------------------------------------

    def refuse(
        self,
        matches: Callable[[rendering.Request], bool],
        status: int = 500,
        retry_after: float | None = None,
    ) -> Callable[[], None]:
        """Answer `status` to matching requests without applying them, until the returned
        function is called. kmock's own reactions (`emu[f] << 500`) apply a write before
        answering, like a timeout after commit; this is an API that really says no."""
        refusal = (matches, status, retry_after)
        self._refusals.append(refusal)
        return lambda: self._refusals.remove(refusal)

    def compact(self) -> None:
        """Forget the history so far: a watch or a list continuation from an older
        resourceVersion is answered 410 Gone, as after etcd's compaction."""
        self._horizon = self._version
        self._dropped += len(self._changes)
        self._changes.clear()
        self._versions.clear()

    async def break_watches(self) -> None:
        """End every open watch stream (an API server restart; a load balancer's idle
        timeout); clients resume from their last resourceVersion."""
        self._watch_epoch += 1
        for waker in self._wakers:
            waker.set()

    def writes(self) -> list[str]:
        """Every write request served so far, as `METHOD path`."""
        return list(self._write_log)

    def object(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        for (res, ns, nm), obj in self.objects.items():
            if _res_key(res) == resource and ns == namespace and nm == name and not obj.deleted:
                return copy.deepcopy(obj.raw)
        return None

    # --- the request path -------------------------------------------------------------

    async def _handle(self, request: rendering.Request) -> Any:
        info = request_info(request.method.value, request.url.path, dict(request.params))
        subject = self._subject(request)
        record = Recorded(
            request.method.value,
            request.url.path,
            dict(request.params),
            subject.username if subject else "",
            info,
        )
        self.requests_log.append(record)
        # In flight from its arrival: kmock serves only requests still in its list, and a
        # request waiting on a webhook must not be pruned by one that arrives meanwhile.
        self._inflight.add(id(request))
        try:
            response = await self._answer(request, info, subject)
        finally:
            self._inflight.discard(id(request))
        record.status = response.status
        return response

    def _subject(self, request: rendering.Request) -> Subject | None:
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else ""
        return self.users.get(token) if token else None

    async def _answer(
        self, request: rendering.Request, info: RequestInfo, subject: Subject | None
    ) -> Any:
        if subject is not None:
            denied = self._authorize(subject, info, request.url.path)
            if denied is not None:
                return aiohttp.web.json_response(_status(403, denied, "Forbidden"), status=403)
        for matches, status, retry_after in list(self._refusals):
            if matches(request):
                headers = {"Retry-After": str(int(retry_after))} if retry_after else {}
                body = _status(status, f"refused by the test ({status})")
                return aiohttp.web.json_response(body, status=status, headers=headers)
        if request.resource is not None and request.method.value in ("POST", "PATCH", "PUT"):
            refusal = await self._admit(request, info)
            if refusal is not None:
                return refusal
        # Keep kmock's request list bounded: only the requests being served.
        self._requests[:] = [r for r in self._requests if id(r) in self._inflight]
        if request.method.value in ("POST", "PATCH", "PUT", "DELETE"):
            async with self._write_lock:
                return await self._write(request)
        return await super()._handle(request)

    def _authorize(self, subject: Subject, info: RequestInfo, path: str) -> str | None:
        if not info.is_resource:
            if info.verb == "get" and path.startswith(DISCOVERY_PREFIXES):
                return None  # system:discovery, granted to every authenticated user
            return f'forbidden: User "{subject.username}" cannot {info.verb} path "{path}"'
        if allowed(
            subject.rules, info.verb, info.group, info.resource, info.namespace, subject.namespace
        ):
            return None
        return forbidden_message(subject, info)

    async def _write(self, request: rendering.Request) -> Any:
        self._write_log.append(f"{request.method.value} {request.url.path}")
        key = None
        if request.resource is not None:
            name = request.name
            if request.action == enums.action.CREATE and isinstance(request.data, dict):
                name = (request.data.get("metadata") or {}).get("name")
            namespace = request.namespace
            if namespace is None and isinstance(request.data, dict):
                namespace = (request.data.get("metadata") or {}).get("namespace")
            key = (request.resource, namespace if self._namespaced(request) else None, name)
        before = self._current(key)
        if request.resource is not None and isinstance(request.data, dict):
            if request.action == enums.action.CREATE:
                self._stamp_create(request)
            elif request.action == enums.action.UPDATE and request.name is not None:
                self._stamp_update(request)
        if request.method.value == "PUT" and request.resource is not None and request.name:
            response = await self._replace(request)
        else:
            response = await super()._handle(request)
        if key is not None:
            await self._record(_res_key(request.resource), before, self._current(key))
        if request.method.value == "POST" and response.status == 200 and not response.prepared:
            response.set_status(201)  # Created, as the API server answers
        return response

    def _namespaced(self, request: rendering.Request) -> bool:
        for resource in self.resources:
            if resource == request.resource:
                return bool(self.resources[resource].namespaced)
        return request.namespace is not None

    def _current(self, key: Any) -> dict[str, Any] | None:
        if key is None or key not in self.objects or self.objects[key].deleted:
            return None
        return copy.deepcopy(self.objects[key].raw)

    async def _record(
        self, resource: str, before: dict[str, Any] | None, after: dict[str, Any] | None
    ) -> None:
        if before is None and after is None:
            return
        if after is None:
            assert before is not None
            obj = copy.deepcopy(before)
            obj.setdefault("metadata", {})["resourceVersion"] = str(next(self._counter))
            kind = "DELETED"
        elif before is None:
            obj, kind = after, "ADDED"
        else:
            if before == after:
                return
            obj, kind = after, "MODIFIED"
        if resource == WEBHOOKS:
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                self._webhook_configs.pop(name, None)
            else:
                self._webhook_configs[name] = obj
        version = int(obj["metadata"]["resourceVersion"])
        self._version = max(self._version, version)
        self._changes.append(Change(version, resource, kind, obj, before))
        self._versions.append(version)
        for waker in self._wakers:
            waker.set()

    async def _replace(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        """PUT: the body replaces the object (or only its status, on `/status`)."""
        key = (request.resource, request.namespace, request.name)
        body = request.data if isinstance(request.data, dict) else {}
        async with self._lock:
            if key not in self.objects or self.objects[key].deleted:
                return aiohttp.web.json_response(_status(404, "not found", "NotFound"), status=404)
            old = copy.deepcopy(self.objects[key].raw)
            old_meta = old.get("metadata", {})
            if request.subresource == "status":
                new = {**old, "status": body.get("status")}
            else:
                new = dict(body)
                if self._has_status(request):
                    new.pop("status", None)
                    if "status" in old:
                        new["status"] = old["status"]
            meta = dict(new.get("metadata") or {})
            for kept in ("uid", "creationTimestamp", "namespace", "name"):
                if kept in old_meta:
                    meta[kept] = old_meta[kept]
            meta["resourceVersion"] = str(next(self._counter))
            generation = int(old_meta.get("generation") or 1)
            meta["generation"] = generation + (1 if _spec(old) != _spec(new) else 0)
            new["metadata"] = meta
            self.objects[key].create(new)
        return aiohttp.web.json_response(new)

    def _has_status(self, request: rendering.Request) -> bool:
        for resource in self.resources:
            if resource == request.resource:
                return "status" in self.resources[resource].subresources
        return False

    def _stamp_create(self, request: rendering.Request) -> None:
        data = request.data
        meta = data.setdefault("metadata", {})
        meta["uid"] = str(uuid.uuid4())
        meta["resourceVersion"] = str(next(self._counter))
        meta["generation"] = 1
        meta["creationTimestamp"] = _now()
        if request.namespace and not meta.get("namespace"):
            meta["namespace"] = request.namespace
        if self._has_status(request):
            data.pop("status", None)

    def _stamp_update(self, request: rendering.Request) -> None:
        data = request.data
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return  # the parent answers 404
        if request.subresource == "status":
            status = data.get("status")
            data.clear()
            data["status"] = status
        elif self._has_status(request):
            data.pop("status", None)
        old = copy.deepcopy(self.objects[key].raw)
        new = dicts.patch_dict(old, data)
        meta = data.setdefault("metadata", {})
        meta.pop("uid", None)
        meta["resourceVersion"] = str(next(self._counter))
        generation = int(old.get("metadata", {}).get("generation") or 1)
        if _spec(old) != _spec(new):
            generation += 1
        meta["generation"] = generation

    # --- one object, by its key (kmock scans every object for each) -----------------------

    def _key(self, request: rendering.Request, name: str | None = None) -> Any:
        namespace = request.namespace
        if namespace is None and isinstance(request.data, dict):
            namespace = (request.data.get("metadata") or {}).get("namespace")
        namespace = namespace if self._namespaced(request) else None
        return (request.resource, namespace, name or request.name)

    def _found(self, key: Any, last: bool = False) -> Any:
        if key not in self.objects:
            raise KubernetesError(404, "NotFound", "the object is not found")
        obj = self.objects[key]
        if last:
            return obj.last.raw
        if obj.deleted:
            raise KubernetesError(404, "NotFound", "the object is not found")
        return obj.raw

    async def _serve_fetch(self, request: rendering.Request) -> Any:
        return self._found(self._key(request))

    async def _serve_create(self, request: rendering.Request) -> Any:
        name = (request.data.get("metadata") or {}).get("name")
        return self._found(self._key(request, name))

    async def _serve_update(self, request: rendering.Request) -> Any:
        return self._found(self._key(request), last=True)

    async def _serve_delete(self, request: rendering.Request) -> Any:
        return self._found(self._key(request), last=True)

    # --- LIST and WATCH -----------------------------------------------------------------

    def _matching(self, request: rendering.Request) -> list[dict[str, Any]]:
        """The stored objects a LIST or a WATCH asks for, sorted, not copied."""
        labels = request.params.get("labelSelector") or ""
        fields = request.params.get("fieldSelector") or ""
        found = []
        for (resource, namespace, _name), obj in self.objects.items():
            if resource != request.resource or obj.deleted:
                continue
            if request.namespace is not None and namespace != request.namespace:
                continue
            if _selected(labels, fields, obj.raw):
                found.append(obj.raw)
        return sorted(
            found, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"])
        )

    async def _serve_list(self, request: rendering.Request) -> Any:
        for resource in self._get_resources():
            if resource == request.resource:
                break
        else:
            raise KubernetesError(
                404, "NotFound", "the server could not find the requested resource"
            )
        offset, version = 0, self._version
        token = request.params.get("continue")
        if token:
            version, offset = json.loads(base64.b64decode(token))
            if version < self._horizon:
                raise KubernetesError(410, "Expired", "the provided continue parameter is too old")
        items = self._matching(request)
        limit = int(request.params.get("limit") or 0)
        meta: dict[str, Any] = {"resourceVersion": str(version)}
        if limit and offset + limit < len(items):
            meta["continue"] = base64.b64encode(
                json.dumps([version, offset + limit]).encode()
            ).decode()
        chunk = copy.deepcopy(items[offset : offset + limit] if limit else items[offset:])
        return {"kind": "List", "apiVersion": "v1", "metadata": meta, "items": chunk}

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        yield b""  # the headers: streaming starts even if nothing happens
        params = request.params
        labels, fields = params.get("labelSelector") or "", params.get("fieldSelector") or ""
        bookmarks = params.get("allowWatchBookmarks") in ("true", "1")
        deadline = time.monotonic() + float(params.get("timeoutSeconds") or 1800)
        epoch = self._watch_epoch
        since_text = params.get("resourceVersion") or ""
        resource = _res_key(request.resource)
        if since_text in ("", "0"):
            since = self._version
            for obj in self._matching(request):
                yield _line({"type": "ADDED", "object": obj})  # serialized: no copy needed
        else:
            since = int(since_text)
            if since < self._horizon:
                message = f"too old resource version: {since} ({self._horizon})"
                yield _line({"type": "ERROR", "object": _status(410, message, "Expired")})
                return
        position = self._dropped + bisect.bisect_right(self._versions, since)
        last_bookmark = time.monotonic()
        waker = asyncio.Event()
        self._wakers.add(waker)
        try:
            while time.monotonic() < deadline and epoch == self._watch_epoch:
                waker.clear()  # before looking: a change from now on wakes us again
                if position < self._dropped:  # compacted under this stream
                    message = f"too old resource version: {since} ({self._horizon})"
                    yield _line({"type": "ERROR", "object": _status(410, message, "Expired")})
                    return
                lines = []
                while position - self._dropped < len(self._changes):
                    change = self._changes[position - self._dropped]
                    position += 1
                    if change.resource != resource:
                        continue
                    event = _event_for(change, request.namespace, labels, fields)
                    if event is not None:
                        lines.append(_line(event))
                if bookmarks and time.monotonic() - last_bookmark >= self.bookmark_every:
                    last_bookmark = time.monotonic()
                    version = {"metadata": {"resourceVersion": str(self._version)}}
                    lines.append(_line({"type": "BOOKMARK", "object": version}))
                if lines:
                    yield b"".join(lines)  # one write for a burst
                    continue
                wait = min(self.bookmark_every, max(0.0, deadline - time.monotonic()))
                try:
                    async with asyncio.timeout(wait):
                        await waker.wait()
                except TimeoutError:
                    pass
        finally:
            self._wakers.discard(waker)

    # --- admission ----------------------------------------------------------------------

    async def _admit(
        self, request: rendering.Request, info: RequestInfo
    ) -> aiohttp.web.StreamResponse | None:
        if "/" in info.resource:
            return None  # our webhooks register for the main resources only
        operation = "CREATE" if request.method.value == "POST" else "UPDATE"
        data = request.data if isinstance(request.data, dict) else {}
        old = None
        if operation == "UPDATE":
            key = (request.resource, request.namespace, request.name)
            old = self._current(key)
            if old is None:
                return None
            new = (
                dicts.patch_dict(copy.deepcopy(old), data)
                if request.method.value == "PATCH"
                else data
            )
        else:
            new = data
        for config in self._webhook_configurations():
            for webhook in config.get("webhooks") or []:
                if not _rules_match(webhook.get("rules") or [], info, operation):
                    continue
                refusal = await self._call_webhook(webhook, operation, info, new, old)
                if refusal is not None:
                    return refusal
        return None

    def _webhook_configurations(self) -> list[dict[str, Any]]:
        return [copy.deepcopy(c) for c in self._webhook_configs.values()]

    async def _call_webhook(
        self,
        webhook: dict[str, Any],
        operation: str,
        info: RequestInfo,
        new: dict[str, Any],
        old: dict[str, Any] | None,
    ) -> aiohttp.web.StreamResponse | None:
        name = str(webhook.get("name"))
        fail = webhook.get("failurePolicy", "Fail") == "Fail"
        request = {
            "uid": str(uuid.uuid4()),
            "kind": {"group": info.group, "version": info.version, "kind": new.get("kind")},
            "resource": {"group": info.group, "version": info.version, "resource": info.resource},
            "operation": operation,
            "namespace": info.namespace,
            "name": info.name or (new.get("metadata") or {}).get("name"),
            "object": new,
            "oldObject": old,
            "userInfo": {"username": "tester"},
            "dryRun": False,
        }
        try:
            if not _conditions_hold(webhook.get("matchConditions") or [], request):
                return None
        except Exception as exc:  # a CEL error: the failurePolicy decides
            if fail:
                message = f'failed calling webhook "{name}": matchCondition error: {exc}'
                return aiohttp.web.json_response(_status(500, message, "InternalError"), status=500)
            return None
        self.webhook_calls.append((name, operation, str(request["name"])))
        review = {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": request,
        }
        try:
            answer = await self._post_review(webhook, review)
        except Exception as exc:
            if not fail:
                return None
            message = f'Internal error occurred: failed calling webhook "{name}": {exc}'
            return aiohttp.web.json_response(_status(500, message, "InternalError"), status=500)
        response = answer.get("response") or {}
        if response.get("allowed"):
            return None
        status = response.get("status") or {}
        code = int(status.get("code") or 400)
        message = f'admission webhook "{name}" denied the request: {status.get("message", "")}'
        return aiohttp.web.json_response(_status(code, message, "Invalid"), status=code)

    async def _post_review(self, webhook: dict[str, Any], review: dict[str, Any]) -> Any:
        client = webhook.get("clientConfig") or {}
        if "url" in client:
            url = str(client["url"])
        else:
            service = client["service"]
            base = self.services[(service["namespace"], service["name"])]
            url = base.rstrip("/") + str(service.get("path") or "")
        cadata = base64.b64decode(client.get("caBundle") or "").decode() or None
        context = ssl.create_default_context(cadata=cadata)
        timeout = aiohttp.ClientTimeout(total=float(webhook.get("timeoutSeconds") or 10))
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, json=review, ssl=context) as resp,
        ):
            if resp.status != 200:
                raise RuntimeError(f"the server responded with status {resp.status}")
            return await resp.json()


def _rules_match(rules: list[dict[str, Any]], info: RequestInfo, operation: str) -> bool:
    for rule in rules:
        if (
            info.group in rule.get("apiGroups", [])
            and info.version in rule.get("apiVersions", [])
            and info.resource in rule.get("resources", [])
            and (operation in rule.get("operations", []) or "*" in rule.get("operations", []))
        ):
            return True
    return False


def _conditions_hold(conditions: list[dict[str, Any]], request: dict[str, Any]) -> bool:
    env = celpy.Environment()
    activation = {
        "object": celpy.json_to_cel(request["object"]),
        "oldObject": celpy.json_to_cel(request["oldObject"]),
        "request": celpy.json_to_cel(
            {k: v for k, v in request.items() if k not in ("object", "oldObject")}
        ),
    }
    for condition in conditions:
        program = env.program(env.compile(condition["expression"]))
        result = program.evaluate(activation)
        if isinstance(result, Exception):
            raise result
        if not bool(result):
            return False
    return True


def _event_for(
    change: Change, namespace: str | None, labels: str, fields: str
) -> dict[str, Any] | None:
    obj_ns = (change.obj.get("metadata") or {}).get("namespace")
    if namespace is not None and obj_ns != namespace:
        return None
    now = _selected(labels, fields, change.obj)
    was = change.old is not None and _selected(labels, fields, change.old)
    if change.kind == "MODIFIED":
        if now and was:
            return {"type": "MODIFIED", "object": change.obj}
        if now:
            return {"type": "ADDED", "object": change.obj}
        if was:
            return {"type": "DELETED", "object": change.obj}
        return None
    return {"type": change.kind, "object": change.obj} if now else None


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode() + b"\n"


def _res_key(resource: Any) -> str:
    """`group/version/plural` (`v1/plural` for the core group) of a kmock resource."""
    group = getattr(resource, "group", "") or ""
    prefix = f"{group}/" if group else ""
    return f"{prefix}{resource.version}/{resource.plural}"


def _selected(labels: str, fields: str, obj: dict[str, Any]) -> bool:
    """Whether `obj` is one a request's label and field selectors ask for (empty: any)."""
    if labels and not selector_matches(labels, (obj.get("metadata") or {}).get("labels") or {}):
        return False
    return not fields or fields_match(fields, obj)


def _spec(obj: Any) -> Any:
    return {k: v for k, v in dict(obj).items() if k not in ("metadata", "status")}


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
