"""Fixtures for the DEL-convergence tests (issue "DEL always converges"): a node netns
with the Debian plugins, the "nothing lost" invariants checked after each passing test
(no lease, record, lock or temp file, no stray link)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.lab import Node, checked_node, missing_prerequisites, record_outcome

PREFIX = "mic"

pytest_runtest_makereport = record_outcome


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/converge/" in str(item.path):
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="session", autouse=True)
def _prerequisites() -> None:
    problem = missing_prerequisites("unshare", "mount")
    if problem:
        pytest.fail(f"convergence tests cannot run: {problem}", pytrace=False)


@pytest.fixture
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Node]:
    with checked_node(PREFIX, tmp_path, request) as lab:
        yield lab
