"""What each plugin call of an attachment did, and what its DEL may drop.

Each plugin call of a record is in one state, written with the record (atomically)
before the call is exec'd, so a `kill -9` at any point leaves a record that says
exactly which calls can hold something:

    pending    never exec'd: holds nothing, gets no DEL
    started    exec'd, outcome unknown (multus was killed or timed out waiting)
    succeeded  its ADD returned a result: holds what the result says
    failed     its ADD returned an error (kept in `error`: code and the plugin's message)
    deleted    its DEL succeeded, or failed harmlessly: holds nothing

"Already gone" (the README's DEL section says the same): a call is done with once its
DEL exits 0. A call whose ADD failed is also done with when its ADD was refused
cleanly (codes 1, 2, 4, 6, 7: the plugin judged its input before acting) or when its
DEL fails with the very code and message its ADD failed with: the plugin rejects the
conf it is given (the reference plugins check their conf with code 999, before any side
effect, on ADD and DEL alike), so it never got to allocate anything. Every other DEL
failure of a started, succeeded or failed call keeps the record and fails the DEL,
naming the delegate and what it may hold.
"""

from __future__ import annotations

from .errors import CniError, DelegateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PENDING = "pending"
STARTED = "started"
SUCCEEDED = "succeeded"
FAILED = "failed"
DELETED = "deleted"
STATES = (PENDING, STARTED, SUCCEEDED, FAILED, DELETED)
# Codes with which a plugin refuses its input before doing anything (CNI spec).
REFUSAL_CODES = frozenset({1, 2, 4, 6, 7})


def add_error(exc: CniError) -> dict[str, Any]:
    """What the record keeps of a failed ADD: its code and the plugin's own message
    (none when the failure was ours: a timeout, garbage output, an exec error)."""
    reason = exc.reason if isinstance(exc, DelegateError) else None
    return {"code": exc.code, "msg": exc.msg, "reason": reason}


def harmless(state: str, error: dict[str, Any] | None, failure: CniError) -> bool:
    """Whether a failed DEL of a call in `state` may be dropped (see the module doc)."""
    if state != FAILED or not isinstance(error, dict):
        return False
    if error.get("reason") is None:
        return False  # we killed it, or it printed no CNI error: it may hold anything
    if error.get("code") in REFUSAL_CODES:
        return True
    return (
        isinstance(failure, DelegateError)
        and failure.code == error.get("code")
        and failure.reason == error.get("reason")
    )


def holdings(result: dict[str, Any] | None, ifname: str, state: str) -> str:
    """What a call that cannot be DEL'd may still hold, for the error message."""
    if state == STARTED:
        return "its ADD was interrupted: it may hold a lease or a link"
    if state == FAILED:
        return "its ADD failed part-way: it may hold a lease or a link"
    held: list[str] = []
    if isinstance(result, dict):
        for ip in result.get("ips") or []:
            if isinstance(ip, dict) and ip.get("address"):
                held.append(str(ip["address"]))
        for iface in result.get("interfaces") or []:
            if isinstance(iface, dict) and iface.get("name"):
                held.append(f"interface {iface['name']}")
    if not held:
        return f"it may hold what it set up for {ifname}"
    return "it may hold " + ", ".join(dict.fromkeys(held))
