"""A read-only snapshot of the operator, for the readiness probe and the metrics.

Both read this and nothing else, so neither reaches into the operator's internals and
both say the same thing. Ready means: every watch has listed at least once, no verb
on any resource is failing (an RBAC rule missing, the API refusing or not answering),
and the webhook, if configured, is serving. Being the leader or not does not matter:
a standby is ready to take over.
"""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class OperatorView:
    synced: bool
    leading: bool | None  # None: no leader election
    api_failing: tuple[tuple[str, str, str], ...]  # verb, resource, "verb resource: HTTP 403: ..."
    not_served: tuple[str, ...]  # resources the API does not serve (CRD not installed)
    webhook: str | None  # None: no webhook; "serving" or why not
    settings: dict[str, str]  # the SettingsValid condition: status, reason, message
    nodes: int
    networks_valid: int
    networks_invalid: int
    nad_validity: str  # "status" (the CRD has /status) or "annotation"
    oversized: dict[str, int]
    retrying: int
    passes: int
    last_pass_seconds: float
    writes: dict[str, int]  # "verb resource" -> count
    api_errors: dict[tuple[str, str, str], int]  # (verb, resource, code) -> count
    reviews: dict[tuple[str, bool], int]  # (path, allowed) -> count

    @property
    def reasons(self) -> list[str]:
        """Why not ready; empty when ready."""
        found = [] if self.synced else ["watches have not listed everything yet"]
        found += [text for _, _, text in self.api_failing]
        if self.webhook not in (None, "serving"):
            found.append(f"webhook: {self.webhook}")
        return found

    @property
    def ready(self) -> bool:
        return not self.reasons

    def readiness(self) -> dict[str, Any]:
        """The body of /readyz."""
        return {
            "ready": self.ready,
            "reasons": self.reasons,
            "leading": self.leading,
            "settings": self.settings,
            "notServed": list(self.not_served),
            "oversizedNodes": sorted(self.oversized),
            "retrying": self.retrying,
            "nadValidity": self.nad_validity,
        }
