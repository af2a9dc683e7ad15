"""JSON for the hot path without `import json`.

`json` pulls in `re` and through it `enum`: about 5 ms of a ~25 ms plugin start,
paid on every pod ADD and DEL. The C accelerator `_json` that `json` itself uses
needs neither; this module drives it directly with the same settings `json` uses by
default (strict strings, float/int, ASCII output), and falls back to `json` where
the accelerator is missing (another Python implementation). Errors are `ValueError`,
as with `json`. Unlike `json`, NaN and Infinity are refused both ways: they are not
JSON, and the runtimes that read our output (Go's encoding/json) reject them.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"
_INF = float("inf")
# No CNI conf or result nests anywhere near this; a deeper one (untrusted input) would
# overflow the encoder's recursion when it is passed on to a delegate. Documents we
# write ourselves around a conf (attachment records) allow a few levels more.
MAX_DEPTH = 64
RECORD_DEPTH = MAX_DEPTH + 16


class TooDeep(ValueError):
    """A JSON document nested deeper than the reader allows."""


try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None  # type: ignore[assignment]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (_INF, -_INF):  # 1e400 parses as inf, which no JSON reader accepts back
        raise ValueError(f"{text} is out of the range of a JSON number")
    return value


class _Context:
    """The attributes `_json.make_scanner` reads from a JSONDecoder."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = staticmethod(_finite_float)
    parse_int = int
    parse_constant = staticmethod(_refuse_constant)


if _json is not None:
    _scan = _json.make_scanner(_Context())  # type: ignore[arg-type]
    _encode = _json.make_encoder(
        None,
        None,  # type: ignore[arg-type]
        _json.encode_basestring_ascii,
        None,
        ": ",
        ", ",
        False,
        False,
        False,
    )


def loads(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse one JSON document (bytes are UTF-8) nested at most `max_depth` levels;
    ValueError (TooDeep for the nesting) when it is not one."""
    value = _loads(data)
    _check_depth(value, max_depth)
    return value


def _check_depth(value: Any, max_depth: int) -> None:
    if not isinstance(value, dict | list):
        return
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > max_depth:
            raise TooDeep(f"is nested more than {max_depth} levels deep")
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))


def _loads(data: bytes | str) -> Any:
    if _json is None:  # pragma: no cover
        import json

        return json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float)
    text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
    if text.startswith("\ufeff"):
        raise ValueError("JSON text must not start with a byte order mark")
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as stop:
        raise ValueError(f"expecting a JSON value at character {stop.value}") from None
    except SystemError:
        # CPython 3.11's scanner raises its positioned errors through json.decoder, and
        # without that module loaded it fails with SystemError instead. Bad JSON is the
        # rare path: let `json` itself say where.
        import json

        json.loads(text)
        raise ValueError("not a valid JSON document") from None
    except RecursionError:
        # Untrusted input (a delegate's output, a cache record) may nest arbitrarily deep.
        raise TooDeep("is nested too deeply to parse") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value


def dumps(value: Any) -> str:
    """Serialize like `json.dumps(value, allow_nan=False)`."""
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(value, allow_nan=False)
    if isinstance(value, str):
        return str(_json.encode_basestring_ascii(value))
    return "".join(_encode(value, 0))


def type_name(value: Any) -> str:
    """What a parsed value is, in JSON's words, for error messages ("an array")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
