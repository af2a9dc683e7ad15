"""Pure parts: per-node rendering, ConfigMap naming, condition merging."""

from __future__ import annotations

import json

from multus_api.inventory import PhysicalFunction, SriovInventory, VirtualFunction
from multus_api.settings import LabelSelector, LabelSelectorRequirement, MultusSettings
from multus_operator import conditions, rendering
from multus_operator.rendering import NetworkView, NodeView
from multus_rules.multusconf import DEFAULT_GLOBAL_NAMESPACES


def test_configmap_name_is_short_stable_and_distinct() -> None:
    assert rendering.configmap_name("node1") == "multus-node-node1"
    long_a, long_b = "a" * 250 + "x", "a" * 250 + "y"
    name_a, name_b = rendering.configmap_name(long_a), rendering.configmap_name(long_b)
    assert len(name_a) <= 253 and name_a != name_b
    assert name_a == rendering.configmap_name(long_a)
    labels = rendering.configmap_labels(long_a)
    assert len(labels[rendering.NODE_LABEL]) <= 63


def test_thin_and_thick_confs() -> None:
    node = NodeView("n1")
    thin = json.loads(
        rendering.render(MultusSettings(mode="thin", clusterNetwork="c"), node, [])[
            rendering.CONF_KEY
        ]
    )
    assert thin["type"] == "multus" and "daemonSocketDir" not in thin
    assert thin["clusterNetwork"] == "c"
    settings = MultusSettings(namespaceIsolation=True, globalNamespaces=["default", "shared"])
    thick = json.loads(rendering.render(settings, node, [])[rendering.CONF_KEY])
    assert thick["type"] == "multus-py-shim" and thick["daemonSocketDir"] == "/run/multus"
    assert thick["globalNamespaces"] == "default,shared"  # Multus v4's comma-joined form
    # Without the key, the plugin's own default: the same as a hand-written conf's.
    isolated = MultusSettings(namespaceIsolation=True)
    conf = json.loads(rendering.render(isolated, node, [])[rendering.CONF_KEY])
    assert conf["globalNamespaces"] == ",".join(DEFAULT_GLOBAL_NAMESPACES) == "default"


def test_seed_conf_file_mode_renders_delegates() -> None:
    delegates = [{"type": "flannel", "masterplugin": True, "delegate": {}}]
    settings = MultusSettings(mode="thin", kubeconfig=None, delegates=delegates)
    conf = json.loads(rendering.render(settings, NodeView("n"), [])[rendering.CONF_KEY])
    assert conf["delegates"] == delegates and "kubeconfig" not in conf


def test_overrides_by_labels_in_order() -> None:
    settings = MultusSettings.model_validate(
        {
            "nodeOverrides": [
                {"nodeSelector": {"matchLabels": {"pool": "gpu"}},
                 "settings": {"logLevel": "debug"}},
                {
                    "nodeSelector": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]},
                    "settings": {"logLevel": "verbose", "mode": "thin"},
                },
            ]
        }
    )  # fmt: skip
    assert settings.for_node({}).logLevel == "error"
    assert settings.for_node({"pool": "gpu"}).logLevel == "debug"
    both = settings.for_node({"pool": "gpu", "zone": "a"})
    assert (both.logLevel, both.mode) == ("verbose", "thin")


def test_label_selector_operators() -> None:
    sel = LabelSelector(
        matchExpressions=[
            LabelSelectorRequirement(key="a", operator="In", values=["1", "2"]),
            LabelSelectorRequirement(key="b", operator="NotIn", values=["x"]),
            LabelSelectorRequirement(key="c", operator="DoesNotExist"),
        ]
    )
    assert sel.matches({"a": "2"})
    assert sel.matches({"a": "1", "b": "y"})
    assert not sel.matches({"a": "3"})
    assert not sel.matches({"a": "1", "b": "x"})
    assert not sel.matches({"a": "1", "c": ""})


def _inventory() -> SriovInventory:
    vf = VirtualFunction(index=0, pciAddress="0000:02:10.0", driver="ixgbevf", netdev="enp2s0v0")
    pf = PhysicalFunction(name="enp2s0", pciAddress="0000:02:00.0", numVfs=1, vfs=[vf])
    return SriovInventory(pfs=[pf])


def _pf(name: str, *vfs: tuple[str | None, str | None]) -> PhysicalFunction:
    """A PF at 0000:0c:00.1 with VFs given as (driver, netdev)."""
    return PhysicalFunction(
        name=name,
        pciAddress="0000:0c:00.1",
        numVfs=len(vfs),
        vfs=[
            VirtualFunction(index=i, pciAddress=f"0000:0c:02.{i}", driver=d, netdev=n)
            for i, (d, n) in enumerate(vfs)
        ],
    )


