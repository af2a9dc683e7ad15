"""The CNI spec versions the plugin speaks, and the rule for a conf's `cniVersion`."""

from __future__ import annotations

from .findings import INCOMPATIBLE_VERSION, INVALID_CONFIG

SUPPORTED_VERSIONS: tuple[str, ...] = ("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = SUPPORTED_VERSIONS[-1]
# The seed's confs carry no cniVersion; Multus v2.1 shipped against spec 0.3.1.
DEFAULT_VERSION = "0.3.1"


def parse(version: str) -> tuple[int, int, int]:
    """`"1.0.0"` -> `(1, 0, 0)`; raises ValueError on anything else."""
    parts = version.split(".")
    # isascii: str.isdigit() also accepts other scripts' digits and superscripts
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and len(p) <= 4 for p in parts):
        raise ValueError(f"not a CNI version: {version!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def is_supported(version: str) -> bool:
    return version in SUPPORTED_VERSIONS


def version_problem(value: object) -> tuple[int, str] | None:
    """(CNI error code, why) when `value` is no `cniVersion` we can serve, else None."""
    if not isinstance(value, str):
        return INVALID_CONFIG, f"must be a string, not {value!r}"
    if not is_supported(value):
        return (
            INCOMPATIBLE_VERSION,
            f"{value!r} is not supported (supported: {', '.join(SUPPORTED_VERSIONS)})",
        )
    return None
