"""The `sriov` delegate's commands: a VF of the node moved into a pod and back.

ADD: choose the VF (by `deviceID`, or a free VF of `if0` under the PF's lock), lock it,
record its original state, set VF properties through the PF (waiting for the netdev to
come back when a MAC set resets the VF), move the netdev in through a temporary netns
and rename it there (no udev races, altnames dropped), set MAC/up, run IPAM unless
`l2enable`. A VF on a DPDK driver is not moved: its PCI address goes into the result
and a device-info file. Any failure undoes every step taken.

DEL: IPAM released, the netdev brought back (from the pod, or found by PCI address when
the netns died) under its original name, MAC and MTU (a derived name when the original
is taken on the host, logged), VF settings restored, record removed. Idempotent.
"""

from __future__ import annotations

import os
import time

from multus_cni import cnijson, results
from multus_cni.errors import (
    CniError,
    ContainerUnknown,
    InvalidConfig,
    InvalidEnvironment,
    TryAgainLater,
)
from multus_cni.fsutil import ensure_dir, remove, write_atomic
from multus_cni.logs import log
from multus_cni.netns import check_netns, netns_for_del
from multus_rules.sriov import (
    NO_NETDEV,
    externally_managed_problem,
    is_externally_managed,
    no_free_vf_problem,
    no_such_vf_problem,
    no_vfs_problem,
    vf_unusable,
)

from . import config, ipam, nodeinventory
from .allocation import Allocations, Lock, is_stale, netns_id
from .sysfs import Sysfs, Vf
from .vfsettings import FRESH, VfSettingsError, for_environment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from multus_cni.environ import CniEnv

    from .nodeinventory import NodeInventory
    from .rtnl import Link, Namespaces, Netlink
    from .settings import Settings
    from .vfsettings import VfSettings

VF_LOCK_WAIT = 10.0


