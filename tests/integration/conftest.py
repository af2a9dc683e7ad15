"""Fixtures for the real-plugin tests: a node netns per test, its own cache and lease
directories, and the "nothing lost" invariants checked once the test has passed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.lab import Canary, Node, checked_node, missing_prerequisites, record_outcome

PREFIX = "mia"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.root)


pytest_runtest_makereport = record_outcome


@pytest.fixture(scope="session", autouse=True)
def _prerequisites() -> None:
    problem = missing_prerequisites()
    if problem:
        pytest.fail(f"integration tests cannot run: {problem}", pytrace=False)


@pytest.fixture
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Node]:
    """The node for one test; after a passing test, every pod is deleted and the node
    must be as it started: no lease, no cache record, lock or temp file, no stray link."""
    with checked_node(PREFIX, tmp_path, request) as lab:
        yield lab


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    """A plugin binary outside every plugin directory; no conf may make it run."""
    return Canary.install(tmp_path / "outside")
