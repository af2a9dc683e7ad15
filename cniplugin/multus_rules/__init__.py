"""The rulebook: every rule about a network, written once.

The `multus` plugin calls these rules directly before it runs anything; `multus_api`'s
models and the operator's checks wrap them. So a network the operator calls Valid is
one the plugin attaches, and a refusal names the same field on both sides.

- `names`: plugin and IPAM type names, interface names, network names, Kubernetes
  object and namespace names, absolute paths
- `versions`: the CNI versions we speak
- `cnijson`: JSON as the plugin reads it (no NaN or Infinity, no BOM)
- `findings`: `Finding` (a field path and what is wrong) and `RuleError`
- `confs`: one delegate network: a plugin conf or a conflist
- `objects`: network objects -> confs: the seed `Network` (`plugin` + one conf in
  `args`) and the NPWG `NetworkAttachmentDefinition`
- `multusconf`: the keys of the `"type": "multus"` conf, Kubernetes-mode keys included
- `interfaces`: which network gets which interface name
- `isolation`: which namespaces a pod may take networks from
- `sriov`: which VF an `if0` network may take, which PFs a device plugin owns (the
  sriov delegate picks by it, the operator's `Ready` reports by it)

Standard library only, and cheap to import: the plugin is exec'd per pod. No module
here imports `re`, `json`, `typing`, `enum` or `dataclasses`.
"""
