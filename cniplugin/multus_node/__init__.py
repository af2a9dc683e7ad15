"""multus-node: the node agent (one per node, a DaemonSet pod).

It closes the loop between the operator and kubelet: installs the thick-mode shim and
the node's CNI conf, serves every CNI call of the node on a unix socket with the same
engine the thin plugin runs (`multus_cni`), keeps warm watch caches of the node's pods
and the network objects so an ADD makes no API read, sweeps attachments their runtime
forgot, reports the node's installed plugins in its NodeState, and exposes health and
metrics.

Modules, one job each: `config` (flags and env), `main` (start and stop), `serving`
(the socket), `dispatching` (per-container lanes, the bounded queue), `handling` (one
request through the engine), `watching` (list+watch caches), `apiclient` (the engine's
API client served from those caches), `kubeapi` (the kubernetes client), `installing`
(atomic files), `confsource` (the node's conf from its ConfigMap or generated),
`nodestate` (the NodeState writer), `plugins` (installed plugins), `sweeping`,
`tokens` (the thin plugin's kubeconfig), `netlink` (pyroute2), `metrics`, `logs`.
"""
