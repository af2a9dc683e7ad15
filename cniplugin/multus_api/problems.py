"""Problems found in user objects, each tied to the field that holds it.

Every check in the product (CRD schema, the rulebook, pydantic models, semantic rules)
reports `Problem`s, so the operator's status message, the webhook's refusal and
`multusctl validate` all say the same thing: `args[0].ipam.rangeStart: ...`.

Errors are what the API server or the plugin refuses; what only a delegate plugin can
judge (its own keys, IPAM ranges) is a warning.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

from pydantic import ValidationError

from multus_rules.findings import Finding, join


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclasses.dataclass(frozen=True)
class Problem:
    """One finding: `path` is a JSONPath-like field path (`args[0].ipam.subnet`)."""

    path: str
    message: str
    severity: Severity = Severity.ERROR

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


join_path = join  # the rulebook's: paths read the same in the plugin's messages


def from_findings(findings: Sequence[Finding]) -> list[Problem]:
    """The rulebook's findings as problems: its errors are what the plugin refuses."""
    return [
        Problem(f.path, f.message, Severity.WARNING if f.warning else Severity.ERROR)
        for f in findings
    ]


def as_warnings(problems: Sequence[Problem]) -> list[Problem]:
    """Problems only the delegate plugin can act on (it refuses at ADD, after multus has
    accepted the network): they warn, they do not make the object Invalid."""
    return [dataclasses.replace(p, severity=Severity.WARNING) for p in problems]


def from_validation_error(
    exc: ValidationError, base: str, *, unknown_field: str = "unknown field"
) -> list[Problem]:
    """Translate pydantic's errors into problems rooted at `base`."""
    found: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc: Sequence[str | int] = [p for p in err["loc"] if isinstance(p, str | int)]
        path = join_path(base, *loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            message = unknown_field
        elif kind == "missing":
            message = "required field is missing"
        else:
            message = _lower_first(str(err["msg"]))
            if kind.startswith("value_error"):
                message = message.removeprefix("value error, ")
            value = err.get("input")
            if kind not in ("value_error",) and isinstance(value, str | int | float | bool):
                message = f"{message} (got {value!r})"
        found.append(Problem(path, message))
    return found


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]
