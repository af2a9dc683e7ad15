"""cnijson must agree with the standard `json` module on every document."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multus_cni import cnijson

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
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
        expected: Any = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            cnijson.loads(text)
        return
    got = cnijson.loads(text)
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(got)
    else:
        assert json.dumps(got) == json.dumps(expected)


@pytest.mark.parametrize(
    "bad", ["", "   ", "{", "[1,]", "{} {}", "nul", '"\x01"', "\ufeff{}", "[1] x", "{'a': 1}"]
)
def test_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        cnijson.loads(bad)


def test_invalid_utf8_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        cnijson.loads(b'{"a": "\xff"}')


def test_constants_as_json_reads_them() -> None:
    doc = cnijson.loads("[NaN, Infinity, -Infinity]")
    assert math.isnan(doc[0]) and doc[1] == math.inf and doc[2] == -math.inf