class Sriov:
    def __init__(
        self,
        env: CniEnv,
        raw: dict[str, Any],
        settings: Settings,
        vf_settings: VfSettings | None = None,
    ) -> None:
        self.env = env
        self.raw = raw
        self.settings = settings
        self.sysfs = Sysfs(settings.sysfs_root)
        self.allocs = Allocations(settings.cache_dir)
        self.vfs = vf_settings or for_environment(settings.sim_state)
        self._ns: Namespaces | None = None
        self._host: Netlink | None = None

    # ---- netlink, opened on first use ----

    @property
    def ns(self) -> Namespaces:
        if self._ns is None:
            from .rtnl import Namespaces

            self._ns = Namespaces()
        return self._ns

    @property
    def host(self) -> Netlink:
        if self._host is None:
            from .rtnl import Netlink

            self._host = Netlink()
        return self._host

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
        if self._ns is not None:
            self._ns.close()

    def _ipam_env(self, record: dict[str, Any] | None = None) -> dict[str, str]:
        env = dict(self.env.environ)
        if record is not None:  # a stale attachment: its own ids, its netns is gone
            env["CNI_CONTAINERID"] = str(record["containerId"])
            env["CNI_IFNAME"] = str(record["ifName"])
            env.pop("CNI_NETNS", None)
        return env

    # ---- choosing the VF ----

    def _host_netdev(self, pci: str) -> Link | None:
        """The VF's netdev in the host netns, checked against its PCI address where the
        kernel reports one (a name alone can be reused by another device)."""
        for name in self.sysfs.netdevs(pci):
            link = self.host.link(name)
            if link is not None and (not link.parent_dev or link.parent_dev == pci):
                return link
        return None

    def _wait_netdev(self, vf: Vf) -> Link:
        """Some drivers (iavf) reset a VF on a MAC set: its netdev goes and comes back."""
        deadline = time.monotonic() + self.settings.netdev_wait
        while True:
            link = self._host_netdev(vf.pci)
            if link is not None:
                return link
            if time.monotonic() >= deadline:
                raise TryAgainLater(
                    f"{vf}: its netdev did not come back within {self.settings.netdev_wait:g}s "
                    "after its VF settings were applied"
                )
            time.sleep(0.05)

    def _find_pf(self, conf: config.SriovConf, inventory: NodeInventory | None) -> str:
        """The PCI address of PF `if0`: where the node's inventory says it is (checked
        against sysfs), else found by a walk over the PCI devices."""
        listed = inventory.pf_address(conf.if0) if inventory is not None else None
        if listed and self.sysfs.is_pf(listed) and self.sysfs.pf_name(listed) == conf.if0:
            return listed
        pf_pci = self.sysfs.find_pf(conf.if0)
        if pf_pci is None:
            known = [self.sysfs.pf_name(p) or p for p in self.sysfs.pf_addresses()]
            raise InvalidConfig(
                f"if0: no SR-IOV PF named {conf.if0} on this node (PFs: "
                f"{', '.join(known) or 'none'})"
            )
        return pf_pci

    def _new_record(self, vf: Vf, conf: config.SriovConf) -> dict[str, Any]:
        return {
            "pciAddress": vf.pci,
            "pf": vf.pf_name,
            "pfPciAddress": vf.pf_pci,
            "vfIndex": vf.index,
            "containerId": self.env.container_id,
            "ifName": self.env.ifname,
            "netns": self.env.netns,
            "netnsId": netns_id(self.env.netns),
            "network": conf.name,
            "state": "adding",
            "time": time.time(),
            "conf": self.raw,
            "dpdk": vf.dpdk,
            "original": {},
        }

    def _take_by_pci(self, conf: config.SriovConf) -> tuple[Vf, Lock, dict[str, Any]]:
        pci = conf.device_id
        vf = self.sysfs.vf(pci)
        if vf is None:
            what = "is not a VF (no physfn)" if self.sysfs.exists(pci) else "does not exist"
            raise InvalidConfig(f"deviceID: PCI device {pci} {what} under {self.sysfs.devices}")
        if conf.if0 and vf.pf_name != conf.if0:
            raise InvalidConfig(
                f"deviceID: VF {pci} belongs to PF {vf.pf_name or vf.pf_pci}, not if0 {conf.if0}"
            )
        lock = self.allocs.vf_lock(pci, VF_LOCK_WAIT)
        record, holder = self._claim(vf, conf, lock)
        if record is None:
            if holder is not None:
                raise TryAgainLater(
                    f"deviceID: VF {pci} is still attached to container "
                    f"{holder.get('containerId')} as {holder.get('ifName')} (netns "
                    f"{holder.get('netns')}): its DEL has not run yet; not taking it"
                )
            raise TryAgainLater(
                f"deviceID: VF {pci} has no netdev in the host network namespace: another "
                "pod or plugin still holds it; not taking it"
            )
        return vf, lock, record

    def _claim(
        self, vf: Vf, conf: config.SriovConf, lock: Lock
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """With the VF's lock held: (its new allocation record, None), or (None, the live
        record of the pod that holds it), or (None, None) when its netdev is not on the
        host (a plugin other than us holds it); the lock is released unless claimed. A
        stale record is reclaimed first."""
        try:
            record, holder = self._claim_locked(vf, conf)
        except BaseException:
            lock.release()
            raise
        if record is None:
            lock.release()
        return record, holder

    def _claim_locked(
        self, vf: Vf, conf: config.SriovConf
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        record = self.allocs.load(vf.pci)
        if record is not None:
            if not is_stale(record):
                return None, record
            self._reclaim(record)
        if not vf.dpdk and self._host_netdev(vf.pci) is None:
            return None, None
        record = self._new_record(vf, conf)
        self.allocs.save(record)
        return record, None

    def _pick_free(self, conf: config.SriovConf) -> tuple[Vf, Lock, dict[str, Any]]:
        inventory = nodeinventory.load(self.settings.inventory)
        pf_pci = self._find_pf(conf, inventory)
        if inventory is not None and is_externally_managed(
            conf.if0, pf_pci, inventory.externally_managed
        ):
            raise InvalidConfig(
                f"if0: {externally_managed_problem(conf.if0, pf_pci)} (externallyManaged in "
                f"{inventory.path})"
            )
        vfs = self.sysfs.vfs(pf_pci)
        if conf.vf_index is not None:
            vfs = [vf for vf in vfs if vf.index == conf.vf_index]
            if not vfs:
                raise InvalidConfig(f"vf: {no_such_vf_problem(conf.if0, conf.vf_index)}")
        if not vfs:
            raise InvalidConfig(f"if0: {no_vfs_problem(conf.if0)}")
        pf_lock = self.allocs.pf_lock(pf_pci)
        pf_lock.acquire(None)
        skipped: dict[str, list[str]] = {}
        try:
            for vf in vfs:
                unusable = vf_unusable(
                    vf.driver,
                    vf.netdev,
                    conf.dpdk is not None,
                    self.settings.allow_driver_binding,
                )
                if unusable is not None:
                    skipped.setdefault(unusable, []).append(vf.pci)
                    continue
                lock = self.allocs.try_vf_lock(vf.pci)
                if lock is None:
                    skipped.setdefault("busy with another ADD or DEL", []).append(vf.pci)
                    continue
                record, holder = self._claim(vf, conf, lock)
                if record is None:
                    why = "attached to pods" if holder else NO_NETDEV
                    skipped.setdefault(why, []).append(vf.pci)
                    continue
                return vf, lock, record
        finally:
            pf_lock.release()
        raise TryAgainLater(f"if0: {no_free_vf_problem(conf.if0, len(vfs), skipped)}")

    # ---- ADD ----

    def add(self) -> dict[str, Any]:
        conf = config.parse(self.raw)
        check_netns(self.env.netns)
        self.allocs.prepare()
        existing = self.allocs.find(self.env.container_id, self.env.ifname)
        if existing is not None:
            if existing.get("state") == "added":
                raise InvalidEnvironment(
                    f"CNI_IFNAME: container {self.env.container_id} already has "
                    f"{self.env.ifname} (VF {existing['pciAddress']}); DEL it first"
                )
            with self.allocs.vf_lock(str(existing["pciAddress"]), VF_LOCK_WAIT):
                log.error(f"undoing an interrupted ADD of VF {existing['pciAddress']} first")
                self._release(existing, self.env.netns)
        if conf.device_id:
            vf, lock, record = self._take_by_pci(conf)
        else:
            vf, lock, record = self._pick_free(conf)
        with lock:
            try:
                result = self._attach(conf, vf, record)
            except BaseException as exc:
                failures = self._release(record, self.env.netns)
                if failures:
                    log.error(f"ADD failed ({exc}); undo left work for DEL: {'; '.join(failures)}")
                raise
            record["state"] = "added"
            record["result"] = result
            self.allocs.save(record)
        return results.convert(result, conf.cni_version)

    def _attach(self, conf: config.SriovConf, vf: Vf, record: dict[str, Any]) -> dict[str, Any]:
        original: dict[str, Any] = record["original"]
        dpdk = vf.dpdk
        if conf.dpdk is not None and not dpdk:
            self._bind_dpdk(conf, vf, record)
            dpdk = True
        link = None if dpdk else self._host_netdev(vf.pci)
        if not dpdk and link is None:
            raise TryAgainLater(f"{vf}: its netdev is not in the host network namespace")
        if link is not None:
            original.update(name=link.name, mac=link.mac, mtu=link.mtu, up=link.up)
        if conf.wanted:
            try:
                now = self.vfs.read(vf.pf_name).get(vf.index, FRESH)
            except VfSettingsError as exc:
                raise CniError(str(exc), code=5) from None
            original["vf"] = {key: now.get(key, FRESH[key]) for key in conf.wanted}
        # What to restore is on disk before anything changes, with what may be done marked
        # done already: restoring settings never applied, or an IPAM DEL without an ADD,
        # is harmless, and one write less per ADD (each is two fsyncs).
        record["vfApplied"] = bool(conf.wanted)
        record["ipam"] = conf.ipam is not None
        self.allocs.save(record)
        if conf.wanted:
            try:
                self.vfs.apply(vf.pf_name, vf.index, conf.wanted)
            except VfSettingsError as exc:
                # The NIC refused: put back what part of it may have taken, once, here, so
                # the undo does not fail the same way and keep the VF for ever.
                try:
                    self.vfs.apply(vf.pf_name, vf.index, original["vf"])
                except VfSettingsError as again:
                    log.error(f"{vf}: restoring its VF settings after a refusal: {again}")
                record["vfApplied"] = False
                raise CniError(str(exc), code=5) from None
            if link is not None and "mac" in conf.wanted:
                link = self._wait_netdev(vf)
        result: dict[str, Any] = {"cniVersion": "1.1.0", "interfaces": [], "ips": [], "dns": {}}
        iface: dict[str, Any] = {
            "name": self.env.ifname,
            "sandbox": self.env.netns,
            "pciID": vf.pci,
        }
        if link is not None:
            iface["mac"] = self._move_in(link, conf)
        result["interfaces"].append(iface)
        if conf.ipam is not None:
            got = ipam.add(self.raw, self._ipam_env(), conf.cni_version)
            for ip in got.get("ips") or []:
                ip["interface"] = 0
            result["ips"] = got.get("ips") or []
            if got.get("routes"):
                result["routes"] = got["routes"]
            if got.get("dns"):
                result["dns"] = got["dns"]
            if link is not None:
                with self._in_pod() as pod:
                    pod_link = pod.link(self.env.ifname)
                    assert pod_link is not None
                    ipam.configure(pod, pod_link.index, result)
        self._write_device_info(vf, conf)
        return result

    def _pod_fd(self) -> int:
        from .rtnl import open_netns

        return open_netns(self.env.netns)

    def _in_pod(self) -> Netlink:
        """A netlink socket acting in the pod's netns (it keeps that netns by itself)."""
        pod_fd = self._pod_fd()
        try:
            return self.ns.netlink_in(pod_fd)
        finally:
            os.close(pod_fd)

    def _move_in(self, link: Link, conf: config.SriovConf) -> str:
        """Host -> temporary netns (rename there) -> pod; the pod-side MAC."""
        ifname = self.env.ifname
        pod_fd = self._pod_fd()
        tmp_fd = -1
        try:
            with self.ns.netlink_in(pod_fd) as pod:
                if pod.link(ifname) is not None:
                    raise InvalidEnvironment(
                        f"CNI_IFNAME: {ifname} already exists in the pod's netns {self.env.netns}"
                    )
                tmp_fd = self.ns.temporary()
                if link.up:
                    self.host.set_link(link.index, up=False)
                self.host.set_link(link.index, netns_fd=tmp_fd)
                with self.ns.netlink_in(tmp_fd) as tmp:
                    moved = tmp.link(link.name)
                    assert moved is not None
                    tmp.drop_altnames(moved)
                    tmp.set_link(moved.index, name=ifname, mac=conf.wanted.get("mac"))
                    tmp.set_link(moved.index, netns_fd=pod_fd)
                inside = pod.link(ifname)
                assert inside is not None
                pod.set_link(inside.index, up=True)
                inside = pod.link(ifname)
                assert inside is not None
                return inside.mac
        finally:
            os.close(pod_fd)
            if tmp_fd >= 0:
                os.close(tmp_fd)

    def _bind_dpdk(self, conf: config.SriovConf, vf: Vf, record: dict[str, Any]) -> None:
        assert conf.dpdk is not None
        if not self.settings.allow_driver_binding:
            raise InvalidConfig(
                f"dpdk: rebinding {vf} to {conf.dpdk['dpdk_driver']} is off on this node; it "
                "changes host drivers, so a node admin must opt in (MULTUS_SRIOV_DPDK_BIND=allow)"
            )
        record["original"]["driver"] = vf.driver
        record["rebound"] = conf.dpdk["kernel_driver"]
        self.allocs.save(record)
        try:
            self.sysfs.bind_driver(vf.pci, conf.dpdk["dpdk_driver"])
        except OSError as exc:
            raise CniError(
                f"dpdk: binding {vf} to {conf.dpdk['dpdk_driver']} failed: {exc}", code=5
            ) from None
        now = self.sysfs.driver(vf.pci)
        if now != conf.dpdk["dpdk_driver"]:
            raise CniError(
                f"dpdk: {vf} is on driver {now} after binding it to {conf.dpdk['dpdk_driver']}",
                code=5,
            )

    def _device_info_path(self, record_or_conf: dict[str, Any]) -> str:
        runtime = record_or_conf.get("runtimeConfig")
        given = runtime.get("CNIDeviceInfoFile") if isinstance(runtime, dict) else None
        if isinstance(given, str) and os.path.isabs(given):
            return given
        cid = self.env.container_id
        return os.path.join(self.settings.devinfo_dir, f"sriov-{cid}-{self.env.ifname}.json")

    def _write_device_info(self, vf: Vf, conf: config.SriovConf) -> None:
        """NPWG device-info: how the pod's app finds its device (a DPDK VF's only trace)."""
        path = self._device_info_path(self.raw)
        doc = {
            "type": "pci",
            "version": "1.1.0",
            "pci": {"pci-address": vf.pci, "pf-pci-address": vf.pf_pci},
        }
        try:
            ensure_dir(os.path.dirname(path), 0o755)
            write_atomic(path, cnijson.dumps(doc).encode(), mode=0o644)
        except OSError as exc:
            raise CniError(f"device-info file {path}: {exc.strerror}", code=5) from None

    # ---- undoing: the one path for DEL, a failed ADD and a reclaimed stale record ----

    def _reclaim(self, record: dict[str, Any]) -> None:
        log.error(
            f"VF {record['pciAddress']}: its pod (container {record.get('containerId')}, netns "
            f"{record.get('netns')}) is gone without a DEL; reclaiming it"
        )
        failures = self._release(record, "", stale=True)
        if failures:
            raise TryAgainLater(
                f"VF {record['pciAddress']}: reclaiming it from a gone pod failed: "
                + "; ".join(failures)
            )

    def _release(self, record: dict[str, Any], netns: str, stale: bool = False) -> list[str]:
        """Undo everything `record` says was (or may have been) done; what failed."""
        failures: list[str] = []
        conf = record.get("conf")
        conf_raw: dict[str, Any] = conf if isinstance(conf, dict) else {}
        if record.get("ipam") and conf_raw.get("ipam"):
            try:
                env = self._ipam_env(record if stale else None)
                ipam.delete(conf_raw, env, config.cni_version(conf_raw))
            except CniError as exc:
                failures.append(exc.msg)
        original = record.get("original") or {}
        if original.get("name") and not record.get("dpdk"):
            try:
                self._bring_back(record, netns)
            except (CniError, OSError) as exc:
                failures.append(f"VF {record['pciAddress']} netdev: {exc}")
        if record.get("rebound") and original.get("driver"):
            try:
                self.sysfs.bind_driver(str(record["pciAddress"]), str(original["driver"]))
            except OSError as exc:
                failures.append(f"rebinding {record['pciAddress']} to {original['driver']}: {exc}")
        if record.get("vfApplied") and original.get("vf"):
            try:
                self.vfs.apply(str(record["pf"]), int(record["vfIndex"]), dict(original["vf"]))
            except VfSettingsError as exc:
                failures.append(str(exc))
        if not stale:
            remove(self._device_info_path(conf_raw))
        if not failures:
            self.allocs.delete(str(record["pciAddress"]))
        return failures

    def _bring_back(self, record: dict[str, Any], netns: str) -> None:
        original = record["original"]
        pci = str(record["pciAddress"])
        tmp_fd = self.ns.temporary()
        try:
            if not self._out_of_pod(record, netns, tmp_fd) and not self._off_host(record, tmp_fd):
                return
            with self.ns.netlink_in(tmp_fd) as tmp:
                candidates = [link for link in tmp.links() if link.name != "lo"]
                if not candidates:
                    return
                link = candidates[0]
                name = self._free_host_name(str(original["name"]), pci)
                tmp.set_link(
                    link.index,
                    name=name,
                    mac=original.get("mac") or None,
                    mtu=original.get("mtu") or None,
                )
                tmp.set_link(link.index, netns_fd=self.ns.home)
            back = self.host.link(name)
            if back is not None and original.get("up"):
                self.host.set_link(back.index, up=True)
        finally:
            os.close(tmp_fd)

    def _out_of_pod(self, record: dict[str, Any], netns: str, tmp_fd: int) -> bool:
        """Move the VF's netdev from its pod (when `netns` is still the netns it was
        attached in) into the temporary netns `tmp_fd`; whether it was there."""
        from .rtnl import open_netns, same_netns

        now = netns_id(netns) if netns else None
        if now is None or now != record.get("netnsId"):
            return False
        pod_fd = open_netns(netns)
        try:
            if same_netns(pod_fd, "/proc/self/ns/net"):
                return False
            with self.ns.netlink_in(pod_fd) as pod:
                inside = pod.link(str(record["ifName"]))
                if inside is None:
                    return False
                pod.set_link(inside.index, up=False)
                pod.set_link(inside.index, netns_fd=tmp_fd)
                return True
        finally:
            os.close(pod_fd)

    def _off_host(self, record: dict[str, Any], tmp_fd: int) -> bool:
        """Killed mid-move: the temporary netns died with that process, so the kernel
        gave a real VF back to the host, under whatever name it had. Move it into the
        temporary netns `tmp_fd` unless it is back as it was; whether it was moved."""
        original = record["original"]
        pci = str(record["pciAddress"])
        link = self._find_on_host(pci)
        if link is None:
            log.error(
                f"VF {pci}: its netdev is neither in the pod nor on the host "
                "(already restored, or gone with its netns); VF settings restored"
            )
            return False
        if link.name == original["name"] and link.mac == original.get("mac"):
            return False  # never moved, or already back
        self.host.set_link(link.index, up=False)
        self.host.set_link(link.index, netns_fd=tmp_fd)
        return True

    def _find_on_host(self, pci: str) -> Link | None:
        """Where sysfs says, else any host link the kernel says is that device's."""
        found = self._host_netdev(pci)
        return found or next((link for link in self.host.links() if link.parent_dev == pci), None)

    def _free_host_name(self, wanted: str, pci: str) -> str:
        if self.host.link(wanted) is None:
            return wanted
        base = "sriov" + pci[5:].replace(":", "").replace(".", "")
        name = base
        for n in range(1, 100):
            if self.host.link(name) is None:
                break
            name = f"{base[:12]}-{n}"
        log.error(
            f"VF {pci}: its original name {wanted} is taken on the host; keeping it as {name}"
        )
        return name

    # ---- DEL, CHECK, GC ----

    def delete(self) -> None:
        record = self.allocs.find(self.env.container_id, self.env.ifname)
        if record is None:
            self._release_ipam_without_record()
            return
        with self.allocs.vf_lock(str(record["pciAddress"]), VF_LOCK_WAIT * 3):
            current = self.allocs.load(str(record["pciAddress"]))
            if current is None or current.get("containerId") != self.env.container_id:
                return  # a concurrent DEL finished it
            # an unmounted or host netns path is no pod's: look for the VF on the host
            failures = self._release(current, netns_for_del(self.env.netns))
        if failures:
            raise CniError(
                f"DEL of VF {record['pciAddress']} ({self.env.container_id}/{self.env.ifname}) "
                f"left work; the record is kept for the next DEL: {'; '.join(failures)}",
                code=11,
            )

    def _release_ipam_without_record(self) -> None:
        """No record: nothing of ours is attached, but the IPAM plugin may still hold a
        lease (a record lost with its cache dir); its DEL is idempotent."""
        ipam_conf = self.raw.get("ipam")
        if isinstance(ipam_conf, dict) and isinstance(ipam_conf.get("type"), str):
            if self.raw.get("l2enable") is True:
                return
            try:
                ipam.delete(self.raw, self._ipam_env(), config.cni_version(self.raw))
            except CniError as exc:
                log.error(f"IPAM DEL without an allocation record failed: {exc.msg}")

    def check(self) -> None:
        record = self.allocs.find(self.env.container_id, self.env.ifname)
        if record is None or record.get("state") != "added":
            raise ContainerUnknown(
                f"CHECK of {self.env.container_id}/{self.env.ifname}: no VF attached"
            )
        wanted = config.parse(record["conf"]).wanted if isinstance(record.get("conf"), dict) else {}
        if wanted:
            try:
                now = self.vfs.read(str(record["pf"])).get(int(record["vfIndex"]), FRESH)
            except VfSettingsError as exc:
                raise CniError(str(exc), code=5) from None
            drift = {k: now.get(k) for k, v in wanted.items() if now.get(k) != v}
            if drift:
                raise CniError(
                    f"CHECK: VF {record['pciAddress']} settings changed since ADD: "
                    + ", ".join(f"{k} is {v!r}, ADD set {wanted[k]!r}" for k, v in drift.items())
                )
        if record.get("dpdk"):
            return
        check_netns(self.env.netns)
        with self._in_pod() as pod:
            link = pod.link(self.env.ifname)
        if link is None:
            raise CniError(
                f"CHECK: VF {record['pciAddress']} ({self.env.ifname}) is missing from the pod"
            )
        iface = ((record.get("result") or {}).get("interfaces") or [{}])[0]
        if iface.get("mac") and iface["mac"] != link.mac:
            raise CniError(
                f"CHECK: {self.env.ifname} has MAC {link.mac}, ADD gave it {iface['mac']}"
            )

    def gc(self) -> None:
        valid_raw = self.raw.get("cni.dev/valid-attachments", self.raw.get("cni.dev/attachments"))
        valid = {
            (str(v.get("containerID")), str(v.get("ifname")))
            for v in (valid_raw if isinstance(valid_raw, list) else [])
            if isinstance(v, dict)
        }
        failures: list[str] = []
        for record in self.allocs.all():
            key = (str(record.get("containerId")), str(record.get("ifName")))
            if record.get("network") != self.raw.get("name") or key in valid:
                continue
            with self.allocs.vf_lock(str(record["pciAddress"]), VF_LOCK_WAIT):
                failures += self._release(record, str(record.get("netns") or ""), stale=True)
        if failures:
            raise CniError("GC could not release every VF: " + "; ".join(failures))
