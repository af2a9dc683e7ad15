"""Admission: the verdict on one AdmissionReview, by the same checks as the conditions.

Pure (no I/O): the webhook server (`webhook.py`) hands each review here and sends the
answer back. A refusal carries the message the object's Valid condition would carry.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from . import validation

ADMITTED = ("CREATE", "UPDATE")  # the operations the webhook judges
# The webhook's paths, one per kind (the configuration names them; see webhookconfig.py).
PATHS = {"/validate-network": "Network", "/validate-nad": "NetworkAttachmentDefinition"}


@dataclasses.dataclass(frozen=True)
class Verdict:
    allowed: bool
    message: str = ""
    warnings: tuple[str, ...] = ()


def judge(operation: str | None, body: Any, old: Any) -> Verdict:
    """Refuse an invalid object with the message its Valid condition would carry.

    Only what a request changes is judged. A DELETE, or an UPDATE that leaves the
    checked content as it was (labels, finalizers, status), passes even for an object
    that is invalid already (created before the webhook or under older rules): it can
    always be cleaned up, and never holds up the deletion of its namespace. (The
    configuration's matchConditions keep those updates from reaching us at all; this
    holds where a cluster predates matchConditions or the webhook was set up by hand.)
    """
    if operation not in ADMITTED or not isinstance(body, dict):
        return Verdict(True)
    if (
        operation == "UPDATE"
        and isinstance(old, dict)
        and validation.checked_content(old) == validation.checked_content(body)
    ):
        return Verdict(True)
    report = validation.validate_object(body)
    warnings = tuple(str(p) for p in report.warnings)
    if not report.valid:
        return Verdict(False, report.summary(), warnings)
    return Verdict(True, "", warnings)


def review_response(review: Any) -> dict[str, Any]:
    """The AdmissionReview to answer `review` with."""
    review = review if isinstance(review, dict) else {}
    request = review.get("request") if isinstance(review.get("request"), dict) else {}
    verdict = judge(request.get("operation"), request.get("object"), request.get("oldObject"))
    response: dict[str, Any] = {"uid": request.get("uid", ""), "allowed": verdict.allowed}
    if verdict.warnings:
        response["warnings"] = list(verdict.warnings)
    if not verdict.allowed:
        response["status"] = {
            "status": "Failure",
            "code": 422,
            "reason": "Invalid",
            "message": verdict.message,
        }
    return {
        "apiVersion": review.get("apiVersion") or "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    }
