"""The RBAC in `rbac/rules.yaml` is what the operator needs: no more, no less.

Three checks, each against the file:
- a static inventory: every API call in the operator's source (verb, resource, scope,
  and the function it is in), found by reading the code, is granted by a rule;
- a recorded run: every request the operator made against the emulator (kopf's
  discovery included) through a life that takes every code path (leader election, the
  managed webhook, nodes coming and going, a hand-edited ConfigMap, NADs with and
  without the status subresource, a graceful stop) was granted: no 403;
- least privilege: every verb on every resource the file grants was used in that run.

And the README's RBAC section is the file's, rendered.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
from pathlib import Path

import pytest

import multus_operator
from multus_operator import rbac, resources
from multus_operator.config import WebhookConfig
from tests.operator.apiclient import NAMESPACE, Client
from tests.operator.broken import BROKEN, seed
from tests.operator.conftest import (
    OPERATOR_USER,
    RULES_FILE,
    SETTINGS_YAML,
    eventually,
    free_port,
    running,
    settled,
)
from tests.operator.emulator import DISCOVERY_PREFIXES, Emulator, Recorded
from tests.operator.tls import issue

PACKAGE = Path(multus_operator.__file__).parent
README = Path(__file__).resolve().parents[2] / "README.md"
API_VERBS = {"get", "list", "watch", "create", "patch", "delete"}
# How the code names the operator's own namespace (see config.py); any other namespace
# argument is an object's namespace: a cluster-scope grant is needed for it.
OWN_NAMESPACE = {"self.namespace", "config.namespace"}
GENERIC = {"watching.py"}  # calls with the resource of the Watch that makes them
NETS = "/apis/kubernetes.com/v1/namespaces/default/networks"
NADS = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions"
CMS = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
SLICES = f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices"


@dataclasses.dataclass(frozen=True, order=True)
class Use:
    verb: str
    group: str
    resource: str
    scope: str
    where: str = dataclasses.field(compare=False)


def _operator_rules() -> list[rbac.Rule]:
    return rbac.load(RULES_FILE)["operator"]


def _grants(rules: list[rbac.Rule]) -> set[tuple[str, str, str, str]]:
    return {
        (verb, group, resource, rule.scope)
        for rule in rules
        for verb in rule.verbs
        for group in rule.api_groups
        for resource in rule.resources
    }


class _Calls(ast.NodeVisitor):
    """Every API call and every Watch in one module, with the function it is in."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.stack: list[str] = []
        self.uses: list[Use] = []
        self.problems: list[str] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    def visit_Call(self, node: ast.Call) -> None:
        where = f"{self.module}:{'.'.join(self.stack)}"
        func = node.func
        if isinstance(func, ast.Name) and func.id == "Watch":
            self._add(("list", "watch"), node.args[1], node, where)
        elif isinstance(func, ast.Attribute) and func.attr in API_VERBS and _is_api(func.value):
            self._add((func.attr,), node.args[0] if node.args else None, node, where)
        self.generic_visit(node)

    def _add(
        self, verbs: tuple[str, ...], arg: ast.expr | None, node: ast.Call, where: str
    ) -> None:
        if isinstance(arg, ast.IfExp):  # NETWORKS if ... else NADS: both
            self._add(verbs, arg.body, node, where)
            self._add(verbs, arg.orelse, node, where)
            return
        if not isinstance(arg, ast.Name) or not isinstance(
            getattr(resources, arg.id, None), resources.Resource
        ):
            if self.module not in GENERIC:
                self.problems.append(f"{where}: a resource that is not a constant of resources.py")
            return
        res: resources.Resource = getattr(resources, arg.id)
        keywords = {k.arg: k.value for k in node.keywords}
        plural = res.plural
        sub = keywords.get("subresource")
        if isinstance(sub, ast.Constant) and sub.value:
            plural = f"{plural}/{sub.value}"
        scope = "cluster"
        namespace = keywords.get("namespace")
        if res.namespaced and namespace is not None and ast.unparse(namespace) in OWN_NAMESPACE:
            scope = "namespace"
        for verb in verbs:
            self.uses.append(Use(verb, res.group, plural, scope, where))


