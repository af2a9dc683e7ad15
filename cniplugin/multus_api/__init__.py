"""Formats shared by the plugin, the node agent and the operator; depends on pydantic only.

- `objects`: Network (seed), NetworkAttachmentDefinition (NPWG), NodeState, Condition
- `plugins`, `ipam`: delegate plugin and IPAM conf models with their semantic checks
- `settings`: the cluster settings (`settings.yaml`) and the node conf they render to
- `inventory`: a node's SR-IOV inventory
- `problems`: `Problem`, a finding tied to a field path
- `crdgen`: the CRD generator (`python -m multus_api.crdgen crds/`)
"""
