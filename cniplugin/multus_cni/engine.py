"""The meta-plugin's commands: ADD, DEL, CHECK, GC and STATUS over the delegates.

Everything that can be checked is checked before the first delegate runs; ADD
records, before each exec, which plugin calls have started, and undoes what it did on
any failure; DEL works from that record alone, in reverse, through every delegate,
and fails only while a call that may still hold something cannot be undone
(`records` says which may be dropped). The caller (`main`) holds the container's lock
around ADD, DEL and CHECK.
"""

from __future__ import annotations

import os
import time

from . import records, replay, results, versions
from .attachment import Attachment, DelFailure, PluginCall
from .cache import AttachmentStore, CorruptRecord
from .errors import (
    CniError,
    ContainerUnknown,
    IncompatibleVersion,
    InvalidConfig,
    InvalidEnvironment,
    PluginMissing,
    PluginUnavailable,
    TryAgainLater,
)
from .invoke import Delegate, VersionCache, find_plugin
from .logs import log
from .netconf import DelegateNetwork, MultusConf, resolve_delegates
from .netns import netns_for_del
from .plan import assign_ifnames
from .strays import kill_stray_adds

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .environ import CniEnv

    AfterAdd = Callable[[list[Attachment]], None]

VALID_ATTACHMENTS_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")


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
        """The runtime's environment as each delegate sees it; DEL and GC of a record
        pass its container id and CNI_ARGS, as its ADD had them."""
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

    def calls_for(self, network: DelegateNetwork, ifname: str) -> list[PluginCall]:
        """The plugin calls of `network` on `ifname`: binaries found, versions negotiated."""
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
        delegates = resolve_delegates(self.conf)
        names = assign_ifnames(delegates, self.env.ifname, self.conf.seed_style)
        self.store.prepare()
        attachments = [
            Attachment(network, ifname, self.calls_for(network, ifname))
            for network, ifname in zip(delegates, names, strict=True)
        ]
        self.versions.save()
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

    # ---- ADD ----

    def add(self, after_add: AfterAdd | None = None) -> dict[str, Any]:
        """ADD every delegate in order; `after_add` (e.g. writing the pod's network-status)
        runs before the final record is written, and its failure undoes everything.
        The caller checked CNI_NETNS and holds the container's lock."""
        self._wait_ready()
        attachments = self.plan()
        self._check_collisions(attachments)
        self._clear_previous()

        def write_progress() -> None:
            self.store.save(self._record(attachments, "adding"))

        try:
            for attachment in attachments:
                attachment.add(self.env.netns, self._runtime_config(attachment), write_progress)
            if after_add is not None:
                after_add(attachments)
            self.store.save(self._record(attachments, "added"))
        except BaseException as exc:
            # Any failure, Ctrl-C included, undoes what was done. A SIGKILL cannot be
            # caught: the record written before each exec lets the runtime's DEL finish.
            self._rollback(attachments, exc)
            raise
        master = next(a for a in attachments if a.master)
        assert master.result is not None
        return results.convert(master.result, self.conf.cni_version)

    def _check_collisions(self, attachments: list[Attachment]) -> None:
        """A second CNI_IFNAME of one container must not plan an interface another of its
        live attachments has: that ADD would fail, and its rollback take the other's."""
        cid = self.env.container_id
        planned = {a.ifname: a for a in attachments}
        for other in self.store.ifnames(cid):
            if other == self.env.ifname:
                continue  # the same attachment: _clear_previous deals with it
            try:
                record = self.store.load(cid, other)
            except CorruptRecord:
                continue  # its own DEL quarantines it
            if record is None:
                continue
            used = {other} | {str(d.get("ifName")) for d in record["delegates"]}
            for ifname in sorted(used & set(planned)):
                where = planned[ifname].network.source
                raise InvalidConfig(
                    f"{where}: interface {ifname!r} of container {cid} is already attached "
                    f"by its attachment {other} (network {record.get('networkName')!r}); "
                    f"CNI_IFNAME {self.env.ifname} cannot plan it again"
                )

    def _clear_previous(self) -> None:
        cid, ifname = self.env.container_id, self.env.ifname
        record = self._load_or_quarantine()
        if record is None:
            return
        if record.get("state") == "added":
            raise InvalidEnvironment(
                f"CNI_IFNAME: container {cid} already has {ifname} attached by network "
                f"{record.get('networkName')!r}; DEL it before adding it again"
            )
        log.error(f"undoing an earlier, unfinished ADD of {cid}/{ifname} before adding again")
        self._undo_record(record, self.env.netns)
        self.store.delete(cid, ifname)

    def _rollback(self, attachments: list[Attachment], cause: BaseException) -> None:
        netns = netns_for_del(self.env.netns)
        failures = self._undo(attachments, netns, self.runtime_config)
        cid, ifname = self.env.container_id, self.env.ifname
        if failures:
            log.error(
                f"ADD of {cid}/{ifname} failed ({cause}) and its rollback left work for DEL: "
                + "; ".join(map(str, failures))
            )
            record = self._record(attachments, "failed")
            self._note_failures(record, failures)
            try:
                self.store.save(record)
            except CniError as exc:
                log.error(f"cannot keep the record of what is left: {exc.msg}")
            return
        self.store.delete(cid, ifname)

    # ---- DEL ----

    def _undo(
        self,
        attachments: list[Attachment],
        netns: str,
        master_runtime_config: dict[str, Any] | None,
    ) -> list[DelFailure]:
        """DEL every attachment in reverse, through failures; what is left held."""
        failures: list[DelFailure] = []
        for attachment in reversed(attachments):
            rc = master_runtime_config if attachment.master else attachment.network.runtime_config
            failures += attachment.delete(netns, rc)
        return failures

    def _replay(self, record: dict[str, Any]) -> list[Attachment]:
        cid, args = str(record.get("containerId", "")), str(record.get("cniArgs") or "")
        env = self._delegate_env(cid, args)
        return replay.attachments(record, self.dirs, env, self.conf.delegate_timeout)

    def _undo_record(self, record: dict[str, Any], netns: str) -> None:
        """DEL what a record says may be held; raise (the record updated) when some of it
        could not be undone."""
        cid, ifname = str(record.get("containerId")), str(record.get("ifName"))
        attachments = self._replay(record)
        if record.get("state") == "adding":
            kill_stray_adds(cid)  # its multus died mid-ADD; its delegates may still run
        runtime_config = record.get("runtimeConfig")
        failures = self._undo(
            attachments,
            # The runtime's CNI_NETNS when it gives one, else the one ADD was given.
            netns_for_del(netns or str(record.get("netns") or "")),
            runtime_config if isinstance(runtime_config, dict) else None,
        )
        if failures:
            record["delegates"] = [a.to_record() for a in attachments]
            self._note_failures(record, failures)
            try:
                self.store.save(record)
            except CniError as exc:
                log.error(f"cannot update the record of {cid}/{ifname}: {exc.msg}")
            raise CniError(
                f"DEL of {cid}/{ifname} left {len(failures)} delegate(s) not cleaned up: "
                + "; ".join(map(str, failures)),
                code=failures[0].error.code,
            )

    @staticmethod
    def _note_failures(record: dict[str, Any], failures: list[DelFailure]) -> None:
        """What `multusctl records` shows of an attachment its DEL keeps failing on."""
        record["delFailures"] = int(record.get("delFailures") or 0) + 1
        record["lastDelError"] = "; ".join(map(str, failures))
        record["lastDelTime"] = time.time()

    def _load_or_quarantine(self) -> dict[str, Any] | None:
        """The record of this call's attachment, after the replay checks; None (and the
        record moved to quarantine/) when it cannot be trusted."""
        cid, ifname = self.env.container_id, self.env.ifname
        try:
            record = self.store.load(cid, ifname)
            if record is not None:
                self._replay(record)
            return record
        except CorruptRecord as exc:
            self.store.quarantine(cid, ifname, str(exc))
            return None

    def delete(self) -> None:
        cid, ifname = self.env.container_id, self.env.ifname
        record = self._load_or_quarantine()
        if record is not None:
            self._undo_record(record, self.env.netns)
            try:
                self.store.delete(cid, ifname)
            except OSError as exc:
                # Everything is undone; only the bookkeeping is stuck (a read-only cniDir).
                log.error(f"DEL of {cid}/{ifname} done, but its record stays: {exc}")
            return
        from . import upstream  # rare: a pod attached before a switch from upstream Multus

        found = upstream.load(self.conf.cni_dir, cid, ifname)
        if found is not None:
            upstream.delete(self, found)
            return
        self._delete_from_conf()

    def _delete_from_conf(self) -> None:
        """No record: by our own bookkeeping nothing is held (a record is written before
        any delegate runs and removed only once nothing is). The conf's delegates are
        still DEL'd, best effort, for a record lost to outside hands; their failures are
        logged, never returned: a DEL that fails for ever over nothing is a pod stuck in
        Terminating."""
        cid, ifname = self.env.container_id, self.env.ifname
        refusal = self.env.refusal or self.conf.refusal
        if refusal:
            log.error(
                f"DEL of {cid}/{ifname}: no record, and ADD refuses this call ({refusal}), "
                "so nothing can be attached; done"
            )
            return
        try:
            delegates = resolve_delegates(self.conf)
            names = assign_ifnames(delegates, ifname, self.conf.seed_style)
        except CniError as exc:
            log.error(f"DEL of {cid}/{ifname}: no record, and the conf cannot run: {exc.msg}")
            return
        netns = netns_for_del(self.env.netns)
        leftovers: list[str] = []
        for network, name in reversed(list(zip(delegates, names, strict=True))):
            try:
                attachment = Attachment(network, name, self.calls_for(network, name))
            except CniError as exc:
                leftovers.append(exc.msg)
                continue
            for call in attachment.calls:
                call.state = records.SUCCEEDED  # unknown: DEL each, as the conf says
            leftovers += map(str, attachment.delete(netns, self._runtime_config(attachment)))
        self.versions.save()
        if leftovers:
            log.error(
                f"DEL of {cid}/{ifname} without a record: best-effort DEL from the conf "
                "failed for: " + "; ".join(leftovers)
            )

    # ---- CHECK ----

    @staticmethod
    def check_wanted(conf: MultusConf) -> bool:
        """Whether CHECK has work to do (False with `disableCheck`); raises when the
        conf's version has no CHECK."""
        if not versions.at_least(conf.cni_version, "0.4.0"):
            raise IncompatibleVersion(
                f"cniVersion: CHECK needs 0.4.0 or later, the conf says {conf.cni_version}"
            )
        return conf.raw.get("disableCheck") is not True

    def check(self) -> None:
        """CHECK every delegate of the record (the caller ran `check_wanted` and checked
        CNI_NETNS)."""
        cid, ifname = self.env.container_id, self.env.ifname
        try:
            record = self.store.load(cid, ifname)
            attachments = self._replay(record) if record is not None else []
        except CorruptRecord as exc:
            raise CniError(
                f"CHECK of {cid}/{ifname}: the attachment record is corrupt: {exc}"
            ) from None
        if record is None:
            raise ContainerUnknown(f"CHECK of {cid}/{ifname}: no attachment recorded")
        if record.get("state") != "added":
            raise CniError(f"CHECK of {cid}/{ifname}: its ADD never completed")
        for attachment in attachments:
            attachment.check(self.env.netns, self._runtime_config(attachment))

    # ---- GC ----

    def gc(self) -> None:
        valid = self._valid_attachments()
        failures: list[str] = []
        kept: list[dict[str, Any]] = []
        for cid, ifname in list(self.store.record_keys()):
            with self.store.lock(cid, required=False) as lock:
                try:
                    record = self.store.load(cid, ifname)
                    if record is not None and record.get("networkName") == self.conf.name:
                        self._replay(record)
                except CorruptRecord as exc:
                    moved = self.store.quarantine(cid, ifname, str(exc))
                    if moved:
                        failures.append(f"record {cid}:{ifname} unreadable ({exc}): {moved}")
                    continue
                if record is None or record.get("networkName") != self.conf.name:
                    continue
                if (cid, ifname) in valid:
                    kept.append(record)
                    continue
                log.verbose(f"GC: {cid}/{ifname} is not a valid attachment; deleting it")
                try:
                    self._undo_record(record, "")
                except CniError as exc:
                    failures.append(exc.msg)
                    continue
                self.store.delete(cid, ifname)
                if not self.store.has_records(cid):
                    lock.release_and_remove()
        failures += self._forward_gc(kept)
        if failures:
            raise CniError(f"GC could not clean up everything: {'; '.join(failures)}")

    def _valid_attachments(self) -> set[tuple[str, str]]:
        """The runtime's list of attachments still in use. Without one, GC would delete
        every attachment of the network: refused (libcni always sends it; `null` is an
        empty list)."""
        raw = self.conf.raw
        key = next((k for k in VALID_ATTACHMENTS_KEYS if k in raw), None)
        if key is None:
            raise InvalidConfig(
                f"{VALID_ATTACHMENTS_KEYS[0]}: missing; GC needs the runtime's list of "
                "attachments still in use, or it would delete all of them"
            )
        entries = raw[key]
        if entries is None:
            entries = []
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
        for network in resolve_delegates(self.conf):
            valid = [
                {"containerID": r["containerId"], "ifname": d.get("ifName")}
                for r in kept
                for d in r["delegates"]
                if isinstance(d.get("network"), dict) and d["network"].get("name") == network.name
            ]
            attachment = Attachment(network, "", [])
            try:
                calls = self.calls_for(network, "")
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

    # ---- STATUS ----

    def status(self) -> None:
        if self.conf.readiness_file and not os.path.exists(self.conf.readiness_file):
            raise PluginUnavailable(
                f"readinessindicatorfile: {self.conf.readiness_file} does not exist; "
                "the cluster network is not ready"
            )
        master = next((d for d in resolve_delegates(self.conf) if d.master), None)
        if master is None:
            return  # Kubernetes mode with the cluster network in a NAD: readiness says it
        attachment = Attachment(master, "", [])
        try:
            calls = self.calls_for(master, "")
        except PluginMissing as exc:
            # The cluster network's plugin is not installed (yet): not ready, not a bad conf.
            raise PluginUnavailable(exc.msg) from None
        for call in calls:
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
