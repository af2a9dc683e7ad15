"""Which network gets which interface name in the pod, decided before anything runs.

- The master (the cluster network) gets CNI_IFNAME (eth0).
- Seed semantics (a conf delegate says `"masterplugin": true`, or the pod uses the
  seed's `networks` annotation): the others get `net0, net1, ...` in order.
- Multus v4 / NPWG semantics: network *i* (by position) gets `net<i>`.
- A name a network asks for (its conf's `if0name`, the annotation's `interface`)
  always wins over the generated one; two networks with one name are refused.
"""

from __future__ import annotations

from .findings import Finding, RuleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Protocol

    class Network(Protocol):
        """What naming reads of a network (the plugin's DelegateNetwork)."""

        @property
        def master(self) -> bool: ...
        @property
        def requested_ifname(self) -> str: ...
        @property
        def source(self) -> str: ...


def assign_ifnames(
    networks: Sequence[Network],
    cni_ifname: str,
    seed_style: bool,
    reasons: list[str] | None = None,
) -> list[str]:
    """The interface name of each network, in order; RuleError on a duplicate.
    `reasons`, when given, receives why each name was chosen (for `multusctl explain`)."""
    names: list[str] = []
    why: list[str] = []
    counter = 0
    for index, network in enumerate(networks):
        if network.master:
            names.append(cni_ifname)
            why.append("the cluster network: CNI_IFNAME")
        elif network.requested_ifname:
            names.append(network.requested_ifname)
            why.append("asked for by the network")
        elif seed_style:
            names.append(f"net{counter}")
            why.append("seed order: net0, net1, ... after the master")
            counter += 1
        else:
            names.append(f"net{index}")
            why.append(f"position {index}: net<position>")
    seen: dict[str, str] = {}
    for network, name in zip(networks, names, strict=True):
        if name in seen:
            raise RuleError(
                Finding(
                    network.source,
                    f"interface name {name!r} is already used by {seen[name].rstrip(': ')}",
                )
            )
        seen[name] = network.source
    if reasons is not None:
        reasons[:] = why
    return names
