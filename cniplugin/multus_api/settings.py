"""Cluster-wide multus settings (`settings.yaml` in the `multus-settings` ConfigMap).

Applied by the cluster's admin, read by the operator, which renders each node's
`00-multus.conf` from them. Per-node overrides are selected by node labels.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from multus_rules.multusconf import (
    DEFAULT_GLOBAL_NAMESPACES,
    DEFAULT_MULTUS_NAMESPACE,
    DEFAULT_SYSTEM_NAMESPACES,
)

from .nodeconf import SHIM_TYPE, THIN_TYPE
from .rules import CniVersion, ConfPath, LogLevel, Namespace, NetworkName

__all__ = ["MultusSettings", "multus_conf"]


class LabelSelectorRequirement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class LabelSelector(BaseModel):
    """metav1.LabelSelector; an empty selector matches every node."""

    model_config = ConfigDict(extra="forbid")

    matchLabels: dict[str, str] = Field(default_factory=dict)
    matchExpressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.matchLabels.items()):
            return False
        for req in self.matchExpressions:
            present = req.key in labels
            if req.operator == "Exists" and not present:
                return False
            if req.operator == "DoesNotExist" and present:
                return False
            if req.operator == "In" and labels.get(req.key) not in req.values:
                return False
            if req.operator == "NotIn" and present and labels[req.key] in req.values:
                return False
        return True


class NodeOverride(BaseModel):
    """Settings for the nodes a selector picks; later overrides win."""

    model_config = ConfigDict(extra="forbid")

    nodeSelector: LabelSelector = Field(default_factory=LabelSelector)
    settings: dict[str, Any] = Field(default_factory=dict)


class SriovSettings(BaseModel):
    """How the sriov delegate may use each node's PFs."""

    model_config = ConfigDict(extra="forbid")

    externallyManaged: list[str] = Field(
        default_factory=list,
        description=(
            "PFs (netdev names or PCI addresses) whose VFs a device plugin or DRA driver hands "
            "out: the sriov delegate never picks a free VF of them (if0); networks there name "
            "their VF by deviceID (the NAD's resourceName). Per node through nodeOverrides."
        ),
    )


class MultusSettings(BaseModel):
    """Everything that shapes a node's `00-multus.conf` (Multus v4 key names)."""

    model_config = ConfigDict(extra="forbid")

    cniVersion: CniVersion = "1.0.0"
    name: NetworkName = "multus-cni-network"
    mode: Literal["thin", "thick"] = Field(
        default="thick", description="thick: a shim forwards to multus-node; thin: in-process."
    )
    kubeconfig: ConfPath | None = Field(
        default="/etc/cni/net.d/multus.d/multus.kubeconfig",
        description="Kubeconfig path on the nodes; null for conf-file mode.",
    )
    clusterNetwork: str | None = Field(
        default=None, description="The cluster (eth0) network: object name or conf path."
    )
    defaultNetworks: list[str] = Field(default_factory=list)
    delegates: list[dict[str, Any]] | None = Field(
        default=None, description="Seed form: inline delegate confs instead of clusterNetwork."
    )
    namespaceIsolation: bool = False
    # The plugin's own default for a conf without the key (one rule, whoever writes it).
    globalNamespaces: list[Namespace] = Field(
        default_factory=lambda: list(DEFAULT_GLOBAL_NAMESPACES)
    )
    systemNamespaces: list[Namespace] = Field(
        default_factory=lambda: list(DEFAULT_SYSTEM_NAMESPACES)
    )
    multusNamespace: Namespace = DEFAULT_MULTUS_NAMESPACE
    logLevel: LogLevel = "error"
    logFile: ConfPath | None = None
    readinessindicatorfile: ConfPath | None = None
    daemonSocketDir: ConfPath = "/run/multus"
    confDir: ConfPath | None = None
    cniDir: ConfPath | None = None
    binDir: ConfPath | None = None
    sriov: SriovSettings = Field(default_factory=SriovSettings)
    nodeOverrides: list[NodeOverride] = Field(default_factory=list)

    def for_node(self, labels: dict[str, str]) -> MultusSettings:
        """The settings one node gets: base plus every matching override, in order."""
        merged = self.model_dump(exclude={"nodeOverrides"}, exclude_unset=False)
        changed = False
        for override in self.nodeOverrides:
            if override.nodeSelector.matches(labels):
                merged.update(override.settings)
                changed = True
        return MultusSettings.model_validate(merged) if changed else self


def multus_conf(settings: MultusSettings) -> dict[str, Any]:
    """The `"type": "multus"` (thin) or `"multus-py-shim"` (thick) conf for one node.

    The thick conf carries the same keys as the thin one: the shim ignores them and
    multus-node, which reads this file too, needs them.
    """
    conf: dict[str, Any] = {
        "cniVersion": settings.cniVersion,
        "name": settings.name,
        "type": THIN_TYPE if settings.mode == "thin" else SHIM_TYPE,
    }
    if settings.mode == "thick":
        conf["daemonSocketDir"] = settings.daemonSocketDir
    if settings.kubeconfig:
        conf["kubeconfig"] = settings.kubeconfig
    if settings.delegates is not None:
        conf["delegates"] = settings.delegates
    if settings.clusterNetwork:
        conf["clusterNetwork"] = settings.clusterNetwork
    if settings.defaultNetworks:
        conf["defaultNetworks"] = settings.defaultNetworks
    if settings.namespaceIsolation:
        conf["namespaceIsolation"] = True
    if settings.namespaceIsolation or settings.globalNamespaces:
        # Multus v4 reads globalNamespaces as one comma-separated string. Rendered even
        # without isolation, so the plugin judges what the settings say.
        conf["globalNamespaces"] = ",".join(settings.globalNamespaces)
    conf["systemNamespaces"] = settings.systemNamespaces
    conf["multusNamespace"] = settings.multusNamespace
    conf["logLevel"] = settings.logLevel
    for key in ("logFile", "readinessindicatorfile", "confDir", "cniDir", "binDir"):
        value = getattr(settings, key)
        if value:
            conf[key] = value
    return conf
