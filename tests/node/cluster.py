"""A whole cluster's control loop for one node netns: the operator tests' emulator (RBAC,
status subresources, watches) served inside the node netns, where `multus-node` reaches
it, and the real operator (kopf, embedded as in tests/operator) on the same loop.

Both log in with their own tokens, whose RBAC is `rbac/rules.yaml`'s `operator` and
`node` rules: the loop runs with the documented permissions and nothing more. The
test's own calls (`run(cluster.client.create(...))`) are the admin's, as kubectl's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import aiohttp
import kmock

from multus_operator import rbac
from multus_operator.handlers import Operator
from tests.k8s.emulator import Api
from tests.operator.apiclient import NAMESPACE, Client
from tests.operator.conftest import OPERATOR_TOKEN, RULES_FILE, operator_subject, running
from tests.operator.emulator import Emulator, Subject

NODE_TOKEN = "mnd-agent-token"  # what tests/node's Daemon puts in its kubeconfig
NODE_USER = f"system:serviceaccount:{NAMESPACE}:multus-node"


class ClusterApi(Api):
    def __init__(self, netns: str) -> None:
        self.operator: Operator | None = None
        self._operating: Future[None] | None = None
        self._operator_stop: asyncio.Event | None = None
        super().__init__(netns)

    async def _serve(self) -> None:  # type: ignore[override]
        self._stop = asyncio.Event()
        node = Subject(NODE_USER, tuple(rbac.load(RULES_FILE)["node"]), NAMESPACE)
        emulator = Emulator(users={OPERATOR_TOKEN: operator_subject(), NODE_TOKEN: node})
        async with (
            emulator,
            kmock.Server(emulator) as server,
            aiohttp.ClientSession() as session,
        ):
            self.emulator = emulator  # type: ignore[assignment]
            self.url = str(server.url).rstrip("/")
            self.client = Client(self.url, session)
            self._started.set()
            await self._stop.wait()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        """A coroutine on the emulator's loop (in the node netns), from the test."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def kubeconfig(self, directory: Path, token: str = NODE_TOKEN) -> Path:
        return super().kubeconfig(directory, token)

    # ---- the operator ----

    def start_operator(self) -> Operator:
        started: Future[Operator] = Future()

        async def operate() -> None:
            self._operator_stop = asyncio.Event()
            async with running(self.url) as operator:
                self.operator = operator
                started.set_result(operator)
                await self._operator_stop.wait()

        self._operating = asyncio.run_coroutine_threadsafe(operate(), self.loop)
        self._operating.add_done_callback(
            lambda f: started.done() or started.set_exception(f.exception() or RuntimeError())
        )
        return started.result(40)

    def stop_operator(self) -> None:
        if self._operating is None or self._operator_stop is None:
            return
        self.loop.call_soon_threadsafe(self._operator_stop.set)
        self._operating.result(40)
        self._operating = None

    def close(self) -> None:
        try:
            self.stop_operator()
        finally:
            super().close()

    # ---- what tests/node's Daemon and the assertions read ----

    def queries(self) -> list[tuple[str, str, dict[str, str]]]:
        return self.call(lambda: [(r.method, r.path, r.params) for r in self.emulator.requests_log])  # type: ignore[attr-defined]

    def writes_by(self, user: str, path_part: str) -> list[str]:
        """The successful writes of `user` whose path holds `path_part`."""
        log = self.call(lambda: list(self.emulator.requests_log))  # type: ignore[attr-defined]
        return [
            f"{r.method} {r.path}"
            for r in log
            if r.subject == user
            and r.method in ("POST", "PATCH", "PUT", "DELETE")
            and path_part in r.path
            and 200 <= r.status < 300
        ]

    def object(self, path: str) -> Any:
        return self.run(self.client.get(path))
