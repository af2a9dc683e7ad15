"""The agreement tests exec `multus` in a pod netns (root) against the API emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rules.agreement import Bench, bench
from tests.support.lab import missing_prerequisites


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/rules/" in str(item.path) and "agree" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="module")
def agree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    """One bench per module: a pod netns, fakes, the emulator (started once: the
    property test runs many examples against it)."""
    problem = missing_prerequisites()
    if problem:
        pytest.fail(f"the agreement tests cannot run: {problem}", pytrace=False)
    root: Path = tmp_path_factory.mktemp("mrb")
    with bench(root) as made:
        yield made
        made.assert_clean()
