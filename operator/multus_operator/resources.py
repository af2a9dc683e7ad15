"""The Kubernetes resources the operator reads or writes, one descriptor each.

Every API call names one of these constants (never a path built by hand), so the
requests each code path can make can be listed from the source and checked against
`rbac/rules.yaml` (tests/operator/test_rbac.py does both).
"""

from __future__ import annotations

import dataclasses
from urllib.parse import quote


@dataclasses.dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`plural.group`, as RBAC and error messages name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_version_path(self) -> str:
        """The REST path of its API group version (discovery lists what it serves)."""
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The REST path of the collection (in `namespace`, or all) or of one object."""
        base = self.group_version_path
        if namespace and self.namespaced:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name:
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
        return base


NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap", namespaced=True)
EVENTS = Resource("", "v1", "events", "Event", namespaced=True)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease", namespaced=True)
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True)
VALIDATING_WEBHOOKS = Resource(
    "admissionregistration.k8s.io",
    "v1",
    "validatingwebhookconfigurations",
    "ValidatingWebhookConfiguration",
    namespaced=False,
)
NETWORKS = Resource("kubernetes.com", "v1", "networks", "Network", namespaced=True)
NADS = Resource(
    "k8s.cni.cncf.io",
    "v1",
    "network-attachment-definitions",
    "NetworkAttachmentDefinition",
    namespaced=True,
)
NODESTATES = Resource("multus.cni.cncf.io", "v1", "nodestates", "NodeState", namespaced=False)
