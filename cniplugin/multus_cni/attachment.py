"""One delegate network bound to one pod interface: how to ADD, CHECK and DEL it.

A delegate network is a single plugin or a conflist; its plugins run as a chain
(each gets the previous one's result as `prevResult`), each at the newest CNI
version it speaks that is no newer than the network's, results converted back.
"""

from __future__ import annotations

from . import cnijson, records, results, versions
from .errors import CniError
from .invoke import Delegate, parse_result
from .logs import log
from .netconf import DelegateNetwork

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class PluginCall:
    """One plugin of a network: its conf, its binary (None when missing), the version
    sent, and where its ADD stands (`records` states; `error` when it failed)."""

    __slots__ = ("conf", "delegate", "error", "problem", "state", "version")

    def __init__(
        self,
        conf: dict[str, Any],
        delegate: Delegate | None,
        version: str,
        problem: str = "",
        state: str = records.PENDING,
    ) -> None:
        self.conf = conf
        self.delegate = delegate
        self.version = version
        self.problem = problem
        self.state = state
        self.error: dict[str, Any] | None = None


class DelFailure:
    """A plugin call whose DEL failed while it may still hold something."""

    __slots__ = ("error", "holds")

    def __init__(self, error: CniError, holds: str) -> None:
        self.error = error
        self.holds = holds

    def __str__(self) -> str:
        return f"{self.error.msg} ({self.holds})"


class Attachment:
    __slots__ = ("calls", "ifname", "network", "result")

    def __init__(self, network: DelegateNetwork, ifname: str, calls: list[PluginCall]) -> None:
        self.network = network
        self.ifname = ifname
        self.calls = calls
        self.result: dict[str, Any] | None = None

    @property
    def master(self) -> bool:
        return self.network.master

    def stdin(
        self,
        call: PluginCall,
        prev: dict[str, Any] | None,
        runtime_config: dict[str, Any] | None,
        extra: dict[str, Any] | None = None,
    ) -> bytes:
        conf: dict[str, Any] = {"cniVersion": call.version, "name": self.network.name}
        conf.update((k, v) for k, v in call.conf.items() if k != "capabilities")
        capabilities = call.conf.get("capabilities")
        if runtime_config and isinstance(capabilities, dict):
            granted = {k: v for k, v in runtime_config.items() if capabilities.get(k) is True}
            if granted:
                conf["runtimeConfig"] = granted
        if prev is not None:
            conf["prevResult"] = results.convert(prev, call.version)
        if extra:
            conf.update(extra)
        return cnijson.dumps(conf).encode()

    def _delegate(self, call: PluginCall) -> Delegate:
        if call.delegate is None:
            raise CniError(
                call.problem or f"plugin {call.conf.get('type')!r} is not available", code=7
            )
        return call.delegate

    def add(
        self,
        netns: str,
        runtime_config: dict[str, Any] | None,
        before_exec: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Run the chain; the network's result at the network's version. `before_exec`
        runs after each call is marked started and before it is exec'd (the engine
        writes the record there)."""
        prev: dict[str, Any] | None = None
        for call in self.calls:
            delegate = self._delegate(call)
            stdin = self.stdin(call, prev, runtime_config)
            call.state = records.STARTED
            if before_exec is not None:
                before_exec()
            try:
                out = delegate.call("ADD", self.ifname, stdin, netns)
                prev = results.convert(
                    parse_result(delegate.label, out, call.version), self.network.cni_version
                )
            except CniError as exc:
                call.state = records.FAILED
                call.error = records.add_error(exc)
                raise
            call.state = records.SUCCEEDED
            self.result = prev
        assert prev is not None
        return prev

    def check(self, netns: str, runtime_config: dict[str, Any] | None) -> None:
        for call in self.calls:
            if not versions.at_least(call.version, "0.4.0"):
                continue  # CHECK does not exist before 0.4.0
            delegate = self._delegate(call)
            delegate.call(
                "CHECK", self.ifname, self.stdin(call, self.result, runtime_config), netns
            )

    def delete(self, netns: str, runtime_config: dict[str, Any] | None) -> list[DelFailure]:
        """DEL, in reverse order, every plugin call that may hold something, carrying on
        past failures; the failures that leave something held (`records.harmless`
        says which may be dropped). Calls that are done with become `deleted`."""
        failures: list[DelFailure] = []
        for call in reversed(self.calls):
            if call.state in (records.PENDING, records.DELETED):
                continue
            prev = self.result if versions.at_least(call.version, "0.4.0") else None
            try:
                delegate = self._delegate(call)
                delegate.call("DEL", self.ifname, self.stdin(call, prev, runtime_config), netns)
            except CniError as exc:
                if records.harmless(call.state, call.error, exc):
                    log.error(
                        f"{exc.msg}: dropped, its ADD was refused the same way "
                        f"({(call.error or {}).get('msg')}), so it holds nothing"
                    )
                else:
                    holds = records.holdings(self.result, self.ifname, call.state)
                    failures.append(DelFailure(exc, holds))
                    continue
            call.state = records.DELETED
        return failures

    @property
    def done_with(self) -> bool:
        """Nothing of it can be held any more."""
        return all(c.state in (records.PENDING, records.DELETED) for c in self.calls)

    def to_record(self) -> dict[str, Any]:
        return {
            "ifName": self.ifname,
            "master": self.master,
            "network": self.network.to_dict(),
            "versions": [call.version for call in self.calls],
            "calls": [{"state": c.state, "error": c.error} for c in self.calls],
            "result": self.result,
            "runtimeConfig": self.network.runtime_config,
        }