def _is_api(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "api") or (
        isinstance(node, ast.Attribute) and node.attr == "api"
    )


def static_inventory() -> list[Use]:
    uses, problems = [], []
    for path in sorted(PACKAGE.glob("*.py")):
        calls = _Calls(path.name)
        calls.visit(ast.parse(path.read_text()))
        uses += calls.uses
        problems += calls.problems
    assert not problems, problems
    return sorted(uses)


def test_the_rules_file_is_well_formed_and_has_no_wildcards(tmp_path: Path) -> None:
    components = rbac.load(RULES_FILE)
    assert set(components) <= {"operator", "plugin", "node"}
    assert components["operator"] and components["plugin"]
    with pytest.raises(rbac.RulesError, match=r"operator\[0\].verbs: no wildcards"):
        rbac.parse({"operator": [{"apiGroups": [""], "resources": ["x"], "verbs": ["*"],
                                  "scope": "cluster"}]})  # fmt: skip
    twice = tmp_path / "rules.yaml"
    twice.write_text("node: []\nplugin: []\nnode: []\n")
    with pytest.raises(rbac.RulesError, match="line 1: node given twice"):
        rbac.load(twice)
    with pytest.raises(rbac.RulesError, match=r"plugin\[0\].scope: must be one of"):
        rbac.parse({"plugin": [{"apiGroups": [""], "resources": ["x"], "verbs": ["get"],
                                "scope": "everywhere"}]})  # fmt: skip


def test_the_readme_rbac_section_is_the_files() -> None:
    text = README.read_text()
    begin, end = "<!-- rbac:begin -->\n", "<!-- rbac:end -->"
    assert begin in text and end in text
    section = text.split(begin, 1)[1].split(end, 1)[0]
    expected = rbac.markdown(rbac.load(RULES_FILE))
    assert section.strip() == expected.strip(), (
        "README's RBAC section differs from rbac/rules.yaml; regenerate it with"
        " `python -m multus_operator.rbac rbac/rules.yaml`"
    )


def test_every_call_in_the_code_is_granted() -> None:
    rules = _operator_rules()
    uses = static_inventory()
    assert len(uses) > 20  # the scan found the calls
    denied = [
        u
        for u in uses
        if not rbac.allowed(
            rules, u.verb, u.group, u.resource, None if u.scope == "cluster" else NAMESPACE,
            NAMESPACE,
        )
    ]  # fmt: skip
    assert not denied, "\n".join(f"{u.where}: {u.verb} {u.resource} ({u.scope})" for u in denied)
    # No grant without a call that needs it.
    used = {(u.verb, u.group, u.resource) for u in uses}
    unused = [g for g in _grants(rules) if g[:3] not in used]
    assert not unused, unused


def _record_issues(records: list[Recorded], uses: list[Use]) -> list[str]:
    found = []
    for r in records:
        info = r.info
        if r.status == 403:
            found.append(f"403: {r.method} {r.path}")
        if not info.is_resource:
            if not (r.method == "GET" and r.path.startswith(DISCOVERY_PREFIXES)):
                found.append(f"not discovery: {r.method} {r.path}")
            continue
        known = any(
            u.verb == info.verb
            and u.group == info.group
            and u.resource == info.resource
            and (u.scope == "cluster" or info.namespace == NAMESPACE)
            for u in uses
        )
        if not known:
            found.append(f"not in the static inventory: {info}")
    return found


