"""Fixtures for the sriov delegate: a node netns (prefix `msr`) holding a simulated NIC,
the delegate found through CNI_PATH (.venv/bin), the invariants checked after a pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sriov.rig import FakeNic, seed_nic
from tests.support.cni import CNI_PLUGINS, VENV_BIN
from tests.support.lab import PASSED, Node, checked_node, missing_prerequisites, record_outcome

PREFIX = "msr"
CNI_PATH = f"{CNI_PLUGINS}:{VENV_BIN}"

pytest_runtest_makereport = record_outcome


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/sriov/" in str(item.path) and "nic" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="session")
def _prerequisites() -> None:
    problem = missing_prerequisites()
    if problem:
        pytest.fail(f"SR-IOV tests cannot run: {problem}", pytrace=False)


@pytest.fixture
def node(request: pytest.FixtureRequest, tmp_path: Path, _prerequisites: None) -> Iterator[Node]:
    with checked_node(PREFIX, tmp_path, request) as lab:
        lab.cni_path = CNI_PATH
        yield lab


@pytest.fixture
def nic(node: Node, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[FakeNic]:
    """The seed's two NICs: enp12s0f1 (4 kernel VFs) and enp2s0 (2 kernel VFs, 1 DPDK)."""
    fake = seed_nic(tmp_path / "nic", node)
    yield fake
    if request.node.stash.get(PASSED, False):
        assert fake.records() == [], f"allocation records left: {fake.records()}"
