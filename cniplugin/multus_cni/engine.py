"""The meta-plugin's commands: ADD, DEL, CHECK, GC and STATUS over the delegates.

Everything that can be checked is checked before the first delegate runs; ADD
records its plan before acting and undoes what it did on any failure; DEL works from
that record, in reverse, through every delegate, whatever state things are in.
"""

from __future__ import annotations

import os
import time

from . import results, versions
from .attachment import Attachment, PluginCall
from .cache import AttachmentStore, ContainerLock, CorruptRecord
from .environ import CniEnv, check_netns
from .errors import (
    CniError,
    ContainerUnknown,
    IncompatibleVersion,
    InvalidConfig,
    InvalidEnvironment,
    PluginUnavailable,
    TryAgainLater,
)
from .invoke import Delegate, VersionCache, find_plugin
from .logs import log
from .netconf import DelegateNetwork, MultusConf, parse_delegate
from .plan import assign_ifnames
from .strays import kill_stray_adds

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    AfterAdd = Callable[[list[Attachment]], None]


class Engine:
    def __init__(self, env: CniEnv, conf: MultusConf) -> None:
        self.env = env
        self.conf = conf
        self.store = AttachmentStore(conf.cni_dir)
        dirs = [conf.bin_dir] if os.path.isdir(conf.bin_dir) else []
        self.dirs = dirs + [d for d in env.path if d not in dirs]
        self.base_env = self._delegate_env(env.container_id, env.args_raw)
        self.versions = VersionCache(self.store.versions_path)
        runtime_config = conf.raw.get("runtimeConfig")
        self.runtime_config = runtime_config if isinstance(runtime_config, dict) else None

    def _delegate_env(self, container_id: str, args_raw: str) -> dict[str, str]:
        """The runtime's environment as each delegate sees it; GC passes a cached
        attachment's container id and CNI_ARGS, since its own call carries none."""
        env = dict(self.env.environ)
        if container_id:
            env["CNI_CONTAINERID"] = container_id
        if not any(pair.startswith("IgnoreUnknown=") for pair in args_raw.split(";")):
            args_raw = "IgnoreUnknown=1" + (f";{args_raw}" if args_raw else "")
        env["CNI_ARGS"] = args_raw
        env["CNI_PATH"] = ":".join(self.dirs)
        return env

    # ---- planning: nothing runs but VERSION queries (cached per binary) ----

    @staticmethod
    def _where(network: DelegateNetwork, index: int, ifname: str) -> tuple[str, str]:
        """(field prefix for messages, label naming the delegate) of one plugin."""
        where = f"{network.source}.plugins[{index}]." if network.is_list else f"{network.source}."
        return where, f"'{network.plugins[index]['type']}' ({ifname}, {where.rstrip('.')})"

    def _calls(self, network: DelegateNetwork, ifname: str, negotiate: bool) -> list[PluginCall]:
        calls: list[PluginCall] = []
        for index, plugin in enumerate(network.plugins):
            where, label = self._where(network, index, ifname)
            path = find_plugin(str(plugin["type"]), self.dirs, where)
            ipam = plugin.get("ipam")
            if isinstance(ipam, dict) and "type" in ipam:
                # The delegate execs its IPAM plugin from the same dirs: hold that name to
                # the same rules (no directory, non-executable or out-of-dirs symlink).
                find_plugin(str(ipam["type"]), self.dirs, f"{where}ipam.")
            delegate = Delegate(path, self.base_env, self.conf.delegate_timeout, label)
            version = network.cni_version
            if negotiate:
                offered = self.versions.supported(delegate, version)
                if offered is not None:
                    chosen = versions.negotiate(version, offered)
                    if chosen is None:
                        raise IncompatibleVersion(
                            f"{where}cniVersion: plugin {label} supports {', '.join(offered)}, "
                            f"none of which can serve {version}"
                        )
                    version = chosen
            calls.append(PluginCall(plugin, delegate, version))
        return calls

    def plan(self) -> list[Attachment]:
        names = assign_ifnames(self.conf.delegates, self.env.ifname, self.conf.seed_style)
        self.store.prepare()
        attachments = [
            Attachment(network, ifname, self._calls(network, ifname, negotiate=True))
            for network, ifname in zip(self.conf.delegates, names, strict=True)
        ]
        self.versions.save()
        return attachments

    def _from_record(self, record: dict[str, Any], env: dict[str, str]) -> list[Attachment]:
        """The attachments of a cached record; a plugin whose binary is gone keeps its
        place (its DEL fails and is reported) so the others are still undone."""
        attachments: list[Attachment] = []
        for index, entry in enumerate(record["delegates"]):
            cached = f"{record.get('containerId')}/{record.get('ifName')}"
            source = f"cached {cached} delegates[{index}]."
            network = parse_delegate(entry.get("network"), source, self.conf.cni_version, "cached")
            network.master = bool(entry.get("master"))
            ifname = str(entry.get("ifName", ""))
            recorded = entry.get("versions") or []
            calls: list[PluginCall] = []
            for pindex, plugin in enumerate(network.plugins):
                version = recorded[pindex] if pindex < len(recorded) else network.cni_version
                where, label = self._where(network, pindex, ifname)
                try:
                    path = find_plugin(str(plugin["type"]), self.dirs, where)
                except CniError as exc:
                    calls.append(
                        PluginCall(plugin, None, version, problem=f"delegate {label}: {exc.msg}")
                    )
                    continue
                calls.append(
                    PluginCall(
                        plugin,
                        Delegate(path, env, self.conf.delegate_timeout, label),
                        version,
                    )
                )
            runtime_config = entry.get("runtimeConfig")
            network.runtime_config = runtime_config if isinstance(runtime_config, dict) else None
            attachment = Attachment(network, ifname, calls)
            result = entry.get("result")
            attachment.result = result if isinstance(result, dict) else None
            attachments.append(attachment)
        return attachments

    def _record(self, attachments: list[Attachment], state: str) -> dict[str, Any]:
        return {
            "state": state,
            "containerId": self.env.container_id,
            "ifName": self.env.ifname,
            "networkName": self.conf.name,
            "netns": self.env.netns,
            "cniArgs": self.env.args_raw,
            "cniVersion": self.conf.cni_version,
            "runtimeConfig": self.runtime_config,
            "time": time.time(),
            "delegates": [a.to_record() for a in attachments],
        }

    def _runtime_config(self, attachment: Attachment) -> dict[str, Any] | None:
        # kubelet's capability args (portMappings, bandwidth, ...) are the cluster network's;
        # the other attachments carry their own (from the pod's network selection).
        if attachment.master:
            return self.runtime_config
        return attachment.network.runtime_config

    # ---- commands ----

    def add(self, after_add: AfterAdd | None = None) -> dict[str, Any]:
        """ADD every delegate in order; `after_add` (e.g. writing the pod's network-status)
        runs before the final record is written, and its failure undoes everything."""
        check_netns(self.env.netns)
        self._wait_ready()
        attachments = self.plan()
        with self.store.lock(self.env.container_id) as lock:
            self._clear_previous(lock)
            self.store.save(self._record(attachments, "adding"))
            done: list[Attachment] = []
            try:
                for attachment in attachments:
                    done.append(attachment)
                    attachment.add(self.env.netns, self._runtime_config(attachment))
                if after_add is not None:
                    after_add(attachments)
                self.store.save(self._record(attachments, "added"))
            except BaseException as exc:
                # Any failure, Ctrl-C included, undoes what was done. A SIGKILL cannot be
                # caught: the "adding" record written above lets the runtime's DEL finish.
                self._rollback(done, lock, exc)
                raise
        master = next(a for a in attachments if a.master)
        assert master.result is not None
        return results.convert(master.result, self.conf.cni_version)

    def _clear_previous(self, lock: ContainerLock) -> None:
        cid, ifname = self.env.container_id, self.env.ifname
        try:
            record = self.store.load(cid, ifname)
        except CorruptRecord:
            self.store.quarantine(cid, ifname)
            return
        if record is None:
            return
        if record.get("state") == "added":
            raise InvalidEnvironment(
                f"CNI_IFNAME: container {cid} already has {ifname} attached by network "
                f"{record.get('networkName')!r}; DEL it before adding it again"
            )
        log.error(f"undoing an interrupted ADD of {cid}/{ifname} before adding again")
        failures = self._undo(record, self.env.netns)
        if failures:
            raise failures[0]
        self.store.delete(cid, ifname)

    def _rollback(self, done: list[Attachment], lock: ContainerLock, cause: BaseException) -> None:
        failures: list[CniError] = []
        netns = self.env.netns if os.path.exists(self.env.netns) else ""
        for attachment in reversed(done):
            failures += attachment.delete(netns, self._runtime_config(attachment))
        if failures:
            log.error(
                f"ADD failed ({cause}) and rollback left work for DEL: "
                + "; ".join(f.msg for f in failures)
            )
            return  # the "adding" record stays: the runtime's DEL finishes the job
        self.store.delete(self.env.container_id, self.env.ifname)
        if not self.store.has_records(self.env.container_id):
            lock.release_and_remove()

    def _undo(self, record: dict[str, Any], netns: str) -> list[CniError]:
        """DEL every delegate of a cached attachment, in reverse, through failures."""
        container_id = str(record.get("containerId", ""))
        if record.get("state") != "added":
            kill_stray_adds(container_id)
        netns = netns or str(record.get("netns") or "")
        if netns and not os.path.exists(netns):
            netns = ""
        env = self._delegate_env(container_id, str(record.get("cniArgs") or ""))
        runtime_config = record.get("runtimeConfig")
        failures: list[CniError] = []
        for attachment in reversed(self._from_record(record, env)):
            if attachment.master:
                rc = runtime_config if isinstance(runtime_config, dict) else None
            else:
                rc = attachment.network.runtime_config
            failures += attachment.delete(netns, rc)
        return failures

    def delete(self) -> None:
        cid, ifname = self.env.container_id, self.env.ifname
        with self.store.lock(cid) as lock:
            try:
                record = self.store.load(cid, ifname)
            except CorruptRecord:
                self.store.quarantine(cid, ifname)
                record = None
            failures = (
                self._undo(record, self.env.netns)
                if record is not None
                else self._delete_from_conf()
            )
            if failures:
                raise CniError(
                    f"DEL of {cid}/{ifname} left {len(failures)} delegate(s) not cleaned up: "
                    + "; ".join(f.msg for f in failures),
                    code=failures[0].code,
                )
            self.store.delete(cid, ifname)
            if not self.store.has_records(cid):
                lock.release_and_remove()

    def _delete_from_conf(self) -> list[CniError]:
        """No record (never added, or lost): DEL what the conf says would be there."""
        netns = self.env.netns if self.env.netns and os.path.exists(self.env.netns) else ""
        names = assign_ifnames(self.conf.delegates, self.env.ifname, self.conf.seed_style)
        failures: list[CniError] = []
        attachments: list[Attachment] = []
        for network, ifname in zip(self.conf.delegates, names, strict=True):
            try:
                attachments.append(
                    Attachment(network, ifname, self._calls(network, ifname, negotiate=True))
                )
            except CniError as exc:
                failures.append(exc)
        self.versions.save()
        for attachment in reversed(attachments):
            failures += attachment.delete(netns, self._runtime_config(attachment))
        return failures

    def check(self) -> None:
        if not versions.at_least(self.conf.cni_version, "0.4.0"):
            raise IncompatibleVersion(
                f"cniVersion: CHECK needs 0.4.0 or later, the conf says {self.conf.cni_version}"
            )
        if self.conf.raw.get("disableCheck") is True:
            return
        check_netns(self.env.netns)
        cid, ifname = self.env.container_id, self.env.ifname
        with self.store.lock(cid):
            try:
                record = self.store.load(cid, ifname)
            except CorruptRecord as exc:
                raise CniError(
                    f"CHECK of {cid}/{ifname}: the attachment record is corrupt: {exc}"
                ) from None
            if record is None:
                raise ContainerUnknown(f"CHECK of {cid}/{ifname}: no attachment recorded")
            if record.get("state") != "added":
                raise CniError(f"CHECK of {cid}/{ifname}: its ADD never completed")
            for attachment in self._from_record(record, self.base_env):
                attachment.check(self.env.netns, self._runtime_config(attachment))

    def gc(self) -> None:
        valid = self._valid_attachments()
        failures: list[str] = []
        kept: list[dict[str, Any]] = []
        for cid, ifname in list(self.store.keys()):
            with self.store.lock(cid) as lock:
                try:
                    record = self.store.load(cid, ifname)
                except CorruptRecord:
                    continue
                if record is None or record.get("networkName") != self.conf.name:
                    continue
                if (cid, ifname) in valid:
                    kept.append(record)
                    continue
                log.verbose(f"GC: {cid}/{ifname} is not a valid attachment; deleting it")
                undo = self._undo(record, "")
                if undo:
                    failures += [f.msg for f in undo]
                    continue
                self.store.delete(cid, ifname)
                if not self.store.has_records(cid):
                    lock.release_and_remove()
        failures += self._forward_gc(kept)
        if failures:
            raise CniError(f"GC could not clean up everything: {'; '.join(failures)}")

    def _valid_attachments(self) -> set[tuple[str, str]]:
        raw = self.conf.raw
        key = (
            "cni.dev/valid-attachments"
            if "cni.dev/valid-attachments" in raw
            else "cni.dev/attachments"
        )
        entries = raw.get(key, [])
        if not isinstance(entries, list):
            raise InvalidConfig(f"{key}: must be a list of {{containerID, ifname}} objects")
        valid: set[tuple[str, str]] = set()
        for index, entry in enumerate(entries):
            if (
                not isinstance(entry, dict)
                or not isinstance(entry.get("containerID"), str)
                or not isinstance(entry.get("ifname"), str)
            ):
                raise InvalidConfig(
                    f"{key}[{index}]: must be an object with string containerID and ifname"
                )
            valid.add((entry["containerID"], entry["ifname"]))
        return valid

    def _forward_gc(self, kept: list[dict[str, Any]]) -> list[str]:
        """GC to every delegate that speaks 1.1.0, with the attachments still valid for it."""
        failures: list[str] = []
        for network in self.conf.delegates:
            valid = [
                {"containerID": r["containerId"], "ifname": d.get("ifName")}
                for r in kept
                for d in r["delegates"]
                if isinstance(d.get("network"), dict) and d["network"].get("name") == network.name
            ]
            attachment = Attachment(network, "", [])
            try:
                calls = self._calls(network, "", negotiate=True)
            except CniError as exc:
                failures.append(exc.msg)
                continue
            for call in calls:
                if not versions.at_least(call.version, "1.1.0") or call.delegate is None:
                    continue
                payload = attachment.stdin(call, None, None, {"cni.dev/valid-attachments": valid})
                try:
                    call.delegate.call("GC", "", payload)
                except CniError as exc:
                    failures.append(exc.msg)
        self.versions.save()
        return failures

    def status(self) -> None:
        if self.conf.readiness_file and not os.path.exists(self.conf.readiness_file):
            raise PluginUnavailable(
                f"readinessindicatorfile: {self.conf.readiness_file} does not exist; "
                "the cluster network is not ready"
            )
        master = next((d for d in self.conf.delegates if d.master), None)
        if master is None:
            return  # Kubernetes mode with the cluster network in a NAD: readiness says it
        attachment = Attachment(master, "", [])
        for call in self._calls(master, "", negotiate=True):
            if versions.at_least(call.version, "1.1.0") and call.delegate is not None:
                call.delegate.call("STATUS", "", attachment.stdin(call, None, None))
        self.versions.save()

    def _wait_ready(self) -> None:
        path = self.conf.readiness_file
        if not path or os.path.exists(path):
            return
        deadline = time.monotonic() + self.conf.readiness_timeout
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if os.path.exists(path):
                return
        raise TryAgainLater(
            f"readinessindicatorfile: {path} did not appear within "
            f"{self.conf.readiness_timeout:g}s; the cluster network is not ready"
        )
