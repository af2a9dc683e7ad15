"""Kubernetes mode against conf-file mode: ADD+DEL of a pod with 3 networks, side by side.

- conf file: the 3 delegates inline in the multus conf (seed `masterplugin` style);
- k8s seed: the same 3 delegates as seed `Network` objects, picked by the pod's
  `networks` annotation (pod GET, 3 object GETs, status PATCH, 3 Events);
- k8s NPWG: the cluster delegate in the conf, the other 2 as NADs picked by
  `k8s.v1.cni.cncf.io/networks`.

The API is kmock's emulator on loopback inside a throwaway node netns (prefix `mid`);
API requests are counted at the emulator. Runs are interleaved; medians are printed.
Run as root: `.venv/bin/python -m tests.bench.bench_k8s [--runs N]` (not part of make test).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.k8s.emulator import NAD, NETWORK, POD, Api
from tests.support.cni import CNI_PLUGINS
from tests.support.lab import Node

FLANNEL = "10.204.200.0/24"
SRIOV = "10.204.201.0/24"


class Mode:
    def __init__(
        self, name: str, conf: dict[str, Any], cni_args: str, pod: dict[str, Any] | None = None
    ) -> None:
        self.name = name
        self.pod = pod
        self.conf = conf
        self.cni_args = cni_args
        self.times: list[float] = []
        self.add_times: list[float] = []
        self.add_requests: list[int] = []
        self.del_requests: list[int] = []


def delegates(node: Node, bridge: str, vf1: str, vf2: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "bridge",
            "bridge": bridge,
            "isDefaultGateway": True,
            "ipam": node.host_local(FLANNEL),
        },
        {"type": "host-device", "device": vf1, "ipam": node.host_local(SRIOV)},
        {"type": "host-device", "device": vf2, "if0name": "north"},
    ]


def setup(node: Node, api: Api, root: Path) -> list[Mode]:
    bridge = node.add_bridge("midbench0")
    vf1, _ = node.add_veth("midbvf1", "midbvf1p")
    vf2, _ = node.add_veth("midbvf2", "midbvf2p")
    flannel, sriov, vlan = delegates(node, bridge, vf1, vf2)
    kubeconfig = api.kubeconfig(root)
    base = {
        "cniVersion": "1.0.0",
        "type": "multus",
        "cniDir": str(node.cni_dir),
        "binDir": CNI_PLUGINS,
        "confDir": str(node.conf_dir),
    }
    conf_file = {
        **base,
        "name": "mid-bench",
        "delegates": [{**flannel, "masterplugin": True}, sriov, vlan],
    }
    # Seed Network objects and the seed's annotation.
    for name, plugin, args in (
        ("flannel-conf", "bridge", {k: v for k, v in flannel.items() if k != "type"}),
        ("sriov-conf", "host-device", {k: v for k, v in sriov.items() if k != "type"}),
        ("sriov-vlan", "host-device", {k: v for k, v in vlan.items() if k != "type"}),
    ):
        api.put(
            NETWORK,
            {
                "apiVersion": "kubernetes.com/v1",
                "kind": "Network",
                "metadata": {"name": name, "namespace": "default"},
                "plugin": plugin,
                "args": json.dumps([args]),
            },
        )
    seed_annotation = json.dumps(
        [{"name": n} for n in ("flannel-conf", "sriov-conf", "sriov-vlan")]
    )
    seed_pod = pod(api, "bench-seed", {"networks": seed_annotation})
    seed = {**base, "name": "mid-bench", "kubeconfig": str(kubeconfig)}
    # NPWG: cluster network in the conf, the other two as NADs.
    for name, conf in (("sriov-nad", sriov), ("vlan-nad", vlan)):
        api.put(
            NAD,
            {
                "apiVersion": "k8s.cni.cncf.io/v1",
                "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"config": json.dumps({"cniVersion": "1.0.0", **conf})},
            },
        )
    npwg_pod = pod(api, "bench-npwg", {"k8s.v1.cni.cncf.io/networks": "sriov-nad, vlan-nad"})
    npwg = {**seed, "delegates": [flannel]}
    return [
        Mode("conf file (3 inline delegates)", conf_file, "IgnoreUnknown=1"),
        Mode("k8s: seed Network objects", seed, pod_args(seed_pod), seed_pod),
        Mode("k8s: NPWG (conf cluster + 2 NADs)", npwg, pod_args(npwg_pod), npwg_pod),
    ]


def pod(api: Api, name: str, annotations: dict[str, str]) -> dict[str, Any]:
    """The pod as created (uid stamped), kept apart from the emulator's mutable copy."""
    return copy.deepcopy(
        api.put_copy(
            POD,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            },
        )
    )


def pod_args(pod_doc: dict[str, Any]) -> str:
    meta = pod_doc["metadata"]
    return (
        f"IgnoreUnknown=1;K8S_POD_NAMESPACE={meta['namespace']};K8S_POD_NAME={meta['name']};"
        f"K8S_POD_UID={meta['uid']}"
    )


def cycle(node: Node, api: Api, mode: Mode, netns: str, record: bool) -> None:
    # A fresh pod object and no old Events: each cycle sees the same emulator state.
    api.forget()
    if mode.pod is not None:
        api.put_copy(POD, mode.pod)
    start = time.perf_counter()
    added = node.run("ADD", mode.conf, container_id="midbench", netns=netns, cni_args=mode.cni_args)
    add_done = time.perf_counter()
    middle = len(api.requests())
    deleted = node.run(
        "DEL", mode.conf, container_id="midbench", netns=netns, cni_args=mode.cni_args
    )
    elapsed = time.perf_counter() - start
    if added.rc or deleted.rc:
        raise SystemExit(f"{mode.name}: ADD/DEL failed: {added.stdout} {deleted.stdout}")
    if record:
        mode.times.append(elapsed)
        mode.add_times.append(add_done - start)
        mode.add_requests.append(middle)
        mode.del_requests.append(len(api.requests()) - middle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    options = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="mid-bench-") as tmp,
        Node.create("mid", Path(tmp)) as node,
    ):
        api = Api(f"/var/run/netns/{node.name}")
        try:
            modes = setup(node, api, Path(tmp))
            netns = node.add_pod("mid")
            for _ in range(3):  # warm page cache and the VERSION cache
                for mode in modes:
                    cycle(node, api, mode, netns, record=False)
            for run in range(options.runs):
                order = modes if run % 2 == 0 else list(reversed(modes))
                for mode in order:
                    cycle(node, api, mode, netns, record=True)
        finally:
            api.close()
        problems = node.problems(settle=5)
    base = statistics.median(modes[0].times)
    print(f"ADD+DEL of a pod with 3 networks, {options.runs} interleaved runs per mode")
    print(
        f"{'mode':<36}{'median ms':>10}{'p90 ms':>9}{'ratio':>7}{'ADD ms':>8}"
        f"{'API/ADD':>9}{'API/DEL':>9}"
    )
    for mode in modes:
        median = statistics.median(mode.times)
        p90 = statistics.quantiles(mode.times, n=10)[-1]
        print(
            f"{mode.name:<36}{median * 1000:>10.1f}{p90 * 1000:>9.1f}{median / base:>6.2f}x"
            f"{statistics.median(mode.add_times) * 1000:>8.1f}"
            f"{statistics.median(mode.add_requests):>9.0f}{statistics.median(mode.del_requests):>9.0f}"
        )
    if problems:
        raise SystemExit("node not clean after the benchmark: " + "; ".join(problems))


if __name__ == "__main__":
    main()
