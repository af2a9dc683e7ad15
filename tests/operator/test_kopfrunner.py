"""The operator under `kopf.testing.KopfRunner` (`kopf run` in a thread) against the emulator.

KopfRunner's `__exit__` blocks its caller while it joins the operator's thread, so the
emulator cannot share the test's loop: it runs, with its plain HTTP client, on a loop of
its own in a second thread, and the test itself is synchronous, as kopf's docs show it.
The operator logs in through its `connection` config (its `@kopf.on.login` handler),
nothing is patched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
import kmock
import kopf
import pytest
from kopf.testing import KopfRunner

from multus_operator.config import OperatorConfig
from multus_operator.handlers import Operator
from tests.operator.apiclient import NAMESPACE, Client, condition
from tests.operator.broken import BROKEN, SEED_NETWORKS, seed
from tests.operator.conftest import SETTINGS_YAML
from tests.operator.emulator import Emulator

T = TypeVar("T")
NETS = "/apis/kubernetes.com/v1/namespaces/default/networks"


class EmulatorThread:
    """The emulator, served over HTTP, and a `Client` to it, on their own loop and thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="emulator")
        self.client: Client

    def _serve(self) -> None:
        self.loop.run_until_complete(self._main())

    async def _main(self) -> None:
        try:
            self._stop = asyncio.Event()
            async with (
                Emulator() as emu,
                kmock.Server(emu) as server,
                aiohttp.ClientSession() as session,
            ):
                self.client = Client(str(server.url), session)
                self._ready.set()
                await self._stop.wait()
        except BaseException as e:
            self._error = e
            raise
        finally:
            self._ready.set()

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise RuntimeError("the emulator did not start") from self._error
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a client call on the emulator's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def eventually(self, check: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10.0) -> T:
        """Poll an async check of the emulator's state until it returns a truthy value."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.run(check())
            if last:
                return last
            time.sleep(0.05)
        raise AssertionError(f"condition not met within {timeout}s (last: {last!r})")


@pytest.fixture
def api() -> Iterator[EmulatorThread]:
    with EmulatorThread() as emu:
        yield emu


@contextlib.contextmanager
def kopf_globals_restored() -> Iterator[None]:
    """`kopf run` replaces kopf's default registry and configures the root logger (a
    handler on the runner's captured stderr, level DEBUG): undo both when it is done."""
    registry = kopf.get_default_registry()
    root, aio = logging.getLogger(), logging.getLogger("asyncio")
    handlers, level = root.handlers[:], root.level
    aio_handlers, aio_propagate = aio.handlers[:], aio.propagate
    try:
        yield
    finally:
        kopf.set_default_registry(registry)
        root.handlers[:], root.level = handlers, level
        aio.handlers[:], aio.propagate = aio_handlers, aio_propagate


def _valid(client: Client, name: str) -> Callable[[], Coroutine[Any, Any, dict[str, Any]]]:
    async def check() -> dict[str, Any]:
        return condition(await client.network(name), "Valid")

    return check


def test_operator_under_kopf_runner(api: EmulatorThread) -> None:
    client = api.client
    api.run(client.set_settings(SETTINGS_YAML))
    # The seed's networks exist before the operator starts (found by its initial list);
    # the broken network and the node arrive while it runs (found by its watches).
    for name in SEED_NETWORKS:
        api.run(client.create(NETS, seed(name)))
    operator = Operator(
        OperatorConfig(
            namespace=NAMESPACE,
            connection=kopf.ConnectionInfo(server=client.url, default_namespace=NAMESPACE),
            debounce=0.05,
        )
    )
    args = ["run", "--all-namespaces", "--standalone", "--verbose"]
    with (
        kopf_globals_restored(),
        KopfRunner(args, registry=operator.registry, reraise=False, timeout=20) as runner,
    ):
        for name in SEED_NETWORKS:
            obj_name = seed(name)["metadata"]["name"]
            valid = api.eventually(_valid(client, obj_name))
            assert (valid["status"], valid["reason"]) == ("True", "ChecksPassed"), valid
            assert valid["observedGeneration"] == 1

        broken, message = BROKEN["bad-json"]
        api.run(client.create(NETS, broken))
        valid = api.eventually(_valid(client, "bad-json"))
        assert (valid["status"], valid["reason"]) == ("False", "InvalidConfig"), valid
        assert valid["message"] == message and message.startswith("args: invalid JSON")
        assert valid["observedGeneration"] == 1

        node = api.run(client.add_node("kr-node1"))
        cm = api.eventually(lambda: client.configmap("kr-node1"))
        conf = json.loads(cm["data"]["00-multus.conf"])
        assert conf["type"] == "multus-py-shim" and conf["clusterNetwork"] == "flannel-conf"
        assert cm["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]

    assert runner.exception is None, runner.output[-3000:]
    assert runner.exit_code == 0, runner.output[-3000:]
    output = runner.output
    # Handler failures do not change the exit code; kopf logs them as errors.
    assert "Traceback" not in output and "[ERROR" not in output, output[-3000:]
    assert "Activity 'stop' succeeded." in output, output[-3000:]  # our cleanup handler ran
