"""cnijson must agree with the standard `json` module on every document."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multus_cni import cnijson

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
documents = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(documents)
def test_round_trip_matches_json(doc: Any) -> None:
    text = json.dumps(doc)
    assert cnijson.dumps(doc) == text
    assert json.dumps(cnijson.loads(text)) == text
    assert json.dumps(cnijson.loads(text.encode())) == text


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_accepts_exactly_what_json_accepts(text: str) -> None:
    try:
        expected: Any = json.loads(text, parse_constant=refuse, parse_float=finite)
    except ValueError:
        with pytest.raises(ValueError):
            cnijson.loads(text)
        return
    assert json.dumps(cnijson.loads(text)) == json.dumps(expected)


@pytest.mark.parametrize(
    "bad", ["", "   ", "{", "[1,]", "{} {}", "nul", '"\x01"', "\ufeff{}", "[1] x", "{'a': 1}"]
)
def test_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        cnijson.loads(bad)


def test_invalid_utf8_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        cnijson.loads(b'{"a": "\xff"}')


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", '{"a": [NaN]}'])
def test_refuses_nan_and_infinity_which_go_runtimes_reject(constant: str) -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        cnijson.loads(constant)


@pytest.mark.parametrize("number", ["1e400", "-1e400", '{"mtu": 1.5e309}'])
def test_refuses_numbers_that_would_print_as_infinity(number: str) -> None:
    with pytest.raises(ValueError, match="out of the range"):
        cnijson.loads(number)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"mtu": [math.inf]}])
def test_will_not_print_nan_or_infinity(value: Any) -> None:
    with pytest.raises(ValueError):
        cnijson.dumps(value)


def test_bad_json_error_names_the_position() -> None:
    with pytest.raises(ValueError, match=r"char(acter)? 6"):
        cnijson.loads('{"a": }')


def refuse(name: str) -> Any:
    raise ValueError(name)


def finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(text)
    return value
