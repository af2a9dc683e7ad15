"""SR-IOV for multus: the `sriov` CNI delegate, VF discovery and deviceID resolution.

- `main`, `delegate`, `config`, `ipam`: the delegate (console scripts `sriov` and
  `multus-sriov`), exec'd per pod like bridge or macvlan; stdlib plus `multus_cni`'s
  helpers on its hot path (no pydantic, no pyroute2 unless the real NIC is used)
- `sysfs`, `discovery`: the node's PFs and VFs (the inventory document)
- `vfsettings`: VF settings through the PF (pyroute2) or the simulated NIC
- `rtnl`: the few rtnetlink messages an ADD/DEL needs, stdlib only
- `allocation`: which pod holds which VF, and the per-PF/per-VF locks
- `podresources`: kubelet's PodResources gRPC client (long-running side only)
- `settings`: paths and switches from the environment
"""
