"""CNI spec versions: which we speak and how to pick one both sides understand."""

from __future__ import annotations

SUPPORTED_VERSIONS: tuple[str, ...] = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = SUPPORTED_VERSIONS[-1]
# The seed's confs carry no cniVersion; Multus v2.1 shipped against spec 0.3.1.
DEFAULT_VERSION = "0.3.1"


def version_answer() -> dict[str, object]:
    """What a plugin of ours prints for VERSION."""
    return {"cniVersion": LATEST, "supportedVersions": list(SUPPORTED_VERSIONS)}


def parse(version: str) -> tuple[int, int, int]:
    """`"1.0.0"` -> `(1, 0, 0)`; raises ValueError on anything else."""
    parts = version.split(".")
    # isascii: str.isdigit() also accepts other scripts' digits and superscripts
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 4 for p in parts):
        raise ValueError(f"not a CNI version: {version!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)


def is_supported(version: str) -> bool:
    return version in SUPPORTED_VERSIONS


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
