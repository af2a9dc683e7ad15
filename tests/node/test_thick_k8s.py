"""The Kubernetes-mode scenarios of tests/k8s, served in thick mode.

The same test functions, collected here, get this module's `lab`: every ADD/CHECK/DEL
goes through the C shim to a multus-node process that serves it from its watch caches
(tests/node/conftest.py). Semantics must not depend on the mode.
"""

from __future__ import annotations

import pytest

from tests.k8s.test_npwg import *  # noqa: F403
from tests.k8s.test_review import *  # noqa: F403
from tests.k8s.test_seed_objects import *  # noqa: F403
from tests.node.conftest import ThickLab


@pytest.fixture
def lab(thick_lab: ThickLab) -> ThickLab:  # after the imports: replaces test_review's
    return thick_lab
