"""Every caller cniVersion against Debian's plugins (which stop at 1.0.0), conflist
delegates, and delegates loaded from `clusterNetwork` / `defaultNetworks` files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cni import cache_records
from tests.support.lab import Node, bridge_delegate, ptp_delegate

CLUSTER = "10.201.0.0/24"
SECOND = "10.201.1.0/24"
THIRD = "10.201.3.0/24"


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_each_caller_version(node: Node, version: str) -> None:
    bridge = node.add_bridge("miacni0")
    conf = node.conf(
        [bridge_delegate(node, bridge, CLUSTER, isDefaultGateway=True), ptp_delegate(node, SECOND)],
        cniVersion=version,
    )
    pod = node.add_pod("mia")
    add = node.run("ADD", conf, container_id="verpod", netns=pod)
    assert add.rc == 0, add.stdout + add.stderr
    result = add.doc
    assert result["cniVersion"] == version
    assert len(result["ips"]) == 1
    if version.startswith("0."):
        assert [ip["version"] for ip in result["ips"]] == ["4"]
    else:
        assert all("version" not in ip for ip in result["ips"])
    assert [ip["address"] for ip in result["ips"]] == node.pod_addresses(pod)["eth0"]

    # The delegates were spoken to at the newest version both sides know.
    (record_path,) = cache_records(node.cni_dir)
    record = json.loads(record_path.read_text())
    expected = "1.0.0" if version == "1.1.0" else version
    assert [d["versions"] for d in record["delegates"]] == [[expected], [expected]]

    if version not in ("0.3.0", "0.3.1"):
        check = node.run("CHECK", conf, container_id="verpod", netns=pod)
        assert check.rc == 0, check.stdout + check.stderr
    delete = node.run("DEL", conf, container_id="verpod", netns=pod)
    assert delete.rc == 0, delete.stdout + delete.stderr
    assert node.problems() == []


def test_conflist_delegate(node: Node) -> None:
    """A delegate that is a conflist runs as a chain: tuning sees bridge's result."""
    bridge = node.add_bridge("miacni0")
    chained = {
        "cniVersion": "1.0.0",
        "name": "mia-tuned",
        "plugins": [
            {"type": "bridge", "bridge": bridge, "ipam": node.host_local(SECOND)},
            {
                "type": "tuning",
                "mac": "02:00:00:c0:ff:ee",
                "sysctl": {"net.ipv4.conf.net1.arp_notify": "1"},
            },
        ],
    }
    conf = node.conf([ptp_delegate(node, CLUSTER), chained], cniVersion="1.0.0")
    pod = node.add_pod("mia")
    add = node.run("ADD", conf, container_id="mia-listpod", netns=pod)
    assert add.rc == 0, add.stdout + add.stderr
    links = json.loads(node.pod_ip(pod, "-j", "link", "show", "net1"))
    assert links[0]["address"] == "02:00:00:c0:ff:ee"
    arp_notify = node.pod_exec(pod, "cat", "/proc/sys/net/ipv4/conf/net1/arp_notify")
    assert arp_notify.strip() == "1"
    check = node.run("CHECK", conf, container_id="mia-listpod", netns=pod)
    assert check.rc == 0, check.stdout + check.stderr
    delete = node.run("DEL", conf, container_id="mia-listpod", netns=pod)
    assert delete.rc == 0, delete.stdout + delete.stderr
    assert node.pod_links(pod) == {"lo"}
    assert not Path("/run/cni/tuning/mia-listpod-net1.json").exists(), "tuning kept its backup"
    assert node.problems() == []


def test_cluster_network_and_default_networks_from_files(node: Node) -> None:
    bridge = node.add_bridge("miacni0")
    cluster = node.write_conf(
        "cluster/10-mia-cluster.conf",
        {
            "cniVersion": "1.0.0",
            "name": "mia-cluster",
            **bridge_delegate(node, bridge, CLUSTER, isDefaultGateway=True),
        },
    )
    # A directory: its first file in lexical order is used; the conflist wins over a
    # conf of the same stem.
    node.write_conf(
        "extra/00-mia-extra.conf", {"cniVersion": "1.0.0", "name": "mia-wrong", "type": "nope"}
    )
    node.write_conf(
        "extra/00-mia-extra.conflist",
        {
            "cniVersion": "1.0.0",
            "name": "mia-extra",
            "plugins": [ptp_delegate(node, SECOND), {"type": "tuning", "mtu": 1400}],
        },
    )
    node.write_conf(
        "30-mia-third.conf",
        {"cniVersion": "1.0.0", "name": "mia-third", **ptp_delegate(node, THIRD)},
    )
    conf = node.conf([], cniVersion="1.0.0", confDir=str(node.conf_dir))
    del conf["delegates"]
    conf["clusterNetwork"] = str(cluster)
    conf["defaultNetworks"] = [str(Path(node.conf_dir, "extra")), "30-mia-third.conf"]

    pod = node.add_pod("mia")
    add = node.run("ADD", conf, container_id="filepod", netns=pod)
    assert add.rc == 0, add.stdout + add.stderr
    addrs = node.pod_addresses(pod)
    assert set(addrs) == {"eth0", "net1", "net2"}
    assert addrs["eth0"][0].startswith("10.201.0.")
    assert addrs["net1"][0].startswith("10.201.1.")
    assert addrs["net2"][0].startswith("10.201.3.")
    net1 = json.loads(node.pod_ip(pod, "-j", "link", "show", "net1"))
    assert net1[0]["mtu"] == 1400
    assert sorted(p.name for p in node.data_dir.iterdir()) == [
        "mia-cluster",
        "mia-extra",
        "mia-third",
    ]
    delete = node.run("DEL", conf, container_id="filepod", netns=pod)
    assert delete.rc == 0, delete.stdout + delete.stderr
    assert node.problems() == []
