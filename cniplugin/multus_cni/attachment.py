"""One delegate network bound to one pod interface: how to ADD, CHECK and DEL it.

A delegate network is a single plugin or a conflist; its plugins run as a chain
(each gets the previous one's result as `prevResult`), each at the newest CNI
version it speaks that is no newer than the network's, results converted back.
"""

from __future__ import annotations

from . import cnijson, results, versions
from .errors import CniError
from .invoke import Delegate, parse_result
from .netconf import DelegateNetwork

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class PluginCall:
    """One plugin of a network: its conf, its binary (None when missing), the version sent."""

    __slots__ = ("conf", "delegate", "problem", "version")

    def __init__(
        self, conf: dict[str, Any], delegate: Delegate | None, version: str, problem: str = ""
    ) -> None:
        self.conf = conf
        self.delegate = delegate
        self.version = version
        self.problem = problem


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

    def add(self, netns: str, runtime_config: dict[str, Any] | None) -> dict[str, Any]:
        """Run the chain; the network's result at the network's version."""
        prev: dict[str, Any] | None = None
        for call in self.calls:
            delegate = self._delegate(call)
            out = delegate.call("ADD", self.ifname, self.stdin(call, prev, runtime_config), netns)
            prev = results.convert(
                parse_result(delegate.label, out, call.version), self.network.cni_version
            )
        assert prev is not None
        self.result = prev
        return prev

    def check(self, netns: str, runtime_config: dict[str, Any] | None) -> None:
        for call in self.calls:
            if not versions.at_least(call.version, "0.4.0"):
                continue  # CHECK does not exist before 0.4.0
            delegate = self._delegate(call)
            delegate.call(
                "CHECK", self.ifname, self.stdin(call, self.result, runtime_config), netns
            )

    def delete(self, netns: str, runtime_config: dict[str, Any] | None) -> list[CniError]:
        """DEL every plugin in reverse order, carrying on past failures; the failures."""
        failures: list[CniError] = []
        for call in reversed(self.calls):
            prev = self.result if versions.at_least(call.version, "0.4.0") else None
            try:
                delegate = self._delegate(call)
                delegate.call("DEL", self.ifname, self.stdin(call, prev, runtime_config), netns)
            except CniError as exc:
                failures.append(exc)
        return failures

    def to_record(self) -> dict[str, Any]:
        return {
            "ifName": self.ifname,
            "master": self.master,
            "network": self.network.to_dict(),
            "versions": [call.version for call in self.calls],
            "result": self.result,
            "runtimeConfig": self.network.runtime_config,
        }
