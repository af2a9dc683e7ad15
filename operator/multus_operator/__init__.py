"""multus-operator: checks network objects, reports their verdicts, renders node ConfigMaps.

Decisions are pure and shared with multusctl (`validation`, `rendering`,
`conditions`, `admission`); the operator's memory of the cluster is `state`, fed by
`watching`; writes go through `kubeapi` from `nodeconfig` (per-node ConfigMaps),
`netstatus` (verdicts) and `events`, driven by `reconciling`; `leadership`,
`webhook`/`webhookconfig`, `metrics`/`view` and `config` do what they say; `handlers`
assembles them under kopf.
"""
