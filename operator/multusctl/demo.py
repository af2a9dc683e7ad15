"""`multusctl demo` / `make demo`: the seed's multi-homed pod, for real, on this machine.

A network namespace plays the node (so nothing touches the real host's links), another
plays the pod. The seed's 3-delegate `multus-cni.conf` runs through the real `multus`
executable. The sriov delegate is ours, for real, on a simulated NIC (a fake sysfs tree
whose VFs are veth ends, VF settings recorded in a JSON file); `bridge` stands in for
flannel, which needs a cluster. Then DEL, and a check that nothing is left behind.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

SEED_CONF = Path(__file__).resolve().parents[2] / "examples" / "conf-file" / "multus-cni.conf"
NODE_NS = "mdemo-node"
POD_NS = "mdemo-pod"
PF_NAME = "enp12s0f0"  # the seed's PF: a veth end, as are its two VFs
PF_PCI = "0000:0c:00.0"
VF_NAMES = ("enp12s0f0v0", "enp12s0f0v1")
CONTAINER_ID = "multus-multi-net-poc"
PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")


class DemoError(Exception):
    pass


def _sh(*argv: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(list(argv), input=stdin, capture_output=True, env=env, check=False)
    if proc.returncode != 0:
        raise DemoError(f"{' '.join(argv)}: {proc.stderr.decode().strip() or proc.stdout.decode()}")
    return proc.stdout.decode()


def stand_in_conf(seed: dict[str, Any], work: Path) -> tuple[dict[str, Any], list[str]]:
    """The seed conf with runnable stand-ins, and the notes that say what was swapped."""
    conf = copy.deepcopy(seed)
    conf["cniVersion"] = "1.0.0"
    conf["cniDir"] = str(work / "cache")
    conf["binDir"] = str(Path(sys.executable).parent)  # our sriov, not another in /opt/cni/bin
    notes: list[str] = []
    for delegate in conf["delegates"]:
        ipam = delegate.get("ipam")
        if isinstance(ipam, dict):
            ipam["dataDir"] = str(work / "ipam")
            # Two default routes cannot coexist in one netns; the master owns it.
            ipam["routes"] = [r for r in ipam.get("routes", []) if r.get("dst") != "0.0.0.0/0"]
        if delegate["type"] == "sriov":
            notes.append(
                f"sriov: multus-py's own sriov delegate, on a simulated NIC: PF {PF_NAME} with "
                f"VFs {', '.join(VF_NAMES)} (veth ends) in a fake sysfs under {work / 'nic'}, VF "
                f"settings recorded in {work / 'nic' / 'sim-nic.json'}; binDir is "
                f"{Path(sys.executable).parent} so it is ours that runs"
            )
        elif delegate["type"] == "flannel":
            gateway = delegate.get("delegate", {}).get("isDefaultGateway", False)
            delegate.clear()
            delegate.update(
                {
                    "type": "bridge",
                    "masterplugin": True,
                    "bridge": "cni-flannel0",
                    "isGateway": True,
                    "isDefaultGateway": gateway,
                    "ipam": {
                        "type": "host-local",
                        "subnet": "192.168.42.0/24",
                        "dataDir": str(work / "ipam"),
                    },
                }
            )
            notes.append("flannel -> bridge + host-local on 192.168.42.0/24 (no flanneld here)")
    notes.append("the sriov and ptp delegates' default routes are dropped: the master owns it")
    return conf, notes


def find_multus() -> str:
    sibling = Path(sys.executable).parent / "multus"
    if sibling.exists():
        return str(sibling)
    found = shutil.which("multus")
    if not found:
        raise DemoError("the `multus` executable is not installed (run `make venv`)")
    return found


def sriov_env(work: Path) -> dict[str, str]:
    nic = work / "nic"
    return {
        "MULTUS_SYSFS_ROOT": str(nic),
        "MULTUS_SRIOV_SIM_STATE": str(nic / "sim-nic.json"),
        "MULTUS_SRIOV_CACHE_DIR": str(work / "sriov-cache"),
        "MULTUS_SRIOV_INVENTORY": str(nic / "sriov-inventory.json"),
        "MULTUS_SRIOV_DEVINFO_DIR": str(work / "devinfo"),
    }


def simulated_nic(work: Path) -> None:
    """PF and VFs as veth ends in the node netns, and the sysfs tree that shows them."""
    from multus_sriov import simnic

    def facts(name: str) -> dict[str, Any]:
        info = json.loads(_sh("ip", "-n", NODE_NS, "-j", "link", "show", name))[0]
        return {"mac": info["address"], "mtu": info["mtu"]}

    _sh("ip", "-n", NODE_NS, "link", "add", PF_NAME, "type", "veth", "peer", "name", "enp12s0f0pf")
    vfs = []
    for index, name in enumerate(VF_NAMES):
        _sh(
            "ip",
            "-n",
            NODE_NS,
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            f"vfpeer{index}",
        )
        vfs.append({"netdev": name, **facts(name)})
    pf = {"name": PF_NAME, "pci": PF_PCI, "speed": 25000, **facts(PF_NAME)}
    simnic.write_pf(
        str(work / "nic"), pf, vfs, vf_bus=0x0C, sim_state=str(work / "nic" / "sim-nic.json")
    )


def call_multus(
    command: str, conf: dict[str, Any], cni_path: str, extra: dict[str, str]
) -> tuple[int, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")} | extra
    env |= {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": CONTAINER_ID,
        "CNI_NETNS": f"/var/run/netns/{POD_NS}",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": cni_path,
    }
    argv = ["ip", "netns", "exec", NODE_NS, find_multus()]
    proc = subprocess.run(argv, input=json.dumps(conf).encode(), capture_output=True, env=env)
    text = proc.stdout.decode().strip()
    return proc.returncode, json.loads(text) if text else None


def ifconfig(netns: str) -> str:
    """The pod's interfaces in the shape of the seed's `ifconfig` output."""
    links = json.loads(_sh("ip", "-n", netns, "-j", "-s", "addr", "show"))
    blocks: list[str] = []
    for link in links:
        name = link["ifname"]
        if "LOOPBACK" in link.get("flags", []):
            lines = [f"{name:<10}Link encap:Local Loopback"]
        else:
            lines = [f"{name:<10}Link encap:Ethernet  HWaddr {link.get('address', '').upper()}"]
        for addr in link.get("addr_info", []):
            net = ipaddress.ip_interface(f"{addr['local']}/{addr['prefixlen']}")
            if addr["family"] == "inet":
                lines.append(f"{'':10}inet addr:{addr['local']}  Mask:{net.network.netmask}")
            else:
                scope = "Link" if addr.get("scope") == "link" else addr.get("scope", "").title()
                address = f"{addr['local']}/{addr['prefixlen']}"
                lines.append(f"{'':10}inet6 addr: {address} Scope:{scope}")
        raw_flags = link.get("flags", [])
        order = ("UP", "BROADCAST", "LOOPBACK", "MULTICAST")
        flags = " ".join(f for f in order if f in raw_flags)
        lines.append(f"{'':10}{flags}  MTU:{link.get('mtu')}")
        stats = link.get("stats64", {})
        rx, tx = stats.get("rx", {}), stats.get("tx", {})
        lines.append(f"{'':10}RX packets:{rx.get('packets', 0)}  TX packets:{tx.get('packets', 0)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def leftovers(work: Path) -> list[str]:
    found = [str(p) for p in (work / "cache" / "attachments").glob("*")]
    found += [str(p) for p in (work / "sriov-cache" / "allocations").glob("*")]
    ipam = work / "ipam"
    if ipam.exists():
        found += [
            str(p)
            for p in ipam.rglob("*")
            if p.is_file() and p.name != "lock" and not p.name.startswith("last_reserved_ip")
        ]
    return found


def _links(netns: str) -> set[str]:
    return {link["ifname"] for link in json.loads(_sh("ip", "-n", netns, "-j", "link", "show"))}


def run_demo(out: TextIO = sys.stdout) -> int:
    if os.geteuid() != 0:
        print("multusctl demo needs root (it creates network namespaces)", file=sys.stderr)
        return 2
    cni_path = ":".join(
        [d for d in PLUGIN_DIRS if os.path.isdir(d)] + [str(Path(sys.executable).parent)]
    )
    if not os.path.exists("/usr/lib/cni/bridge") and not os.path.exists("/opt/cni/bin/bridge"):
        print("Debian's containernetworking-plugins are missing (make plugins)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="multus-demo-"))
    for ns in (NODE_NS, POD_NS):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    try:
        _sh("ip", "netns", "add", NODE_NS)
        _sh("ip", "netns", "add", POD_NS)
        _sh("ip", "-n", NODE_NS, "link", "set", "lo", "up")
        simulated_nic(work)
        _sh("ip", "-n", NODE_NS, "link", "set", PF_NAME, "up")
        extra = sriov_env(work)
        seed = json.loads(SEED_CONF.read_text())
        conf, notes = stand_in_conf(seed, work)

        def p(*parts: object) -> None:
            print(*parts, file=out)

        p(f"== The seed's multus-cni.conf ({SEED_CONF.relative_to(SEED_CONF.parents[2])})")
        p(json.dumps(seed, indent=2))
        p("\n== Stand-ins on this machine:")
        for note in notes:
            p(f"  - {note}")
        p(f"\n== Node: netns {NODE_NS}; pod: netns {POD_NS}; CNI_PATH={cni_path}")
        before = _links(NODE_NS)
        rc, doc = call_multus("ADD", conf, cni_path, extra)
        if rc != 0:
            p(f"\nADD failed (rc={rc}): {json.dumps(doc)}")
            return 1
        p("\n== ADD result (the master delegate's, as kubelet receives it):")
        p(json.dumps(doc, indent=2))
        p(f"\n== kubectl exec -it {CONTAINER_ID} -- ifconfig")
        p(ifconfig(POD_NS))
        p(f"\n== ip route (in the pod)\n{_sh('ip', '-n', POD_NS, 'route').rstrip()}")
        from multus_sriov.discovery import discover
        from multus_sriov.vfsettings import SimVfSettings

        inventory = discover(str(work / "nic"), SimVfSettings(extra["MULTUS_SRIOV_SIM_STATE"]))
        p("\n== multusctl inventory (the simulated NIC, while the pod holds VF 0)")
        p(json.dumps(inventory, indent=2))
        rc, doc = call_multus("CHECK", conf, cni_path, extra)
        p(f"\n== CHECK: {'ok' if rc == 0 else json.dumps(doc)}")
        rc, doc = call_multus("DEL", conf, cni_path, extra)
        p(f"== DEL: {'ok' if rc == 0 else json.dumps(doc)}")
        pod_links = sorted(_links(POD_NS))
        node_extra = sorted(_links(NODE_NS) - before - {"cni-flannel0"})
        left = leftovers(work)
        p(
            f"\n== After DEL: pod interfaces {pod_links}; VF {VF_NAMES[0]} back on the node: "
            f"{VF_NAMES[0] in _links(NODE_NS)}; new node links besides the bridge: {node_extra}; "
            f"leases/records left: {left}"
        )
        vf_back = VF_NAMES[0] in _links(NODE_NS)
        clean = pod_links == ["lo"] and not node_extra and not left and vf_back
        p("== Nothing left behind." if clean else "== LEFTOVERS FOUND")
        return 0 if clean and rc == 0 else 1
    except DemoError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    finally:
        for ns in (POD_NS, NODE_NS):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_demo())