def test_usable_on_says_why_not_per_pf() -> None:
    """No such PF, no VFs, no free VF (VFs on a DPDK driver, held outside multus), an
    externally managed PF: what an if0 ADD on that node would meet."""
    seed = NetworkView("d/s", ({"type": "sriov", "if0": "enp12s0f1"},))
    inv = SriovInventory(pfs=[_pf("enp12s0f1", ("iavf", None), ("iavf", "enp12s0f1v1"))])
    assert rendering.usable_on(seed, inv) is None
    assert rendering.usable_on(seed, inv, ["enp12s0f1"]) == (
        "PF enp12s0f1 (0000:0c:00.1) is externally managed (sriov.externallyManaged: a "
        "device plugin or DRA driver hands out its VFs): picking a free VF of it could give "
        "one VF to two pods; name the VF by deviceID (a NAD's k8s.v1.cni.cncf.io/resourceName)"
    )
    assert rendering.usable_on(seed, inv, ["0000:0c:00.1"]) is not None  # by PCI too
    assert rendering.usable_on(seed, SriovInventory(pfs=[_pf("enp12s0f1")])) == (
        "PF enp12s0f1 has no VFs (sriov_numvfs is 0; the SR-IOV network operator or the "
        "node's admin creates VFs, multus never does)"
    )
    dpdk = SriovInventory(pfs=[_pf("enp12s0f1", ("vfio-pci", None), ("igb_uio", None))])
    assert rendering.usable_on(seed, dpdk) == (
        "no free VF on PF enp12s0f1: all 2 VFs are on a DPDK driver"
    )
    # the seed's dpdk block rebinds VFs itself: DPDK VFs are its to take
    rebinding = NetworkView(
        "d/r", ({"type": "sriov", "if0": "enp12s0f1", "dpdk": {"dpdk_driver": "vfio-pci"}},)
    )
    assert rendering.usable_on(rebinding, dpdk) is None
    mixed = SriovInventory(pfs=[_pf("enp12s0f1", ("vfio-pci", None), ("iavf", None))])
    assert rendering.usable_on(seed, mixed) == (
        "no free VF on PF enp12s0f1 (2 VFs: 1 on a DPDK driver (vfio-pci); "
        "1 without a netdev on the host)"
    )
    fixed = NetworkView("d/f", ({"type": "sriov", "if0": "enp12s0f1", "vf": 0},))
    assert rendering.usable_on(fixed, inv) == (
        "no free VF on PF enp12s0f1 (1 VF: 1 without a netdev on the host)"
    )
    # ... and kernel VFs only where the node rebinds drivers for it
    kernel = SriovInventory(pfs=[_pf("enp12s0f1", ("iavf", "v0"), ("iavf", "v1"))])
    assert rendering.usable_on(rebinding, kernel) is None  # not reported: benefit of doubt
    kernel.dpdkRebinding = False
    assert rendering.usable_on(rebinding, kernel) == (
        "no free VF on PF enp12s0f1 (2 VFs: 2 on a kernel driver, not rebound on this node "
        "(--sriov-dpdk-bind deny))"
    )
    assert rendering.usable_on(seed, kernel) is None  # a kernel-netdev network: fine
    mixed.dpdkRebinding = False
    assert rendering.usable_on(rebinding, mixed) is None  # the vfio-pci VF
    nine = NetworkView("d/9", ({"type": "sriov", "if0": "enp12s0f1", "vf": 9},))
    assert rendering.usable_on(nine, inv) == "PF enp12s0f1 has no VF 9"
    # deviceID networks take the device they are given, DPDK or not, managed or not
    by_id = NetworkView("d/i", ({"type": "sriov", "deviceID": "0000:0c:02.0"},))
    assert rendering.usable_on(by_id, dpdk, ["enp12s0f1"]) is None
    # ... but a dpdk block naming a kernel VF needs a node that rebinds drivers
    dpdk_by_id = NetworkView(
        "d/k", ({"type": "sriov", "deviceID": "0000:0c:02.1", "dpdk": {"dpdk_driver": "vfio-pci"}},)
    )
    rebinds = SriovInventory(pfs=kernel.pfs, dpdkRebinding=True)
    assert rendering.usable_on(dpdk_by_id, rebinds) is None
    assert kernel.dpdkRebinding is False
    assert rendering.usable_on(dpdk_by_id, kernel) == (
        "VF 0000:0c:02.1 is on a kernel driver, not rebound on this node (--sriov-dpdk-bind deny)"
    )
    assert rendering.usable_on(dpdk_by_id, dpdk) is None  # already on vfio-pci / igb_uio
    dpdk.dpdkRebinding = False
    assert rendering.usable_on(dpdk_by_id, dpdk) is None


