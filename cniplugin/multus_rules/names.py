"""Names: plugin types, network names, interface names, Kubernetes names, paths.

Each rule is a function that returns why a value breaks it, or None; callers put the
field in front. Checked character by character: `re` costs ~4 ms to import on the
plugin's hot path. The `*_PATTERN` strings say the same for schemas (the CRD, pydantic);
a test holds each pattern to its function.
"""

from __future__ import annotations

import os

_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_CHARS = _ALNUM | frozenset("_.-")
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")

# The CNI spec's rule for container ids and network names (libcni ValidateNetworkName).
SAFE_NAME = "[A-Za-z0-9][A-Za-z0-9_.-]*"
SAFE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
# A plugin `type` is a file name in the plugin directories: a safe name, so never a
# path, `.`, `..`, whitespace or NUL; 253 characters at most (a file name may have 255).
PLUGIN_NAME_PATTERN = SAFE_NAME_PATTERN
MAX_PLUGIN_NAME = 253
MAX_IFNAME_BYTES = 15
MAX_LABEL = 63
MAX_SUBDOMAIN = 253


def _quote(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:80] + "...")


def is_safe_name(value: str) -> bool:
    """`[A-Za-z0-9][A-Za-z0-9_.-]*`."""
    return bool(value) and value[0] in _ALNUM and all(c in _NAME_CHARS for c in value)


def network_name_problem(value: str) -> str | None:
    """A CNI network name (a conf's `name`, the multus conf's own)."""
    if is_safe_name(value):
        return None
    return f"{_quote(value)} must match {SAFE_NAME}"


def plugin_type_problem(value: object) -> str | None:
    """A `type` or `ipam.type`: the bare name of an executable in the plugin dirs."""
    if not isinstance(value, str) or not value:
        return f"must be a non-empty plugin name, not {value!r}"
    if not is_safe_name(value):
        return (
            f"{_quote(value)} is not a plain plugin name: a letter or digit, then letters, "
            "digits, '_', '.' or '-' (no path)"
        )
    if len(value) > MAX_PLUGIN_NAME:
        return f"{_quote(value)} is {len(value)} characters long, more than {MAX_PLUGIN_NAME}"
    return None


def bare_name_problem(value: object) -> str | None:
    """Never a path: what DEL requires of a recorded `type` before it execs it. Looser
    than `plugin_type_problem` (the rule for confs), so that a rule tightened since the
    ADD never stops its DEL."""
    if not isinstance(value, str) or not value:
        return f"must be a non-empty plugin name, not {value!r}"
    if value in (".", "..") or any(c in value for c in "/\\\x00") or value != value.strip():
        return f"{_quote(value)} is not a plain plugin name (no path, '/', '\\', NUL or '..')"
    return None


def ifname_problem(name: str) -> str | None:
    """Why `name` cannot be a Linux interface name, or None when it can."""
    if not name:
        return "is empty"
    try:
        name.encode()
    except UnicodeEncodeError:  # os.environ keeps undecodable bytes as lone surrogates
        return "is not valid UTF-8"
    if len(name.encode()) > MAX_IFNAME_BYTES:
        return f"is longer than {MAX_IFNAME_BYTES} bytes"
    if name in (".", ".."):
        return "may not be '.' or '..'"
    for char in name:
        if char in "/:\x00" or char.isspace():
            return f"may not contain {char!r}"
    return None


def _is_label(text: str) -> bool:
    """`[a-z0-9]([-a-z0-9]*[a-z0-9])?`"""
    return (
        bool(text) and text[0] != "-" and text[-1] != "-" and all(c in _LABEL_CHARS for c in text)
    )


def namespace_problem(value: str) -> str | None:
    """A namespace: a DNS-1123 label."""
    if len(value) > MAX_LABEL or not _is_label(value):
        return f"namespace {_quote(value)} is not a DNS-1123 label"
    return None


def object_name_problem(value: str) -> str | None:
    """The name of a network object (or a pod): a DNS-1123 subdomain."""
    if len(value) > MAX_SUBDOMAIN or not all(_is_label(part) for part in value.split(".")):
        return f"name {_quote(value)} is not a DNS-1123 subdomain"
    return None


def absolute_path_problem(value: str) -> str | None:
    """Paths in the multus conf: the runtime's working directory means nothing."""
    if os.path.isabs(value):
        return None
    return f"{value!r} must be an absolute path"
