"""Fixtures for the real-plugin tests: a node netns per test, its own cache and lease
directories, and the "nothing lost" invariants checked once the test has passed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.support.cni import CNI_PLUGINS, MULTUS, host_links
from tests.support.lab import Canary, Node

PREFIX = "mia"


def _missing_prerequisites() -> str:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not os.path.exists(os.path.join(CNI_PLUGINS, "bridge")):
        return f"needs Debian's containernetworking-plugins in {CNI_PLUGINS}"
    if not shutil.which("ip"):
        return "needs iproute2"
    if not os.path.exists(MULTUS):
        return f"needs the multus console script at {MULTUS}"
    return ""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.root)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_PASSED] = report.passed
    return report


_PASSED = pytest.StashKey[bool]()


@pytest.fixture(scope="session", autouse=True)
def _prerequisites() -> None:
    problem = _missing_prerequisites()
    if problem:
        pytest.fail(f"integration tests cannot run: {problem}", pytrace=False)


@pytest.fixture
def node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Node]:
    """The node for one test; after a passing test, every pod is deleted and the node
    must be as it started: no lease, no cache record, lock or temp file, no stray link."""
    machine_links = {n for n in host_links() if n.startswith(PREFIX)}
    with Node.create(PREFIX, tmp_path) as lab:
        yield lab
        if request.node.stash.get(_PASSED, False):
            for pod in list(lab.pods):
                lab.delete_pod(f"/var/run/netns/{pod}")
            problems = lab.problems(settle=5)
            leaked = {n for n in host_links() if n.startswith(PREFIX)} - machine_links
            if leaked:
                problems.append(f"links on the machine's own netns: {sorted(leaked)}")
            assert not problems, "invariants broken after the test: " + "; ".join(problems)


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    """A plugin binary outside every plugin directory; no conf may make it run."""
    return Canary.install(tmp_path / "outside")
