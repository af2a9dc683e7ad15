"""A `type` or `ipam.type` is a plugin name, never a path: every way of smuggling in
another binary is an invalid-config error before anything runs, and the canary (a
binary that records each run) proves nothing did."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.lab import Canary, Node, bridge_delegate

BAD_TYPES = {
    "relative-path": "../outside/canary",
    "absolute-path": "",  # filled in with the canary's absolute path
    "nul": "canary\u0000",
    "dot": ".",
    "empty": "",
    "directory": "plugindir",
    "not-executable": "canary-noexec",
    "symlink-out-of-path": "canary-link",
}


@pytest.fixture
def plugin_dir(tmp_path: Path, canary: Canary) -> Path:
    """A plugin dir on CNI_PATH holding the traps: a directory, a non-executable copy
    of the canary, and a symlink leading out of the plugin dirs to the canary."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "plugindir").mkdir(mode=0o755)
    noexec = bindir / "canary-noexec"
    shutil.copy(canary.path, noexec)
    noexec.chmod(0o644)
    (bindir / "canary-link").symlink_to(canary.path)
    return bindir


def bad_value(case: str, canary: Canary) -> str:
    return str(canary.path) if case == "absolute-path" else BAD_TYPES[case]


@pytest.mark.parametrize("field", ["type", "ipam.type"])
@pytest.mark.parametrize("case", list(BAD_TYPES))
def test_bad_plugin_type_never_runs_anything(
    node: Node, canary: Canary, plugin_dir: Path, case: str, field: str
) -> None:
    bridge = node.add_bridge("miacni0")
    bad: dict[str, Any] = bridge_delegate(node, "miacni1", "10.201.1.0/24", name="mia-bad")
    if field == "type":
        bad["type"] = bad_value(case, canary)
    else:
        bad["ipam"]["type"] = bad_value(case, canary)
    conf = node.conf(
        [bridge_delegate(node, bridge, "10.201.0.0/24", isDefaultGateway=True), bad],
        cniVersion="1.0.0",
    )
    pod = node.add_pod("mia")
    add = node.run(
        "ADD", conf, container_id="badpod", netns=pod, cni_path=f"{node.cni_path}:{plugin_dir}"
    )
    assert not canary.ran, f"the canary ran: {canary.marker.read_text()!r}"
    assert add.rc != 0, add.stdout
    error = add.doc
    assert error["code"] == 7, error
    assert f"delegates[1].{field}" in error["msg"], error
    assert node.pod_links(pod) == {"lo"}
    assert not node.data_dir.exists(), "a delegate allocated an address"
    assert node.problems() == []
