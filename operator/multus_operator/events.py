"""Kubernetes Events the operator posts: on transitions only, never per watch event."""

from __future__ import annotations

import logging
import time
from typing import Any

from . import conditions
from .kubeapi import ApiError, KubeApi
from .resources import EVENTS

logger = logging.getLogger("multus_operator")
COMPONENT = "multus-operator"
MAX_MESSAGE = 1024


def event_name(involved_name: str) -> str:
    """`<object>.<hex>`; a name of up to 253 chars leaves no room for the suffix, so the
    object part is cut (the API would refuse every Event about it)."""
    return f"{involved_name[:236].rstrip('-.')}.{time.time_ns():x}"


class EventPoster:
    def __init__(self, api: KubeApi, namespace: str) -> None:
        self.api = api
        self.namespace = namespace  # where Events about cluster-scoped objects go

    async def post(self, involved: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """Post one Event; a refusal is logged, never raised (an Event is not worth
        failing a write for)."""
        namespace = involved.get("namespace") or self.namespace
        stamp = conditions.now_rfc3339()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name(str(involved["name"])), "namespace": namespace},
            "involvedObject": involved,
            "type": kind,
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            await self.api.create(EVENTS, body, namespace=namespace)
        except ApiError as exc:
            logger.debug("could not post event %s about %s: %s", reason, involved["name"], exc)