def test_usable_on_by_if0_device_or_any_vf() -> None:
    inv = _inventory()
    seed = NetworkView("d/s", ({"type": "sriov", "if0": "enp2s0"},))
    assert rendering.usable_on(seed, inv) is None
    assert rendering.usable_on(seed, None) == "no PF enp2s0"
    other = NetworkView("d/o", ({"type": "sriov", "if0": "enp9s0"},))
    assert rendering.usable_on(other, inv) == "no PF enp9s0"
    today = NetworkView("d/t", ({"type": "sriov", "deviceID": "0000:02:10.0"},))
    assert rendering.usable_on(today, inv) is None
    missing = NetworkView("d/m", ({"type": "sriov", "deviceID": "0000:09:00.0"},))
    assert rendering.usable_on(missing, inv) == "no device 0000:09:00.0"
    anyvf = NetworkView("d/a", ({"type": "sriov"},))
    assert rendering.usable_on(anyvf, inv) is None
    assert rendering.usable_on(anyvf, SriovInventory()) == "no PF with VFs"
    bridge = NetworkView("d/b", ({"type": "bridge"},))
    assert rendering.usable_on(bridge, None) is None


def test_inventory_lists_only_usable_sriov_networks() -> None:
    node = NodeView("n1", {}, _inventory())
    nets = [
        NetworkView("d/b", ({"type": "bridge"},)),
        NetworkView("d/s", ({"type": "sriov", "if0": "enp2s0"},)),
        NetworkView("d/o", ({"type": "sriov", "if0": "enp9s0"},)),
    ]
    data = json.loads(rendering.render(MultusSettings(), node, nets)[rendering.INVENTORY_KEY])
    assert data["networks"] == [{"network": "d/s", "pfs": ["enp2s0"]}]
    assert data["pfs"][0]["name"] == "enp2s0"
    assert data["externallyManaged"] == []


def test_inventory_carries_the_nodes_externally_managed_pfs() -> None:
    """The sriov delegate reads it on the node: no free-VF picking on those PFs."""
    settings = MultusSettings.model_validate(
        {
            "sriov": {"externallyManaged": ["enp2s0"]},
            "nodeOverrides": [
                {
                    "nodeSelector": {"matchLabels": {"dp": "yes"}},
                    "settings": {"sriov": {"externallyManaged": ["0000:0c:00.1", "enp2s0"]}},
                }
            ],
        }
    )
    plain = NodeView("n1", {}, _inventory())
    labelled = NodeView("n2", {"dp": "yes"}, _inventory())
    for node, want in ((plain, ["enp2s0"]), (labelled, ["0000:0c:00.1", "enp2s0"])):
        data = json.loads(rendering.render(settings, node, [])[rendering.INVENTORY_KEY])
        assert data["externallyManaged"] == want
        assert "sriov" not in json.loads(rendering.render(settings, node, [])[rendering.CONF_KEY])


def test_condition_merge_keeps_time_without_transition() -> None:
    want = [conditions.Wanted("Valid", "False", "InvalidConfig", "a: bad")]
    first = conditions.merge(None, want, 1, "T1")
    assert first == [
        {
            "type": "Valid",
            "status": "False",
            "reason": "InvalidConfig",
            "message": "a: bad",
            "lastTransitionTime": "T1",
            "observedGeneration": 1,
        }
    ]
    reworded = [conditions.Wanted("Valid", "False", "InvalidConfig", "b: bad")]
    second = conditions.merge(first, reworded, 2, "T2")
    assert second[0]["lastTransitionTime"] == "T1" and second[0]["message"] == "b: bad"
    assert not conditions.transitioned(first, second, "Valid")
    fixed = [conditions.Wanted("Valid", "True", "ChecksPassed", "all checks passed")]
    third = conditions.merge(second, fixed, 3, "T3")
    assert third[0]["lastTransitionTime"] == "T3"
    assert conditions.transitioned(second, third, "Valid")
    assert conditions.merge(third, fixed, 3, "T9") == third  # nothing changed: no write
    foreign = [*third, {"type": "Other", "status": "True"}]
    assert conditions.merge(foreign, fixed, 3, "T9")[1] == {"type": "Other", "status": "True"}