async def _life(emu: Emulator, client: Client, tls_dir: Path) -> None:
    """Every code path that talks to the API, once."""
    await client.set_settings(SETTINGS_YAML)
    for name in ("node1", "node2"):
        await client.add_node(name)
    await client.create("/apis/multus.cni.cncf.io/v1/nodestates", seed("nodestate-node1.yaml"))
    await client.create(NETS, seed("sriov-conf.yaml"))
    await client.create(NADS, BROKEN["nad-type-path"][0])
    await client.create(
        SLICES,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "webhook-x",
                "namespace": NAMESPACE,
                "labels": {"kubernetes.io/service-name": "multus-webhook"},
            },
            "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}}],
        },
    )
    port = free_port()
    emu.services[(NAMESPACE, "multus-webhook")] = f"https://127.0.0.1:{port}"
    webhook = WebhookConfig(
        port=port, tls_dir=tls_dir, addr="127.0.0.1", managed="multus-operator",
        service="multus-webhook",
    )  # fmt: skip
    lease = {"leader_election": True, "lease_duration": 3.0, "lease_renew": 0.3}
    async with running(client.url, webhook=webhook, pod_ip="10.0.0.1", **lease) as op:
        assert op.webhook_config is not None
        await asyncio.wait_for(op.webhook_config.in_sync.wait(), 10)
        await settled(op)
        await client.set_settings("logLevel: loud\n")  # invalid: an Event
        await client.patch(f"{CMS}/multus-node-node1", {"metadata": {"labels": None}})
        await client.delete("/api/v1/nodes/node2")
        await eventually(lambda: _gone(client, "node2"))
        await client.set_settings(SETTINGS_YAML)
        await settled(op)
        cm = await client.configmap("node1")
        assert cm["metadata"]["labels"]  # adopted and restored
    # The same cluster, now with a NAD CRD that has /status: conditions, annotation removed.
    emu.resources["k8s.cni.cncf.io/v1/network-attachment-definitions"].subresources.add("status")
    async with running(client.url, webhook=webhook, pod_ip="10.0.0.1", **lease) as op:
        await settled(op)
        nad = await client.get(f"{NADS}/nad-type-path")
        assert nad["status"]["conditions"][0]["status"] == "False"
        assert "multus.cni.cncf.io/validity" not in (nad["metadata"].get("annotations") or {})


async def _gone(client: Client, node: str) -> bool:
    return await client.configmap(node) is None


async def test_a_whole_life_needs_exactly_the_documented_rbac(
    emulator: tuple[Emulator, Client], tmp_path: Path
) -> None:
    emu, client = emulator
    await _life(emu, client, issue(tmp_path / "tls"))
    ours = [r for r in emu.requests_log if r.subject == OPERATOR_USER]
    assert len(ours) > 50
    assert not _record_issues(ours, static_inventory())
    # Least privilege: every grant was used in this life.
    used = {(r.info.verb, r.info.group, r.info.resource) for r in ours if r.info.is_resource}
    unused = sorted(g for g in _grants(_operator_rules()) if g[:3] not in used)
    assert not unused, unused
    # The ConfigMap watches stay in our namespace, on our label or the settings' name.
    cm_reads = [r for r in ours if r.info.resource == "configmaps" and r.info.verb != "get"]
    assert cm_reads and all(r.info.namespace == NAMESPACE for r in cm_reads)
    lists = [r for r in cm_reads if r.info.verb in ("list", "watch")]
    assert all(r.params.get("labelSelector") or r.params.get("fieldSelector") for r in lists)
    # No Event is ever read; no CRD is scanned.
    assert not [r for r in ours if r.info.resource == "events" and r.info.verb != "create"]
    assert not [r for r in ours if "customresourcedefinitions" in r.path]


async def test_the_record_check_catches_a_request_outside_the_rules(
    emulator: tuple[Emulator, Client],
) -> None:
    """The checks above can fail: a rule taken away shows as a 403 in the record."""
    emu, client = emulator
    rules = [r for r in _operator_rules() if "nodes" not in r.resources]
    emu.users["operator-token"] = dataclasses.replace(
        emu.users["operator-token"], rules=tuple(rules)
    )
    async with running(client.url, wait_synced=False) as op:
        await eventually(lambda: op.health.failures, timeout=10)
    ours = [r for r in emu.requests_log if r.subject == OPERATOR_USER]
    issues = _record_issues(ours, static_inventory())
    assert "403: GET /api/v1/nodes" in issues
