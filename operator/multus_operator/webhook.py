"""The admission webhook's HTTPS server: one path per kind, one certificate for all.

The certificate comes from a `kubernetes.io/tls` Secret mounted as a directory
(`tls.crt`, `tls.key`, and `ca.crt` where the issuer adds one, as cert-manager does;
without it the certificate is its own CA). Every replica mounts the same Secret, so
the configuration's caBundle fits whichever replica the API server reaches. The files
are re-read every `check_every` seconds; a renewed certificate is loaded into the
running server (new connections get it, nothing restarts) and its CA is handed to the
configuration manager.

A request to any other path than `PATHS` is answered 404 (so the API server applies
the failurePolicy) and logged once per path: a configuration registered by hand
without the path would otherwise look like it works while judging nothing.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import logging
import ssl
from pathlib import Path

from aiohttp import web

from .admission import PATHS, review_response

logger = logging.getLogger("multus_operator")
MAX_REVIEW_BYTES = 8 * 1024 * 1024  # an AdmissionReview holds the object twice (and old)


class TlsFiles:
    """A kubernetes.io/tls Secret, mounted as a directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cert = directory / "tls.crt"
        self.key = directory / "tls.key"
        self.ca = directory / "ca.crt"

    def problems(self) -> list[str]:
        found = []
        for path in (self.cert, self.key):
            if not path.is_file():
                found.append(f"{path}: not found (mount the webhook's TLS Secret there)")
        return found

    def ca_bundle(self) -> bytes:
        return (self.ca if self.ca.is_file() else self.cert).read_bytes()

    def digest(self) -> str:
        hasher = hashlib.sha256()
        for path in (self.cert, self.key, self.ca):
            if path.is_file():
                hasher.update(path.read_bytes())
        return hasher.hexdigest()

    def load_into(self, context: ssl.SSLContext) -> None:
        context.load_cert_chain(str(self.cert), str(self.key))


class WebhookServer:
    def __init__(self, addr: str, port: int, tls: TlsFiles, *, check_every: float = 30.0) -> None:
        self.addr = addr
        self.port = port
        self.tls = tls
        self.check_every = check_every
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ca_bundle = b""
        self.ca_changed = asyncio.Event()  # set whenever ca_bundle was (re)loaded
        self.serving = asyncio.Event()
        self.reviews: collections.Counter[tuple[str, bool]] = collections.Counter()
        self._unknown_paths: set[str] = set()
        self._digest = ""

    def _load(self) -> None:
        digest = self.tls.digest()
        self.tls.load_into(self.context)
        self.ca_bundle = self.tls.ca_bundle()
        self._digest = digest
        self.ca_changed.set()

    async def run(self) -> None:
        self._load()
        app = web.Application(client_max_size=MAX_REVIEW_BYTES)
        for path in PATHS:
            app.router.add_post(path, self._review)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.addr, self.port, ssl_context=self.context)
        await site.start()
        self.serving.set()
        logger.info(
            "admission webhook serving on %s:%d (%s)", self.addr, self.port, ", ".join(PATHS)
        )
        try:
            while True:
                await asyncio.sleep(self.check_every)
                self._reload_if_changed()
        finally:
            self.serving.clear()
            await runner.cleanup()

    def _reload_if_changed(self) -> None:
        try:
            if self.tls.digest() == self._digest:
                return
            self._load()
        except (OSError, ssl.SSLError) as exc:  # mid-rotation: keep serving the old one
            logger.warning("webhook certificate in %s not reloaded: %s", self.tls.directory, exc)
            return
        logger.info("webhook certificate reloaded from %s", self.tls.directory)

    async def _review(self, request: web.Request) -> web.Response:
        try:
            review = json.loads(await request.read())
        except ValueError as exc:
            return web.json_response({"message": f"not an AdmissionReview: {exc}"}, status=400)
        answer = review_response(review)
        self.reviews[(request.path, bool(answer["response"]["allowed"]))] += 1
        return web.json_response(answer)

    async def _unknown(self, request: web.Request) -> web.Response:
        if request.path not in self._unknown_paths:
            self._unknown_paths.add(request.path)
            logger.warning(
                "admission request to %s %s: no webhook there (the paths are %s);"
                " check the ValidatingWebhookConfiguration's clientConfig",
                request.method,
                request.path,
                ", ".join(PATHS),
            )
        message = f"no webhook at {request.path}; the paths are {', '.join(PATHS)}"
        return web.json_response({"message": message}, status=404)
