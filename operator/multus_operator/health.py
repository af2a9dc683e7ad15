"""Whether the API works for us: each verb on each resource, failing or not.

A request that fails for a reason that is not about one object (403, 401, 429, 5xx,
no answer) marks its verb and resource as failing until the same verb on the same
resource succeeds. While anything fails the operator is not ready, and the readiness
endpoint names the verb, the resource and the server's message (an RBAC rule missing
reads as `list configmaps: HTTP 403: configmaps is forbidden: ...`). Each failure is
logged once when it starts and once when it ends, not on every retry.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .kubeapi import ApiError

logger = logging.getLogger("multus_operator")


@dataclasses.dataclass
class Failure:
    verb: str
    resource: str
    code: int | None
    message: str
    since: float
    count: int = 1

    def __str__(self) -> str:
        where = f"HTTP {self.code}" if self.code is not None else "no answer"
        return f"{self.verb} {self.resource}: {where}: {self.message[:300]}"


class ApiHealth:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.failures: dict[tuple[str, str], Failure] = {}
        self.absent: set[str] = set()  # resources the API does not serve (CRD not installed)

    def failed(self, verb: str, resource: str, error: ApiError) -> None:
        key = (verb, resource)
        known = self.failures.get(key)
        if known is not None:
            known.count += 1
            known.code, known.message = error.code, error.message
            return
        failure = Failure(verb, resource, error.code, error.message, self._clock())
        self.failures[key] = failure
        logger.warning("API: %s; retrying with backoff, not ready until it succeeds", failure)

    def succeeded(self, verb: str, resource: str) -> None:
        failure = self.failures.pop((verb, resource), None)
        if failure is not None:
            logger.info(
                "API: %s %s works again (after %d failures in %.0f s)",
                verb,
                resource,
                failure.count,
                self._clock() - failure.since,
            )

    def not_served(self, resource: str) -> None:
        if resource not in self.absent:
            self.absent.add(resource)
            logger.warning("API: %s is not served (CRD not installed?); checking again", resource)

    def served(self, resource: str) -> None:
        if resource in self.absent:
            self.absent.discard(resource)
            logger.info("API: %s is served now", resource)

    @property
    def failing(self) -> tuple[tuple[str, str, str], ...]:
        """(verb, resource, what the API said) for each failing verb and resource."""
        return tuple((f.verb, f.resource, str(f)) for _, f in sorted(self.failures.items()))
