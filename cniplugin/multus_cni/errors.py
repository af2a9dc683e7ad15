"""The CNI error tree: every failure path ends in one of these, with the spec's code.

    CniError (999, internal)
    ├── IncompatibleVersion (1)
    ├── ContainerUnknown (3)
    ├── InvalidEnvironment (4)
    ├── IoFailure (5)
    ├── DecodeFailure (6)
    ├── InvalidConfig (7)
    │   └── PluginMissing (7: no such plugin where the conf's delegates are looked for)
    ├── InvalidNetns (8)
    ├── TryAgainLater (11)
    ├── PluginUnavailable (50)
    └── DelegateError (the delegate's own code, passed on)

Messages name the object and the field; `details` carries what helps debugging
(a delegate's stderr, the offending value) without bloating the message.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from multus_rules.findings import Finding


class CniError(Exception):
    """A CNI failure that is reported to the runtime as `{cniVersion, code, msg, details}`."""

    code: int = 999

    def __init__(self, msg: str, details: str = "", *, code: int | None = None) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details
        if code is not None:
            self.code = code

    def to_dict(self, cni_version: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            doc["details"] = self.details
        return doc


class IncompatibleVersion(CniError):
    code = 1


class ContainerUnknown(CniError):
    code = 3


class InvalidEnvironment(CniError):
    code = 4


class IoFailure(CniError):
    code = 5


class DecodeFailure(CniError):
    code = 6


class InvalidConfig(CniError):
    code = 7


class PluginMissing(InvalidConfig):
    """A delegate's plugin is not installed (at ADD a conf error; at STATUS: not ready)."""


class InvalidNetns(CniError):
    code = 8


class TryAgainLater(CniError):
    code = 11


class PluginUnavailable(CniError):
    code = 50


class DelegateError(CniError):
    """A delegate plugin failed; its own error code is kept (never flattened to 999).

    `reason` is the delegate's own message, without our prefix naming it and the
    command: DEL compares it with the ADD failure (see `records.harmless`)."""

    def __init__(self, msg: str, details: str = "", *, code: int, reason: str) -> None:
        super().__init__(msg, details, code=code)
        self.reason = reason


def refusal(finding: Finding, context: str = "") -> CniError:
    """The CNI error for a rule the input breaks: the rulebook's finding (its field and
    why, after `context`, e.g. `NetworkAttachmentDefinition ns/name: `), with its code."""
    kind = {1: IncompatibleVersion, 4: InvalidEnvironment}.get(finding.code, InvalidConfig)
    text = str(finding)
    if context and finding.path.rstrip(": "):
        return kind(f"{context}{text}")
    return kind(f"{context.rstrip(': .')}: {text}" if context else text)
