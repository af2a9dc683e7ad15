"""Which delegate gets which interface name, decided before anything runs.

Seed semantics (a delegate says `"masterplugin": true`): the master gets CNI_IFNAME,
the others `net0, net1, ...` in file order. Without it (Multus v4), delegates[0] is
the master and delegate i gets `net<i>`. A delegate's requested name always wins.
"""

from __future__ import annotations

from .environ import ifname_problem
from .errors import InvalidConfig
from .netconf import DelegateNetwork


def assign_ifnames(
    delegates: list[DelegateNetwork], cni_ifname: str, seed_style: bool
) -> list[str]:
    names: list[str] = []
    counter = 0
    for index, delegate in enumerate(delegates):
        if delegate.master:
            name = cni_ifname
        elif delegate.requested_ifname:
            name = delegate.requested_ifname
            why = ifname_problem(name)
            if why:
                raise InvalidConfig(f"{delegate.source}.if0name: {name!r} {why}")
        elif seed_style:
            name = f"net{counter}"
            counter += 1
        else:
            name = f"net{index}"
        names.append(name)
    seen: dict[str, str] = {}
    for delegate, name in zip(delegates, names, strict=True):
        if name in seen:
            raise InvalidConfig(
                f"{delegate.source}: interface name {name!r} is already used by {seen[name]}"
            )
        seen[name] = delegate.source
    return names
