"""Spec versions: parsing, ordering and negotiation with a plugin's VERSION answer."""

from __future__ import annotations

import pytest

from multus_cni import versions


@pytest.mark.parametrize(
    ("text", "parsed"), [("0.3.1", (0, 3, 1)), ("1.0.0", (1, 0, 0)), ("10.20.30", (10, 20, 30))]
)
def test_parse(text: str, parsed: tuple[int, int, int]) -> None:
    assert versions.parse(text) == parsed


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "1",
        "1.0",
        "1.0.0.0",
        "v1.0.0",
        "1.0.x",
        "1..0",
        " 1.0.0",
        "1.0.-1",
        "1.0.00000",
        "\u0661.0.0",  # an Arabic-Indic digit one
        "\u00b2.0.0",
    ],
)
def test_parse_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        versions.parse(bad)


def test_ordering_is_numeric_not_lexical() -> None:
    assert versions.at_least("0.10.0", "0.4.0")
    assert versions.at_least("1.0.0", "0.4.0")
    assert not versions.at_least("0.3.1", "0.4.0")


@pytest.mark.parametrize(
    ("wanted", "offered", "chosen"),
    [
        ("1.1.0", ["0.3.0", "0.3.1", "0.4.0", "1.0.0"], "1.0.0"),  # Debian's plugins
        ("1.0.0", ["0.4.0", "1.0.0", "1.1.0"], "1.0.0"),
        ("0.4.0", ["1.0.0", "1.1.0"], None),  # nothing old enough
        ("1.0.0", ["0.1.0", "0.2.0"], None),  # too old to convert from
        ("1.0.0", ["0.2.0", "0.3.0"], "0.3.0"),
        ("1.0.0", [], None),
        ("1.0.0", ["junk", "1.0", "0.4.0", ""], "0.4.0"),
        ("1.1.0", ["0.4.0", "0.10.0"], "0.10.0"),
        ("0.3.1", ["0.3.1"], "0.3.1"),
    ],
)
def test_negotiate(wanted: str, offered: list[str], chosen: str | None) -> None:
    assert versions.negotiate(wanted, offered) == chosen
    assert versions.negotiate(wanted, tuple(offered)) == chosen


def test_supported() -> None:
    assert versions.LATEST == "1.1.0"
    assert all(versions.is_supported(v) for v in versions.SUPPORTED_VERSIONS)
    assert not versions.is_supported("0.2.0") and not versions.is_supported("1.0")
