"""The SR-IOV inventory a node reports: its physical functions and their VFs.

`multus-node` writes this document into its NodeState's status; the operator copies
it, plus the networks that can use it, into the node's ConfigMap. Hardware facts only
(`multus_sriov.discovery` produces it): which VF a pod holds stays on the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator


class FieldOrder(NamedTuple):
    """`lesser <= greater` when an object gives both: written once, and derived from it
    both the CRD's CEL rule (the API server's check) and the models' check (offline:
    the operator, `multusctl validate` and `render`)."""

    lesser: str
    greater: str
    message: str

    def cel(self) -> str:
        a, b = self.lesser, self.greater
        return f"!has(self.{a}) || !has(self.{b}) || self.{a} <= self.{b}"

    def holds(self, given: Mapping[str, Any]) -> bool:
        if self.lesser not in given or self.greater not in given:
            return True
        return bool(given[self.lesser] <= given[self.greater])


PF_RULES = (FieldOrder("numVfs", "totalVfs", "numVfs cannot exceed totalVfs"),)


class VirtualFunction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, description="VF index on its PF.")
    pciAddress: str = Field(description="PCI address of the VF, e.g. 0000:02:02.0.")
    netdev: str | None = Field(
        default=None, description="Kernel netdev, absent when bound to DPDK."
    )
    driver: str | None = Field(default=None, description="Bound driver, e.g. iavf or vfio-pci.")
    mac: str | None = Field(default=None, description="The netdev's MAC (else the PF's view).")
    mtu: int | None = Field(default=None, ge=0, description="The netdev's MTU.")
    vlan: int | None = Field(default=None, ge=0, le=4095, description="VLAN set through the PF.")
    spoofchk: bool | None = Field(default=None, description="MAC spoof checking.")
    trust: bool | None = Field(default=None, description="Trusted VF.")
    linkState: Literal["auto", "enable", "disable"] | None = Field(
        default=None, description="VF link state set through the PF."
    )


class PhysicalFunction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="PF netdev name, e.g. enp2s0 (the seed's if0).")
    pciAddress: str = Field(description="PCI address of the PF.")
    vendor: str | None = Field(default=None, description="PCI vendor id, e.g. 8086.")
    device: str | None = Field(default=None, description="PCI device id (the NIC model).")
    driver: str | None = Field(default=None)
    mtu: int | None = Field(default=None, ge=0)
    mac: str | None = Field(default=None)
    linkSpeed: int | None = Field(default=None, ge=0, description="Mbit/s; absent when down.")
    linkType: str | None = Field(default=None, description="ether or infiniband.")
    totalVfs: int = Field(default=0, ge=0, description="sriov_totalvfs.")
    numVfs: int = Field(default=0, ge=0, description="sriov_numvfs: VFs created.")
    vfs: list[VirtualFunction] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> PhysicalFunction:
        given = {key: getattr(self, key) for key in self.model_fields_set}
        for rule in PF_RULES:
            if not rule.holds(given):
                raise ValueError(rule.message)
        return self


class SriovInventory(BaseModel):
    """What SR-IOV hardware one node has."""

    model_config = ConfigDict(extra="forbid")

    pfs: list[PhysicalFunction] = Field(default_factory=list, description="Physical functions.")
    dpdkRebinding: bool | None = Field(
        default=None,
        description=(
            "Whether the node's sriov delegate rebinds a kernel VF's driver for the seed's "
            "dpdk block (multus-node --sriov-dpdk-bind allow); absent: not reported."
        ),
    )

    def pf(self, name: str) -> PhysicalFunction | None:
        return next((pf for pf in self.pfs if pf.name == name), None)

    def vf(self, address: str) -> VirtualFunction | None:
        """The VF with this PCI address, if the node reported it."""
        return next((vf for pf in self.pfs for vf in pf.vfs if vf.pciAddress == address), None)

    def has_pci(self, address: str) -> bool:
        """Whether a PF or one of its VFs has this PCI address."""
        return any(
            pf.pciAddress == address or any(vf.pciAddress == address for vf in pf.vfs)
            for pf in self.pfs
        )
