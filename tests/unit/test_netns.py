"""Which CNI_NETNS paths reach delegates: a pod's network namespace only (ADD refuses
anything else with code 8; DEL then calls its delegates without CNI_NETNS)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

from multus_cni.errors import InvalidNetns
from multus_cni.netns import check_netns, netns_for_del, netns_problem


@pytest.fixture
def pod_netns() -> str:
    name = f"miu-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield f"/var/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_a_pods_network_namespace_is_accepted(pod_netns: str) -> None:
    assert netns_problem(pod_netns) is None
    check_netns(pod_netns)
    assert netns_for_del(pod_netns) == pod_netns


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda tmp: str(tmp / "gone"), "cannot be opened"),
        (lambda tmp: (tmp / "file").touch() or str(tmp / "file"), "is not a namespace"),
        (lambda tmp: str(tmp), "is not a namespace"),
        (lambda tmp: "/proc/self/ns/net", "own \\(host\\)"),
        (lambda tmp: "/proc/self/ns/mnt", "not a network namespace"),
        (lambda tmp: "/dev/null", "is not a namespace"),
    ],
    ids=["missing", "plain-file", "directory", "own", "mount-ns", "device"],
)
def test_anything_else_is_refused_for_add_and_withheld_on_del(
    tmp_path: Path, make: object, why: str
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(InvalidNetns, match=why) as info:
        check_netns(path)
    assert info.value.code == 8
    assert netns_for_del(path) == ""


def test_an_unmounted_netns_left_as_an_empty_file_is_no_netns(tmp_path: Path) -> None:
    """What a runtime leaves when it unmounts the netns but not the path."""
    path = tmp_path / "cni-1234"
    path.touch()
    subprocess.run(["unshare", "--net=" + str(path), "true"], check=True)
    assert netns_problem(str(path)) is None  # bind-mounted: a netns
    subprocess.run(["umount", str(path)], check=True)
    assert path.exists()
    assert "is not a namespace" in (netns_problem(str(path)) or "")


def test_del_hands_on_nothing_but_a_pods_netns(pod_netns: str, tmp_path: Path) -> None:
    assert netns_for_del("") == ""
    assert netns_for_del(pod_netns) == pod_netns
    assert netns_for_del(str(tmp_path / "gone")) == ""
    assert netns_for_del("/proc/self/ns/net") == ""
    assert os.path.exists(pod_netns)
