"""The Kubernetes objects we define or read: Network, NetworkAttachmentDefinition, NodeState.

These models are the source of the CRD schemas (`multus_api.crdgen`): field
descriptions become what `kubectl explain` prints.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .inventory import SriovInventory
from .rules import PluginName

NETWORK_GROUP = "kubernetes.com"
NAD_GROUP = "k8s.cni.cncf.io"
NODESTATE_GROUP = "multus.cni.cncf.io"
VERSION = "v1"


class ObjectMeta(BaseModel):
    """The parts of metadata we read; the rest is kept."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    namespace: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class Condition(BaseModel):
    """A condition in the shape of metav1.Condition."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="Valid or Ready.", max_length=316)
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(
        description="CamelCase reason for the last transition.",
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    )
    message: str = Field(default="", description="Human-readable details.", max_length=32768)
    observedGeneration: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed from."
    )
    lastTransitionTime: str = Field(description="When status last changed (RFC 3339).")


class NetworkStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conditions: list[Condition] | None = Field(
        default=None, description="Valid: the object passed all checks. Ready: usable on nodes."
    )
    observedGeneration: int | None = Field(default=None, ge=0)


class Network(BaseModel):
    """A network a pod can attach to (the seed's kubernetes.com/v1 Network).

    `plugin` is the delegate CNI plugin; `args` a JSON list holding exactly one conf,
    the delegate's (its `type`, if given, must be `plugin`).
    """

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["kubernetes.com/v1"] = Field(description="kubernetes.com/v1.")
    kind: Literal["Network"] = Field(description="Network.")
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    plugin: PluginName = Field(description="Delegate CNI plugin name, e.g. flannel or sriov.")
    args: str | None = Field(
        default=None,
        description="JSON list holding exactly one conf, the delegate's, e.g."
        " '[{\"delegate\": {...}}]'.",
    )
    status: NetworkStatus | None = Field(default=None, description="Set by multus-operator.")


class NetworkAttachmentDefinitionSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    config: str | None = Field(
        default=None,
        description="NetworkAttachmentDefinition config is a JSON-formatted CNI configuration",
    )


class NetworkAttachmentDefinition(BaseModel):
    """NPWG's NetworkAttachmentDefinition (k8s.cni.cncf.io/v1)."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["k8s.cni.cncf.io/v1"]
    kind: Literal["NetworkAttachmentDefinition"]
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: NetworkAttachmentDefinitionSpec = Field(default_factory=NetworkAttachmentDefinitionSpec)
    status: NetworkStatus | None = None


class InstalledPlugin(BaseModel):
    """A CNI plugin executable in the node's plugin directories."""

    model_config = ConfigDict(extra="forbid")

    name: PluginName = Field(description="The plugin's file name: what a conf's type names.")
    supportedVersions: list[str] = Field(
        default_factory=list,
        description="The CNI versions its VERSION command reports; empty when it gave none.",
        max_length=32,
    )


class NodeStateStatus(SriovInventory):
    """What multus-node reports for its node: each section is written by one part of
    the agent (plugins: the plugin scan; pfs: SR-IOV discovery)."""

    observedTime: str | None = Field(default=None, description="When the node last reported.")
    plugins: list[InstalledPlugin] | None = Field(
        default=None,
        description="The CNI plugins installed on the node; absent until multus-node reports them.",
    )

    def plugin_names(self) -> frozenset[str] | None:
        """The installed plugin names, None when the node has not reported them."""
        return None if self.plugins is None else frozenset(p.name for p in self.plugins)


class NodeState(BaseModel):
    """Cluster-scoped, one per node, named after the node; written by multus-node."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal["multus.cni.cncf.io/v1"]
    kind: Literal["NodeState"]
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    status: NodeStateStatus | None = Field(
        default=None, description="The node's SR-IOV inventory and installed CNI plugins."
    )


def kind_of(obj: dict[str, Any]) -> tuple[str, str]:
    """(apiVersion, kind) of a raw object, empty strings when absent."""
    api, kind = obj.get("apiVersion"), obj.get("kind")
    return (api if isinstance(api, str) else "", kind if isinstance(kind, str) else "")
