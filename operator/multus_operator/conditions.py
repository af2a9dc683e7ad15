"""Status conditions per the Kubernetes API conventions (metav1.Condition).

`lastTransitionTime` moves only when `status` flips; reason, message and
observedGeneration may change without a transition. Equal inputs give an equal
list, so the caller can skip the write.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class Wanted:
    type: str
    status: str  # "True" | "False" | "Unknown"
    reason: str
    message: str


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(
    current: Sequence[dict[str, Any]] | None,
    wanted: Sequence[Wanted],
    generation: int | None,
    now: str,
) -> list[dict[str, Any]]:
    """The conditions to store; conditions of other types are kept as they are."""
    old = {c.get("type"): c for c in (current or []) if isinstance(c, dict)}
    result: list[dict[str, Any]] = []
    for want in wanted:
        before = old.pop(want.type, None)
        same = before is not None and before.get("status") == want.status
        since = before.get("lastTransitionTime") if same and before is not None else None
        cond: dict[str, Any] = {
            "type": want.type,
            "status": want.status,
            "reason": want.reason,
            "message": want.message,
            "lastTransitionTime": since or now,
        }
        if generation is not None:
            cond["observedGeneration"] = generation
        result.append(cond)
    result.extend(old.values())
    return result


def transitioned(
    current: Sequence[dict[str, Any]] | None, merged: Sequence[dict[str, Any]], kind: str
) -> bool:
    """Whether condition `kind` changed status (or appeared) between two lists."""
    before = next((c for c in current or [] if c.get("type") == kind), None)
    after = next((c for c in merged if c.get("type") == kind), None)
    if after is None:
        return False
    return before is None or before.get("status") != after.get("status")
