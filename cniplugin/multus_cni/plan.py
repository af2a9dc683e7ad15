"""Which delegate gets which interface name: the rulebook's naming rule
(`multus_rules.interfaces`), with its refusal as the plugin's CNI error."""

from __future__ import annotations

from multus_rules import interfaces
from multus_rules.findings import RuleError

from .errors import refusal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .netconf import DelegateNetwork


def assign_ifnames(
    delegates: list[DelegateNetwork], cni_ifname: str, seed_style: bool
) -> list[str]:
    """Each delegate's interface name (InvalidConfig naming the delegate on a clash)."""
    try:
        return interfaces.assign_ifnames(delegates, cni_ifname, seed_style)
    except RuleError as exc:
        raise refusal(exc.finding) from None
