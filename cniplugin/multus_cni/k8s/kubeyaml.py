"""The YAML that kubeconfig files are actually written in, parsed without PyYAML.

PyYAML costs ~10 ms to import, on every pod ADD in Kubernetes mode. kubectl, kubeadm
and Multus's own installer write kubeconfigs in a small block-style subset: nested
mappings, sequences of mappings or scalars, plain or quoted one-line scalars. This
parser accepts only that subset and only values whose meaning is unambiguous (strings,
true/false, empty); on anything else it raises `Unsupported` and the caller falls back
to PyYAML. So it is either exactly what `yaml.safe_load` returns, or nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/")
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
# Plain scalars PyYAML would not read as strings (YAML 1.1 booleans, nulls), or whose
# first character starts other YAML syntax.
_NOT_STRINGS = frozenset(
    [
        "yes",
        "Yes",
        "YES",
        "no",
        "No",
        "NO",
        "on",
        "On",
        "ON",
        "off",
        "Off",
        "OFF",
        "y",
        "Y",
        "n",
        "N",
        "null",
        "Null",
        "NULL",
        "~",
        "=",
        "<<",
    ]
)
_SPECIAL_START = frozenset("-?:,[]{}#&*!|>'\"%@`+.0123456789")


class Unsupported(Exception):
    """Outside the subset: let PyYAML decide."""


def _scalar(text: str) -> Any:
    if text in ("[]", "{}"):
        return [] if text == "[]" else {}
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise Unsupported
        body = text[1:-1]
        if "\\" in body or '"' in body:
            raise Unsupported
        return body
    if text.startswith("'"):
        if len(text) < 2 or not text.endswith("'"):
            raise Unsupported
        body = text[1:-1]
        if body.replace("''", "").count("'"):
            raise Unsupported
        return body.replace("''", "'")
    if text in _BOOLS:
        return _BOOLS[text]
    if (
        text in _NOT_STRINGS
        or text[0] in _SPECIAL_START
        or ": " in text
        or text.endswith(":")
        or " #" in text
    ):
        raise Unsupported
    return text


class _Lines:
    def __init__(self, text: str) -> None:
        self.items: list[tuple[int, str]] = []
        for number, raw in enumerate(text.splitlines()):
            line = raw.rstrip()
            stripped = line.lstrip(" ")
            if not stripped or stripped.startswith("#"):
                continue
            if "\t" in line[: len(line) - len(stripped) + 1]:
                raise Unsupported
            if number == 0 and stripped == "---":
                continue
            if stripped.startswith(("---", "...", "%")):
                raise Unsupported
            self.items.append((len(line) - len(stripped), stripped))


def _is_item(content: str) -> bool:
    return content == "-" or content.startswith("- ")


def _block(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[Any, int]:
    if _is_item(lines[i][1]):
        return _sequence(lines, i, indent)
    return _mapping(lines, i, indent)


def _mapping(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while i < len(lines) and lines[i][0] == indent and not _is_item(lines[i][1]):
        content = lines[i][1]
        if content.endswith(":"):
            key, rest = content[:-1], ""
        else:
            key, sep, rest = content.partition(": ")
            if not sep:
                raise Unsupported
            rest = rest.strip()
        if (
            not key
            or not set(key) <= _KEY_CHARS
            or key in out
            or key in _BOOLS
            or key in _NOT_STRINGS
            or key[0] in _SPECIAL_START
        ):
            raise Unsupported
        i += 1
        if rest:
            out[key] = _scalar(rest)
        elif i < len(lines) and (
            lines[i][0] > indent or (lines[i][0] == indent and _is_item(lines[i][1]))
        ):
            out[key], i = _block(lines, i, lines[i][0])
        else:
            out[key] = None
    if i < len(lines) and lines[i][0] > indent:
        raise Unsupported
    return out, i


def _sequence(lines: list[tuple[int, str]], i: int, indent: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    while i < len(lines) and lines[i][0] == indent and _is_item(lines[i][1]):
        rest = lines[i][1][1:].lstrip(" ")
        if not rest:
            i += 1
            if i < len(lines) and lines[i][0] > indent:
                value, i = _block(lines, i, lines[i][0])
                out.append(value)
            else:
                out.append(None)
            continue
        column = indent + len(lines[i][1]) - len(rest)
        if _is_item(rest) or rest.endswith(":") or ": " in rest:
            if _is_item(rest):
                raise Unsupported
            # "- key: value" opens a mapping whose keys sit at the column of `key`.
            lines[i] = (column, rest)
            value, i = _mapping(lines, i, column)
            out.append(value)
        else:
            out.append(_scalar(rest))
            i += 1
    if i < len(lines) and lines[i][0] > indent:
        raise Unsupported
    return out, i


def load(text: str) -> Any:
    """The document in `text`; `Unsupported` when it is outside the subset."""
    lines = _Lines(text).items
    if not lines:
        raise Unsupported
    if lines[0][0] != 0:
        raise Unsupported
    value, end = _block(lines, 0, 0)
    if end != len(lines):
        raise Unsupported
    return value
