"""The API misbehaving, the pod changing under us, and hostile annotations: bounded
retries then code 11, nothing half-done, DEL from the cache, fast refusals."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.k8s.conftest import Lab
from tests.k8s.emulator import POD, Fault
from tests.support.cni import CniCall, leases
from tests.support.lab import Node

CLUSTER = "10.204.30.0/24"
YELLOW = "10.204.31.0/24"
NPWG = "k8s.v1.cni.cncf.io/networks"


@pytest.fixture
def world(lab: Lab) -> dict[str, Any]:
    """A cluster bridge, one NAD `yellow` in mid-a, a pod `app` asking for it."""
    bridge = lab.node.add_bridge("midcni0")
    conf = lab.conf(
        [
            {
                "name": "mid-cluster",
                "type": "bridge",
                "bridge": bridge,
                "ipam": lab.node.host_local(CLUSTER),
            }
        ]
    )
    lab.nad(
        "yellow",
        {"cniVersion": "1.0.0", "type": "ptp", "ipam": lab.node.host_local(YELLOW)},
        "mid-a",
    )
    pod = lab.pod("app", "mid-a", {NPWG: "yellow"})
    return {"conf": conf, "pod": pod, "netns": lab.node.add_pod("mid")}


def untouched(lab: Lab, call: CniCall, netns: str, code: int) -> dict[str, Any]:
    assert call.rc != 0, call.stdout
    error: dict[str, Any] = call.doc
    assert error["code"] == code, error
    assert Node.pod_links(netns) == {"lo"}
    assert not list((lab.node.cni_dir / "attachments").glob("*.json"))
    return error


def pod_gets(lab: Lab) -> int:
    return sum(1 for m, p in lab.api.requests() if m == "GET" and p.endswith("/pods/app"))


def test_api_500s_are_retried(lab: Lab, world: dict[str, Any]) -> None:
    fault = lab.api.fault(Fault("GET", "/pods/app", status=500, times=2))
    added = lab.run("ADD", world["conf"], world["pod"], world["netns"], container_id="mid500")
    assert added.rc == 0, added.stdout + added.stderr
    assert fault.hits == 2 and pod_gets(lab) == 3
    assert (
        lab.run("DEL", world["conf"], world["pod"], world["netns"], container_id="mid500").rc == 0
    )


@pytest.mark.parametrize("where", ["/pods/app", "/network-attachment-definitions/yellow"])
def test_api_500s_that_last_give_code_11(lab: Lab, world: dict[str, Any], where: str) -> None:
    fault = lab.api.fault(Fault("GET", where, status=503))
    failed = lab.run("ADD", world["conf"], world["pod"], world["netns"], container_id="mid503")
    error = untouched(lab, failed, world["netns"], 11)
    assert "4 attempts" in error["msg"] and "HTTP 503" in error["msg"]
    assert fault.hits == 4


def test_api_that_never_answers_times_out(lab: Lab, world: dict[str, Any]) -> None:
    lab.api.fault(Fault("GET", "/pods/app", delay=30))
    conf = {**world["conf"], "kubeApiTimeout": 0.3}
    started = time.monotonic()
    failed = lab.run("ADD", conf, world["pod"], world["netns"], container_id="midslow")
    elapsed = time.monotonic() - started
    error = untouched(lab, failed, world["netns"], 11)
    assert "no answer within 0.3s" in error["msg"]
    # 4 attempts of 0.3 s plus backoff (0.2 + 0.4 + 0.8 at most): well under 10 s.
    assert elapsed < 10, elapsed


def test_api_down_during_del(lab: Lab, world: dict[str, Any]) -> None:
    added = lab.run("ADD", world["conf"], world["pod"], world["netns"], container_id="middown")
    assert added.rc == 0, added.stdout + added.stderr
    lab.api.close()
    deleted = lab.run("DEL", world["conf"], world["pod"], world["netns"], container_id="middown")
    assert deleted.rc == 0, deleted.stdout + deleted.stderr
    assert Node.pod_links(world["netns"]) == {"lo"}


def test_api_down_at_add_gives_code_11(lab: Lab, world: dict[str, Any]) -> None:
    lab.api.close()
    failed = lab.run("ADD", world["conf"], world["pod"], world["netns"], container_id="midoff")
    error = untouched(lab, failed, world["netns"], 11)
    assert "connection failed" in error["msg"]


def test_pod_gone_at_add(lab: Lab, world: dict[str, Any]) -> None:
    """As Multus: an empty result, no delegate run, nothing recorded."""
    lab.api.delete(POD, "mid-a", "app")
    added = lab.run("ADD", world["conf"], world["pod"], world["netns"], container_id="midgone")
    assert added.rc == 0, added.stdout + added.stderr
    assert added.doc == {"cniVersion": "1.0.0", "interfaces": [], "ips": [], "dns": {}}
    assert Node.pod_links(world["netns"]) == {"lo"}
    assert not list((lab.node.cni_dir / "attachments").glob("*.json"))
    deleted = lab.run("DEL", world["conf"], world["pod"], world["netns"], container_id="midgone")
    assert deleted.rc == 0, deleted.stdout + deleted.stderr


def test_pod_uid_mismatch(lab: Lab, world: dict[str, Any]) -> None:
    """The pod was deleted and re-created under the same name: not ours to attach."""
    stale = json.loads(json.dumps(world["pod"]))
    stale["metadata"]["uid"] = "00000000-0000-0000-0000-000000000000"
    failed = lab.run("ADD", world["conf"], stale, world["netns"], container_id="miduid")
    error = untouched(lab, failed, world["netns"], 3)
    assert "00000000-0000-0000-0000-000000000000" in error["msg"]
    assert world["pod"]["metadata"]["uid"] in error["msg"]


def test_status_conflicts_are_retried(lab: Lab, world: dict[str, Any]) -> None:
    fault = lab.api.fault(Fault("PATCH", "/pods/app/status", status=409, times=2))
    added = lab.run("ADD", world["conf"], world["pod"], world["netns"], container_id="mid409")
    assert added.rc == 0, added.stdout + added.stderr
    assert fault.hits == 2
    assert [s["interface"] for s in lab.status("app", "mid-a")] == ["eth0", "net1"]
    assert (
        lab.run("DEL", world["conf"], world["pod"], world["netns"], container_id="mid409").rc == 0
    )


def test_status_write_failure_rolls_back(lab: Lab, world: dict[str, Any]) -> None:
    lab.api.fault(Fault("PATCH", "/pods/app/status", status=500))
    failed = lab.run("ADD", world["conf"], world["pod"], world["netns"], container_id="midroll")
    untouched(lab, failed, world["netns"], 11)
    assert lab.node.problems(settle=5) == []


def test_status_forbidden_rolls_back(lab: Lab, world: dict[str, Any]) -> None:
    lab.api.fault(Fault("PATCH", "/pods/app/status", status=403))
    failed = lab.run("ADD", world["conf"], world["pod"], world["netns"], container_id="mid403")
    error = untouched(lab, failed, world["netns"], 999)
    assert "HTTP 403" in error["msg"]
    assert lab.node.problems(settle=5) == []


def test_pod_gone_before_status_write_is_tolerated(lab: Lab, world: dict[str, Any]) -> None:
    lab.api.fault(Fault("PATCH", "/pods/app/status", status=404))
    added = lab.run("ADD", world["conf"], world["pod"], world["netns"], container_id="mid404")
    assert added.rc == 0, added.stdout + added.stderr
    assert lab.api.events("mid-a") == []
    assert (
        lab.run("DEL", world["conf"], world["pod"], world["netns"], container_id="mid404").rc == 0
    )


def test_event_failures_do_not_fail_the_add(lab: Lab, world: dict[str, Any]) -> None:
    lab.api.fault(Fault("POST", "/events", status=500))
    added = lab.run("ADD", world["conf"], world["pod"], world["netns"], container_id="midev")
    assert added.rc == 0, added.stdout + added.stderr
    assert len(lab.status("app", "mid-a")) == 2
    assert lab.run("DEL", world["conf"], world["pod"], world["netns"], container_id="midev").rc == 0


def test_token_file_is_read_at_each_call(lab: Lab, world: dict[str, Any]) -> None:
    """A bound service-account token rotates: the kubeconfig's tokenFile is re-read."""
    token = lab.root / "token"
    token.write_text("first-token\n")
    kubeconfig = lab.root / "kubeconfig.json"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": lab.api.url}}],
                "users": [{"name": "u", "user": {"tokenFile": "token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    conf = {**world["conf"], "kubeconfig": str(kubeconfig)}
    added = lab.run("ADD", conf, world["pod"], world["netns"], container_id="midtok")
    assert added.rc == 0, added.stdout + added.stderr
    assert set(lab.api.authorizations()) == {"Bearer first-token"}
    assert lab.run("DEL", conf, world["pod"], world["netns"], container_id="midtok").rc == 0


# ---- hostile annotations: refused fast, before anything runs ----

BAD_ANNOTATIONS = {
    "1 MB": "[" + ",".join(['{"name": "yellow"}'] * 55000) + "]",
    "10k entries": ",".join(["yellow"] * 10000),
    "bad JSON": '[{"name": "yellow"',
    "not a list": '{"name": "yellow"}',
    "upper-case name": "Yellow",
    "bad namespace": "Mid_A/yellow",
    "ifname with slash": "yellow@a/b",
    "ifname too long": "yellow@abcdefghijklmnop",
    "empty ifname": "yellow@",
    "element not an object": '["yellow"]',
    "ips not a list": '[{"name": "yellow", "ips": "10.204.31.5/24"}]',
    "bad ip": '[{"name": "yellow", "ips": ["10.204.31.500/24"]}]',
    "bad mac": '[{"name": "yellow", "mac": "0a:58:zz:00:00:01"}]',
    "two default routes": '[{"name": "yellow", "default-route": ["10.204.31.1"]},'
    ' {"name": "yellow", "interface": "y2", "default-route": ["10.204.31.1"]}]',
    "deep nesting": '[{"name": "yellow", "cni-args": ' + "[" * 100000 + "]" * 100000 + "}]",
}


@pytest.mark.parametrize("case", sorted(BAD_ANNOTATIONS))
def test_bad_annotations_are_refused_fast(lab: Lab, world: dict[str, Any], case: str) -> None:
    pod = lab.pod("bad", "mid-a", {NPWG: BAD_ANNOTATIONS[case]})
    started = time.monotonic()
    failed = lab.run("ADD", world["conf"], pod, world["netns"], container_id="midbad")
    elapsed = time.monotonic() - started
    error = untouched(lab, failed, world["netns"], 7)
    assert NPWG in error["msg"] or "default-route" in error["msg"], error
    assert elapsed < 3, elapsed
    # Nothing beyond reading the pod: no object lookups for a refused annotation.
    assert all("network-attachment" not in p for _, p in lab.api.requests())


def test_bad_seed_annotation(lab: Lab, world: dict[str, Any]) -> None:
    pod = lab.pod("badseed", "mid-a", {"networks": '[{"nom": "flannel-conf"}]'})
    failed = lab.run("ADD", world["conf"], pod, world["netns"], container_id="midbs")
    error = untouched(lab, failed, world["netns"], 7)
    assert 'annotation networks[0]: must be an object with a string "name"' in error["msg"]


def test_pod_gone_before_del(lab: Lab, world: dict[str, Any]) -> None:
    added = lab.run("ADD", world["conf"], world["pod"], world["netns"], container_id="midbye")
    assert added.rc == 0, added.stdout + added.stderr
    lab.api.delete(POD, "mid-a", "app")
    lab.api.clear_log()
    deleted = lab.run("DEL", world["conf"], world["pod"], world["netns"], container_id="midbye")
    assert deleted.rc == 0, deleted.stdout + deleted.stderr
    assert lab.api.requests() == []
    assert Node.pod_links(world["netns"]) == {"lo"}


def test_hanging_event_posts_do_not_stall_the_add(lab: Lab, world: dict[str, Any]) -> None:
    fault = lab.api.fault(Fault("POST", "/events", delay=30))
    conf = {**world["conf"], "kubeApiTimeout": 0.5}
    started = time.monotonic()
    added = lab.run("ADD", conf, world["pod"], world["netns"], container_id="midhang")
    assert added.rc == 0, added.stdout + added.stderr
    assert time.monotonic() - started < 5
    assert fault.hits == 1  # one Event tried, the rest skipped
    assert lab.run("DEL", conf, world["pod"], world["netns"], container_id="midhang").rc == 0


def test_parallel_pods(lab: Lab, world: dict[str, Any]) -> None:
    """Eight pods ADDed at once, then DELed at once: each gets its own status, leases
    stay unique, and the node ends clean."""
    from concurrent.futures import ThreadPoolExecutor

    pods = [lab.pod(f"par{i}", "mid-a", {NPWG: "yellow"}) for i in range(8)]
    netns = [lab.node.add_pod("mid") for _ in pods]

    def run(command: str, index: int) -> CniCall:
        return lab.run(command, world["conf"], pods[index], netns[index], f"midpar{index}")

    with ThreadPoolExecutor(8) as pool:
        added = list(pool.map(lambda i: run("ADD", i), range(8)))
    assert [a.rc for a in added] == [0] * 8, [a.stdout for a in added if a.rc]
    seen = set()
    for index in range(8):
        status = lab.status(f"par{index}", "mid-a")
        assert [s["interface"] for s in status] == ["eth0", "net1"]
        seen |= {ip for s in status for ip in s["ips"]}
    assert len(seen) == 16
    with ThreadPoolExecutor(8) as pool:
        deleted = list(pool.map(lambda i: run("DEL", i), range(8)))
    assert [d.rc for d in deleted] == [0] * 8


def test_gc_of_kubernetes_attachments_works_from_the_cache(lab: Lab, world: dict[str, Any]) -> None:
    """GC removes a pod's attachments (cluster network and NAD network) that the
    runtime no longer lists, keeps the listed one, and never asks the API."""
    other = lab.pod("other", "mid-a", {NPWG: "yellow"})
    other_netns = lab.node.add_pod("mid")
    for pod, netns, cid in (
        (world["pod"], world["netns"], "midkeep"),
        (other, other_netns, "midgone"),
    ):
        added = lab.run("ADD", world["conf"], pod, netns, container_id=cid)
        assert added.rc == 0, added.stdout + added.stderr
    before = len(lab.api.requests())
    valid = [{"containerID": "midkeep", "ifname": "eth0"}]
    gc = lab.run("GC", {**world["conf"], "cni.dev/valid-attachments": valid}, None, ifname="")
    assert (gc.rc, gc.stdout) == (0, ""), gc.stderr
    assert len(lab.api.requests()) == before
    owners = sorted(p.read_text().splitlines()[0] for p in leases(lab.node.data_dir))
    assert owners == ["midkeep", "midkeep"]  # the gone pod's two leases are freed
    assert Node.pod_links(other_netns) == {"lo"}
    assert Node.pod_links(world["netns"]) == {"lo", "eth0", "net1"}
    records = sorted(p.name for p in (lab.node.cni_dir / "attachments").glob("*.json"))
    assert records == ["midkeep:eth0.json"]
    deleted = lab.run("DEL", world["conf"], world["pod"], world["netns"], container_id="midkeep")
    assert deleted.rc == 0, deleted.stdout + deleted.stderr
