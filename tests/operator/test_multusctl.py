"""multusctl validate / render / explain on files, as a CI pipeline would run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from multusctl.main import main
from tests.operator.broken import BROKEN, EXAMPLES, SEED_NETWORKS, WARNED


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
    obj, message = BROKEN["bad-if0name"]
    path = _write(tmp_path, "bad.yaml", obj)
    warned, warning = WARNED["range-outside"]
    other = _write(tmp_path, "warned.yaml", warned)
    assert main(["validate", str(EXAMPLES / "flannel-conf.yaml"), path, other]) == 1
    out = capsys.readouterr().out
    assert f"{path}: Network/bad-if0name: error: {message}" in out
    assert f"{other}: Network/range-outside: warning: {warning}" in out
    assert f"{other}: Network/range-outside: valid" in out


def test_validate_multi_document_and_unreadable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(yaml.safe_dump_all([BROKEN["two-confs"][0], BROKEN["bad-json"][0]]))
    assert main(["validate", "-q", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and "exactly one conf" in out[0] and "invalid JSON" in out[1]
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
        _write(tmp_path, "bad.yaml", BROKEN["bad-if0name"][0]),
        _write(tmp_path, "warned.yaml", WARNED["unknown-sriov-field"][0]),
    ]
    assert main(args) == 0
    captured = capsys.readouterr()
    cm = yaml.safe_load(captured.out)
    assert cm["metadata"]["name"] == "multus-node-node1"
    assert cm["metadata"]["namespace"] == "kube-system"
    conf = json.loads(cm["data"]["00-multus.conf"])
    assert conf["type"] == "multus-py-shim" and conf["daemonSocketDir"] == "/run/multus"
    assert conf["logLevel"] == "debug"  # the label-selected override
    assert conf["clusterNetwork"] == "flannel-conf"
    inventory = json.loads(cm["data"]["sriov-inventory.json"])
    assert [n["network"] for n in inventory["networks"]] == [
        "default/sriov-conf",
        "default/sriov-vlanid-l2enable-conf",
        "default/unknown-sriov-field",  # valid: the sriov plugin judges its own keys
    ]
    assert "bad-if0name: left out: args[0].if0name: 'net/1' may not contain" in captured.err
    assert "unknown-sriov-field: warning: args[0].vlanid: unknown sriov field" in captured.err


def test_render_refuses_invalid_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("mode: fat\n")
    assert main(["render", "--settings", str(path), "--node", "n"]) == 1
    assert "settings.mode: input should be 'thin' or 'thick'" in capsys.readouterr().err


def _rows(out: str, width: int = 2) -> list[list[str]]:
    return [line.split()[:width] for line in out.splitlines() if not line.startswith("#")]


def test_explain_seed_pod(capsys: pytest.CaptureFixture[str]) -> None:
    files = [str(EXAMPLES / n) for n in SEED_NETWORKS]
    assert main(["explain", str(EXAMPLES / "pod-multi-network.yaml"), *files]) == 0
    assert _rows(capsys.readouterr().out) == [
        ["eth0", "default/flannel-conf"],
        ["net0", "default/sriov-conf"],
        ["north", "default/sriov-vlanid-l2enable-conf"],
    ]


def test_explain_npwg_pod_with_isolation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plugin's own resolver: the cluster network (a NAD in multusNamespace), then the
    annotation's networks numbered by position; a network from a namespace isolation
    forbids refuses the whole pod, with the plugin's message."""
    annotation = "macvlan-conf@fast, default/macvlan-conf"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p",
            "namespace": "team-a",
            "annotations": {"k8s.v1.cni.cncf.io/networks": annotation},
        },
    }
    nad = yaml.safe_load((EXAMPLES / "macvlan-conf.yaml").read_text())
    in_team = {**nad, "metadata": {"name": "macvlan-conf", "namespace": "team-a"}}
    cluster = {
        **nad,
        "metadata": {"name": "flannel-conf", "namespace": "kube-system"},
        "spec": {"config": json.dumps({"cniVersion": "0.3.1", "type": "flannel"})},
    }
    args = [
        "explain",
        _write(tmp_path, "pod.yaml", pod),
        str(EXAMPLES / "macvlan-conf.yaml"),
        _write(tmp_path, "team.yaml", in_team),
        _write(tmp_path, "cluster.yaml", cluster),
        "--settings",
        str(EXAMPLES / "multus-settings.yaml"),
    ]
    assert main(args) == 0
    assert _rows(capsys.readouterr().out) == [
        ["eth0", "kube-system/flannel-conf"],
        ["fast", "team-a/macvlan-conf"],
        ["net2", "default/macvlan-conf"],
    ]
    pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] += ", other/secret-net"
    args[1] = _write(tmp_path, "pod.yaml", pod)
    assert main(args) == 1
    out = capsys.readouterr().out
    assert _rows(out) == [
        ["error:", "namespace"],
    ]
    assert (
        "error: namespace isolation: pod team-a/p in namespace 'team-a' may not use network "
        "other/secret-net from namespace 'other' (allowed: its own namespace and default)"
    ) in out


def test_explain_seed_conf_file_delegates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The seed README's conf: sriov, ptp, and flannel as the master, in attach order."""
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
    assert _rows(capsys.readouterr().out, 3) == [
        ["net0", "delegates[0]", "sriov"],
        ["net1", "delegates[1]", "ptp"],
        ["eth0", "delegates[2]", "flannel"],
    ]


def test_explain_reads_the_nodes_conf_files_from_conf_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """clusterNetwork names no NAD here: as the plugin does, explain falls back to the conf
    file whose network has that name, in --conf-dir (without it: none, and it says so)."""
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "10-flannel.conf").write_text(
        json.dumps({"cniVersion": "0.3.1", "name": "cbr0", "type": "flannel"})
    )
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}}
    args = ["explain", _write(tmp_path, "pod.yaml", pod)]
    args += ["--settings", _write(tmp_path, "settings.yaml", {"clusterNetwork": "cbr0"})]
    assert main([*args, "--conf-dir", str(conf_dir)]) == 0
    assert _rows(capsys.readouterr().out, 3) == [
        ["eth0", str(conf_dir / "10-flannel.conf"), "flannel"]
    ]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "# no --conf-dir: the node has no conf files" in out
    assert "error: clusterNetwork 'cbr0': no NetworkAttachmentDefinition kube-system/cbr0" in out
