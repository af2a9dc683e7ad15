"""Interface names per delegate: seed (masterplugin, net0...) and v4 (net1...) styles."""

from __future__ import annotations

import pytest

from multus_cni.errors import InvalidConfig
from multus_cni.netconf import DelegateNetwork
from multus_cni.plan import assign_ifnames


def nets(*specs: str) -> list[DelegateNetwork]:
    """'m' = master, 'r:<name>' = requested name, '-' = plain."""
    out = []
    for index, spec in enumerate(specs):
        out.append(
            DelegateNetwork(
                f"n{index}",
                "1.0.0",
                [{"type": "x"}],
                is_list=False,
                source=f"delegates[{index}]",
                master=spec == "m",
                requested_ifname=spec[2:] if spec.startswith("r:") else "",
            )
        )
    return out


@pytest.mark.parametrize(
    ("specs", "seed", "names"),
    [
        (("m",), False, ["eth0"]),
        (("m", "-", "-"), False, ["eth0", "net1", "net2"]),
        (("-", "m", "-"), True, ["net0", "eth0", "net1"]),
        (("-", "-", "m"), True, ["net0", "net1", "eth0"]),
        (("m", "r:data", "-"), False, ["eth0", "data", "net2"]),
        (("-", "r:data", "m", "-"), True, ["net0", "data", "eth0", "net1"]),
        (("r:ignored", "-"), False, ["net0", "net1"]),
    ],
)
def test_names(specs: tuple[str, ...], seed: bool, names: list[str]) -> None:
    delegates = nets(*specs)
    if not any(d.master for d in delegates):
        # the v4 rule without a master flag: the parser makes delegates[0] the master
        delegates[0].master = True
        names = ["eth0", *names[1:]]
    assert assign_ifnames(delegates, "eth0", seed) == names


def test_master_takes_cni_ifname_even_when_it_asks_for_another() -> None:
    delegates = nets("-", "-")
    delegates[0].master = True
    delegates[0].requested_ifname = "other"
    assert assign_ifnames(delegates, "pod0", False) == ["pod0", "net1"]


@pytest.mark.parametrize(
    ("specs", "seed", "match"),
    [
        (("m", "r:eth0"), False, "'eth0' is already used by delegates\\[0\\]"),
        (("m", "r:net2", "-"), False, "'net2' is already used by delegates\\[1\\]"),
        (
            ("-", "r:net0", "m"),
            True,
            "delegates\\[1\\]: .*'net0' is already used by delegates\\[0\\]",
        ),
    ],
)
def test_conflicts_are_invalid_config(specs: tuple[str, ...], seed: bool, match: str) -> None:
    with pytest.raises(InvalidConfig, match=match):
        assign_ifnames(nets(*specs), "eth0", seed)
