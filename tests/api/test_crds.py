"""crds/ is the generator's output, and each CRD schema accepts and refuses what it should."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml

from multus_api import crdgen

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def _errors(crd: dict[str, Any], obj: Any) -> list[str]:
    validator = jsonschema.Draft7Validator(_schema(crd))
    return [e.message for e in validator.iter_errors(obj)]


def test_crds_dir_equals_generator_output() -> None:
    assert crdgen.main(["--check", str(ROOT / "crds")]) == 0
    on_disk = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    assert on_disk == sorted(crdgen.all_crds())


def test_check_mode_notices_drift(tmp_path: Path) -> None:
    assert crdgen.main([str(tmp_path)]) == 0
    assert crdgen.main(["--check", str(tmp_path)]) == 0
    victim = tmp_path / "networks.kubernetes.com.yaml"
    victim.write_text(victim.read_text().replace("shortNames", "shortnames"))
    assert crdgen.main(["--check", str(tmp_path)]) == 1


@pytest.mark.parametrize(
    "example", ["flannel-conf.yaml", "sriov-conf.yaml", "sriov-vlanid-l2enable-conf.yaml"]
)
def test_network_schema_accepts_the_seed_yaml(example: str) -> None:
    obj = yaml.safe_load((EXAMPLES / example).read_text())
    assert _errors(crdgen.network_crd(), obj) == []


def test_nad_and_nodestate_schemas_accept_examples() -> None:
    nad = yaml.safe_load((EXAMPLES / "macvlan-conf.yaml").read_text())
    assert _errors(crdgen.nad_crd(), nad) == []
    state = yaml.safe_load((EXAMPLES / "nodestate-node1.yaml").read_text())
    assert _errors(crdgen.nodestate_crd(), state) == []


def test_network_crd_is_the_seeds_with_status() -> None:
    crd = crdgen.network_crd()
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "networks.kubernetes.com"
    assert spec["names"]["shortNames"] == ["net"] and spec["names"]["kind"] == "Network"
    assert spec["scope"] == "Namespaced"
    version = spec["versions"][0]
    assert version["name"] == "v1" and version["subresources"] == {"status": {}}
    props = _schema(crd)["properties"]
    assert {"plugin", "args", "status"} <= set(props)  # top level, not under spec
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Valid", "Ready", "Plugin", "Age"]


def test_nad_schema_is_npwg_standard() -> None:
    """Same structure as the NPWG CRD so either can be installed; no status subresource."""
    crd = crdgen.nad_crd()
    schema = _schema(crd)
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec"}
    assert schema["properties"]["spec"]["properties"] == {
        "config": {
            "type": "string",
            "description": (
                "NetworkAttachmentDefinition config is a JSON-formatted CNI configuration"
            ),
        }
    }
    assert crd["spec"]["names"]["shortNames"] == ["net-attach-def"]
    assert "subresources" not in crd["spec"]["versions"][0]


def _structural(node: Any, path: str = "") -> list[str]:
    """Kubernetes' structural-schema rules that matter here: every node typed or open."""
    bad = []
    if isinstance(node, dict):
        if "$ref" in node or ("anyOf" in node and "type" not in node):
            bad.append(path)
        if ("properties" in node or "items" in node) and "type" not in node:
            bad.append(path)
        if node.get("additionalProperties") is False:
            bad.append(path)
        for key in ("properties",):
            for name, child in node.get(key, {}).items():
                bad += _structural(child, f"{path}.{name}")
        if "items" in node:
            bad += _structural(node["items"], f"{path}[]")
    return bad


@pytest.mark.parametrize("name", sorted(crdgen.all_crds()))
def test_schemas_are_structural_and_described(name: str) -> None:
    crd = crdgen.all_crds()[name]
    schema = _schema(crd)
    assert _structural(schema) == []
    assert schema.get("description"), "kubectl explain needs a top-level description"
    assert "multus" in crd["spec"]["names"]["categories"]


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda o: o.update(plugin="../x"), "does not match"),
        (lambda o: o.pop("plugin"), "'plugin' is a required property"),
        (lambda o: o.update(args=["not", "a", "string"]), "is not of type 'string'"),
        (
            lambda o: o.update(status={"conditions": [{"type": "Valid", "status": "Maybe"}]}),
            "'Maybe' is not one of",
        ),
    ],
)
def test_network_schema_refuses(mutate: Any, fragment: str) -> None:
    obj = yaml.safe_load((EXAMPLES / "flannel-conf.yaml").read_text())
    broken = copy.deepcopy(obj)
    mutate(broken)
    assert any(fragment in e for e in _errors(crdgen.network_crd(), broken))


def test_nodestate_schema_refuses_negative_counts() -> None:
    state = yaml.safe_load((EXAMPLES / "nodestate-node1.yaml").read_text())
    state["status"]["pfs"][0]["numVfs"] = -1
    assert any("minimum" in e or "less than" in e for e in _errors(crdgen.nodestate_crd(), state))


@pytest.mark.parametrize(
    ("plugin", "fragment"),
    [
        ({"name": "../bridge"}, "does not match"),
        ({"supportedVersions": ["1.0.0"]}, "'name' is a required property"),
        ({"name": "bridge", "supportedVersions": ["1.0.0"] * 33}, "is too long"),
    ],
)
def test_nodestate_schema_checks_installed_plugins(plugin: dict[str, Any], fragment: str) -> None:
    state = yaml.safe_load((EXAMPLES / "nodestate-node1.yaml").read_text())
    assert state["status"]["plugins"], "the example reports its plugins"
    assert _errors(crdgen.nodestate_crd(), state) == []
    state["status"]["plugins"].append(plugin)
    assert any(fragment in e for e in _errors(crdgen.nodestate_crd(), state))


def _cel(rule: str, value: Any) -> bool:
    env = celpy.Environment()
    program = env.program(env.compile(rule))
    return bool(program.evaluate({"self": celpy.json_to_cel(value)}))


def test_network_cel_rule_args_is_a_json_list() -> None:
    (rule,) = _schema(crdgen.network_crd())["x-kubernetes-validations"]
    assert _cel(rule["rule"], {"plugin": "flannel", "args": '  [{"delegate": {}}]'})
    assert _cel(rule["rule"], {"plugin": "flannel"})
    assert not _cel(rule["rule"], {"plugin": "flannel", "args": '{"delegate": {}}'})


def test_nodestate_cel_rule_numvfs_within_total() -> None:
    pfs = _schema(crdgen.nodestate_crd())["properties"]["status"]["properties"]["pfs"]
    (rule,) = pfs["items"]["x-kubernetes-validations"]
    assert _cel(rule["rule"], {"name": "p", "pciAddress": "a", "numVfs": 2, "totalVfs": 4})
    assert _cel(rule["rule"], {"name": "p", "pciAddress": "a"})
    assert not _cel(rule["rule"], {"name": "p", "pciAddress": "a", "numVfs": 8, "totalVfs": 4})
