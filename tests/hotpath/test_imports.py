"""The CNI hot path stays lean: what `multus` imports per pod is measured, not hoped.

kubelet execs the plugin for every pod ADD and DEL; each of these modules costs
milliseconds at every exec (see tests/bench/bench_cycle.py for the effect).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = (
    "json",
    "re",
    "enum",
    "typing",
    "subprocess",
    "selectors",
    "threading",
    "signal",
    "copy",
    "logging",
    "dataclasses",
    "pydantic",
    "pyroute2",
    "yaml",
    "kubernetes",
    "kopf",
)


RULEBOOK = (
    "multus_rules.cnijson, multus_rules.confs, multus_rules.findings, "
    "multus_rules.interfaces, multus_rules.isolation, multus_rules.multusconf, "
    "multus_rules.names, multus_rules.objects, multus_rules.sriov, multus_rules.versions"
)


def test_rulebook_list_is_complete() -> None:
    """Every module of the rulebook is in RULEBOOK (so a new one is measured too)."""
    import multus_rules

    folder = Path(multus_rules.__file__).parent
    found = {f"multus_rules.{p.stem}" for p in folder.glob("*.py") if p.stem != "__init__"}
    assert found == {m.strip() for m in RULEBOOK.split(",")}


@pytest.mark.parametrize(
    "modules",
    [
        "multus_cni.main",
        "multus_cni.main, multus_cni.engine",
        "multus_cni.main, multus_cni.engine, multus_cni.k8s.resolve",
        RULEBOOK,
        "multus_cni.shim",
    ],
)
def test_hot_path_imports_no_heavy_module(modules: str) -> None:
    code = f"import sys; import {modules}; print('\\n'.join(sorted(m for m in sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    # -I: no PYTHON* variables or user site; what is listed is what startup and the plugin load.
    heavy = sorted(set(HEAVY) & set(loaded))
    assert heavy == [], f"the plugin's hot path imports {heavy}"


def test_sriov_delegate_hot_path_imports_no_heavy_module() -> None:
    """The sriov delegate is exec'd per pod too: pyroute2 (~135 ms) only on real hardware."""
    code = (
        "import sys; import multus_sriov.main, multus_sriov.delegate, multus_sriov.rtnl; "
        "print('\\n'.join(sorted(m for m in sys.modules)))"
    )
    loaded = subprocess.run(
        [sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    heavy = sorted(set(HEAVY) - {"json"} & set(loaded))
    assert heavy == [], f"the sriov delegate's hot path imports {heavy}"
