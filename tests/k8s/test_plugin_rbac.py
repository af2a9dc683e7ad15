"""The plugin's requests in Kubernetes mode are exactly what `rbac/rules.yaml` grants its
credentials (`plugin`): every request of a seed-style and an NPWG-style ADD (and its
CHECK and DEL) is allowed by those rules, and each rule is used (the DRA ones by the
SR-IOV tests)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from multus_operator import rbac
from tests.k8s.conftest import Lab
from tests.k8s.test_seed_objects import seed_networks, seed_pod_annotations
from tests.operator.emulator import request_info

RULES = Path(__file__).resolve().parents[2] / "rbac" / "rules.yaml"


def test_the_plugins_requests_are_its_rbac_rules(lab: Lab) -> None:
    node = lab.node
    seed_networks(lab)
    seed_pod = lab.pod("rbac-seed", "mid-apps", seed_pod_annotations())
    lab.nad(
        "blue", {"cniVersion": "1.0.0", "type": "ptp", "ipam": node.host_local("10.204.40.0/24")}
    )
    npwg_pod = lab.pod("rbac-npwg", "default", {"k8s.v1.cni.cncf.io/networks": "blue"})
    conf = lab.conf()
    for pod, cid in ((seed_pod, "midrbac1"), (npwg_pod, "midrbac2")):
        netns = node.add_pod("mid")
        pod_conf = conf if pod is seed_pod else lab.conf(
            [{"type": "bridge", "bridge": node.add_bridge("midrb0"), "isDefaultGateway": True,
              "ipam": node.host_local("10.204.41.0/24")}]
        )  # fmt: skip
        for command in ("ADD", "CHECK", "DEL"):
            done = lab.run(command, pod_conf, pod, netns, container_id=cid)
            assert done.rc == 0, f"{command}: {done.stdout}{done.stderr}"
    rules = rbac.load(RULES)["plugin"]
    used = set()
    for method, target in lab.api.requests():
        parts = urlsplit(target)
        info = request_info(method, parts.path, dict(parse_qsl(parts.query)))
        assert info.is_resource, target
        granted = rbac.allowed(rules, info.verb, info.group, info.resource, info.namespace, "")
        assert granted, f"{method} {target}: {info.verb} {info.resource} not in rbac/rules.yaml"
        used.add((info.verb, info.group, info.resource))
    grants = {(v, g, r) for rule in rules for v in rule.verbs for g in rule.api_groups
              for r in rule.resources}  # fmt: skip
    # The DRA reads (deviceID for a NAD with a resourceName) are exercised, and checked
    # against this file, by tests/sriov/test_device_ids.py.
    dra = {g for g in grants if g[1] == "resource.k8s.io"}
    assert grants - dra == used, sorted(grants - dra - used)
