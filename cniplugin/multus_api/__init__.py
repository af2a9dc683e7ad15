"""Formats shared by the node agent, the operator and multusctl; depends on the rulebook
(`multus_rules`) and pydantic only.

- `objects`: Network (seed), NetworkAttachmentDefinition (NPWG), NodeState, Condition
- `plugins`, `ipam`: delegate plugin and IPAM conf models with their semantic checks
- `settings`: the cluster settings (`settings.yaml`) and the node conf they render to
- `inventory`: a node's SR-IOV inventory
- `problems`: `Problem`, a finding tied to a field path
- `rules`: the rulebook's rules as pydantic types (the models wrap them, never restate them)
- `crdgen`: the CRD generator (`python -m multus_api.crdgen crds/`)
"""
