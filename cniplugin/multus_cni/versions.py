"""CNI spec versions: which we speak (the rulebook's) and how to pick one both sides
understand."""

from __future__ import annotations

from multus_rules.versions import (
    DEFAULT_VERSION,
    LATEST,
    SUPPORTED_VERSIONS,
    is_supported,
    parse,
)

__all__ = [
    "DEFAULT_VERSION",
    "LATEST",
    "SUPPORTED_VERSIONS",
    "at_least",
    "is_supported",
    "negotiate",
    "parse",
    "version_answer",
]


def version_answer() -> dict[str, object]:
    """What a plugin of ours prints for VERSION."""
    return {"cniVersion": LATEST, "supportedVersions": list(SUPPORTED_VERSIONS)}


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)


def negotiate(wanted: str, offered: list[str] | tuple[str, ...]) -> str | None:
    """The highest version a plugin offers that is no newer than `wanted` and that we
    can convert results from (0.3.0 or later); None when there is none."""
    best: tuple[int, int, int] | None = None
    choice: str | None = None
    ceiling = parse(wanted)
    for version in offered:
        try:
            parsed = parse(version)
        except ValueError:
            continue
        if parsed > ceiling or parsed < (0, 3, 0):
            continue
        if best is None or parsed > best:
            best, choice = parsed, version
    return choice
