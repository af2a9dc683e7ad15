"""multusctl validate / render / explain on files, as a CI pipeline would run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from multusctl.main import main
from tests.operator.broken import BROKEN, EXAMPLES, SEED_NETWORKS


def _write(tmp_path: Path, name: str, body: object) -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body))
    return str(path)


def test_validate_seed_examples_exit_zero(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(EXAMPLES / n) for n in (*SEED_NETWORKS, "pod-multi-network.yaml")]
    assert main(["validate", *files]) == 0
    out = capsys.readouterr().out
    assert "Network/sriov-conf: valid" in out
    assert "Pod/multus-multi-net-poc: skipped" in out


def test_validate_broken_exits_one_with_the_operators_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    obj, message = BROKEN["range-outside"]
    path = _write(tmp_path, "bad.yaml", obj)
    assert main(["validate", str(EXAMPLES / "flannel-conf.yaml"), path]) == 1
    out = capsys.readouterr().out
    assert f"{path}: Network/range-outside: error: {message}" in out


def test_validate_multi_document_and_unreadable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump_all([BROKEN["two-masters"][0], BROKEN["bad-json"][0]]))
    assert main(["validate", "-q", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "masterplugin" in out[0] and "invalid JSON" in out[1]
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    (tmp_path / "junk.yaml").write_text("a: [b\n")
    assert main(["validate", str(tmp_path / "junk.yaml")]) == 2


def test_a_misspelt_kind_of_ours_is_not_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "x.yaml", {"apiVersion": "kubernetes.com/v1", "kind": "Netwrok"})
    assert main(["validate", path]) == 1
    assert "unsupported object kubernetes.com/v1/Netwrok" in capsys.readouterr().out


def test_render_node_configmap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "render",
        "--settings",
        str(EXAMPLES / "multus-settings.yaml"),
        "--node",
        "node1",
        "--label",
        "multus.cni.cncf.io/debug=true",
        "--inventory",
        str(EXAMPLES / "nodestate-node1.yaml"),
        *[str(EXAMPLES / n) for n in SEED_NETWORKS],
        _write(tmp_path, "bad.yaml", BROKEN["unknown-sriov-field"][0]),
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    cm = yaml.safe_load(captured.out)
    assert cm["metadata"]["name"] == "multus-node-node1"
    assert cm["metadata"]["namespace"] == "kube-system"
    conf = json.loads(cm["data"]["00-multus.conf"])
    assert conf["type"] == "multus-shim" and conf["daemonSocketDir"] == "/run/multus"
    assert conf["logLevel"] == "debug"  # the label-selected override
    assert conf["clusterNetwork"] == "flannel-conf"
    inventory = json.loads(cm["data"]["sriov-inventory.json"])
    assert [n["network"] for n in inventory["networks"]] == [
        "default/sriov-conf",
        "default/sriov-vlanid-l2enable-conf",
    ]
    assert "unknown-sriov-field: left out: args[0].vlanid: unknown sriov field" in captured.err


def test_render_refuses_invalid_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("mode: fat\n")
    assert main(["render", "--settings", str(path), "--node", "n"]) == 1
    assert "settings.mode: input should be 'thin' or 'thick'" in capsys.readouterr().err


def test_explain_seed_pod(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(EXAMPLES / n) for n in SEED_NETWORKS]
    assert main(["explain", str(EXAMPLES / "pod-multi-network.yaml"), *files]) == 0
    rows = [line.split()[:2] for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == [
        ["eth0", "default/flannel-conf"],
        ["net0", "default/sriov-conf"],
        ["north", "default/sriov-vlanid-l2enable-conf"],
    ]


def test_explain_npwg_pod_with_isolation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": "team-a",
            "annotations": {
                "k8s.v1.cni.cncf.io/networks": "macvlan-conf@fast, default/macvlan-conf, "
                "other/secret-net"
            },
        },
    }
    nad = yaml.safe_load((EXAMPLES / "macvlan-conf.yaml").read_text())
    in_team = {**nad, "metadata": {"name": "macvlan-conf", "namespace": "team-a"}}
    cluster = {**yaml.safe_load((EXAMPLES / "flannel-conf.yaml").read_text())}
    cluster["metadata"] = {"name": "flannel-conf", "namespace": "kube-system"}
    args = [
        "explain",
        _write(tmp_path, "pod.yaml", pod),
        str(EXAMPLES / "macvlan-conf.yaml"),
        _write(tmp_path, "team.yaml", in_team),
        _write(tmp_path, "cluster.yaml", cluster),
        "--settings",
        str(EXAMPLES / "multus-settings.yaml"),
    ]
    assert main(args) == 1  # other/secret-net is refused
    out = capsys.readouterr().out.splitlines()
    rows = [line.split()[:2] for line in out if not line.startswith(("#", "error"))]
    assert rows == [
        ["eth0", "kube-system/flannel-conf"],
        ["fast", "team-a/macvlan-conf"],
        ["net2", "default/macvlan-conf"],
    ]
    assert any("other/secret-net: namespaceIsolation" in line for line in out)


def test_explain_seed_conf_file_delegates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seed README's conf: sriov, ptp, and flannel as the master."""
    settings = {
        "kubeconfig": None,
        "delegates": [
            {"type": "sriov", "if0": "enp12s0f0",
             "ipam": {"type": "host-local", "subnet": "10.56.217.0/24"}},
            {"type": "ptp", "ipam": {"type": "host-local", "subnet": "10.168.1.0/24"}},
            {"type": "flannel", "masterplugin": True, "delegate": {"isDefaultGateway": True}},
        ],
    }  # fmt: skip
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "multus-test"}}
    args = ["explain", _write(tmp_path, "pod.yaml", pod)]
    args += ["--settings", _write(tmp_path, "settings.yaml", settings)]
    assert main(args) == 0
    rows = [line.split()[:3] for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows == [
        ["eth0", "delegates[2]", "flannel"],
        ["net0", "delegates[0]", "sriov"],
        ["net1", "delegates[1]", "ptp"],
    ]
