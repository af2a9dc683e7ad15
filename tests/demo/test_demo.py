"""`multusctl demo` (what `make demo` runs): the seed's pod comes up and goes away clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from multusctl.demo import NODE_NS, POD_NS, SEED_CONF, stand_in_conf


def test_stand_ins_keep_the_seed_structure(tmp_path: Path) -> None:
    seed = json.loads(SEED_CONF.read_text())
    conf, notes = stand_in_conf(seed, tmp_path)
    # the real sriov delegate (ours, from binDir) on a simulated NIC; bridge for flannel
    assert [d["type"] for d in conf["delegates"]] == ["sriov", "ptp", "bridge"]
    assert conf["delegates"][0]["if0"] == "enp12s0f0"
    assert conf["binDir"] == str(Path(sys.executable).parent)
    assert [d.get("masterplugin", False) for d in conf["delegates"]] == [False, False, True]
    # The seed's address plan is kept; only the non-master default routes go.
    assert conf["delegates"][0]["ipam"]["rangeStart"] == "10.56.217.131"
    assert conf["delegates"][1]["ipam"]["subnet"] == "10.168.1.0/24"
    assert all(r["dst"] != "0.0.0.0/0" for d in conf["delegates"][:2] for r in d["ipam"]["routes"])
    assert conf["delegates"][2]["isDefaultGateway"] is True
    assert len(notes) == 3 and seed["delegates"][0]["type"] == "sriov"


def test_demo_brings_up_eth0_net0_net1_and_leaves_nothing() -> None:
    multusctl = Path(sys.executable).parent / "multusctl"
    proc = subprocess.run(
        [str(multusctl), "demo"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    ifconfig = out.split("-- ifconfig", 1)[1].split("== ip route", 1)[0]
    for name, address in (
        ("eth0", "192.168.42."),
        ("net0", "10.56.217.131"),
        ("net1", "10.168.1.11"),
    ):
        block = next(b for b in ifconfig.split("\n\n") if b.strip().startswith(name))
        assert f"inet addr:{address}" in block, block
    routes = out.split("== ip route (in the pod)", 1)[1]
    assert "default via 192.168.42.1 dev eth0" in routes
    assert routes.count("default") == 1
    assert "== CHECK: ok" in out and "== DEL: ok" in out
    assert "== Nothing left behind." in out
    assert "sriov: multus-py's own sriov delegate, on a simulated NIC" in out
    inventory = out.split("== multusctl inventory", 1)[1].split("== CHECK", 1)[0]
    assert '"netdev": "enp12s0f0v0"' in inventory
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert NODE_NS not in netns and POD_NS not in netns
