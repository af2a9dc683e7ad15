"""What a rule reports: the field it is about and what is wrong with it.

The plugin turns the first error into a CNI error with the finding's `code` (7,
invalid config; 1, incompatible version); the operator shows every finding, errors in
the Valid condition, warnings after them. Both print `<path>: <message>`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

INVALID_CONFIG = 7
INCOMPATIBLE_VERSION = 1


class Finding:
    """One problem: `path` is a field path (`spec.config.ipam.type`, `delegates[1]`)."""

    __slots__ = ("code", "message", "path", "warning")

    def __init__(
        self, path: str, message: str, *, code: int = INVALID_CONFIG, warning: bool = False
    ) -> None:
        self.path = path
        self.message = message
        self.code = code
        self.warning = warning

    def __str__(self) -> str:
        # A path may start with a context ("Network ns/name: args[0]") or be only one
        # ("/etc/cni/net.d/10-x.conf: "): never print ": :".
        path = self.path.rstrip(": ")
        return f"{path}: {self.message}" if path else self.message

    def __repr__(self) -> str:
        kind = "warning" if self.warning else f"error {self.code}"
        return f"Finding({str(self)!r}, {kind})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Finding):
            return NotImplemented
        return (self.path, self.message, self.code, self.warning) == (
            other.path,
            other.message,
            other.code,
            other.warning,
        )

    def __hash__(self) -> int:
        return hash((self.path, self.message, self.code, self.warning))


class RuleError(Exception):
    """A rule that computes something (interface names, a seed Network's conf) could
    not: `finding` says which field and why."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(str(finding))
        self.finding = finding


def join(base: str, *parts: str | int) -> str:
    """Append keys (`.key`) and list indexes (`[3]`) to a field path. A base that ends
    in ": " is a context (a file, an object), not a field: keys follow it directly."""
    path = base
    for part in parts:
        if isinstance(part, int):
            path = f"{path}[{part}]"
        elif path and not path.endswith(": "):
            path = f"{path}.{part}"
        else:
            path = f"{path}{part}"
    return path


def first_error(findings: Iterable[Finding]) -> Finding | None:
    """The finding the plugin refuses with: the first that is not a warning."""
    return next((f for f in findings if not f.warning), None)
