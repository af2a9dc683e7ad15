"""Attachments made by upstream Multus before a node switched to us, undone on DEL.

Upstream Multus (v3 and v4) keeps, per container, the delegates of its ADD in
`<cniDir>/<containerID>`: a JSON list of its DelegateNetConf, each with the delegate's
raw conf base64-encoded in `Bytes` and an optional `ifnameRequest`; the first is the
cluster network (CNI_IFNAME), the others are `net<index>` unless they asked for a name.
libcni (which upstream runs its delegates through, with the same cniDir as its cache)
writes `<cniDir>/results/<network>-<containerID>-<ifname>` (kind `cniCacheV1`: the
result and the capability args) only once that delegate's ADD succeeded. Both default
to /var/lib/cni/multus, as ours does, so a pod that upstream attached is found there.

A delegate with a cached result holds what the result says: DEL fails while its DEL
fails. One without holds nothing known (upstream already ran its own rollback DEL after
a failed ADD): its DEL is best effort.
"""

from __future__ import annotations

import binascii
import os

from . import cnijson, records, versions
from .attachment import Attachment
from .cache import CorruptRecord
from .errors import CniError
from .fsutil import remove
from .logs import log
from .netconf import MAX_CONF_BYTES, DelegateNetwork
from .netns import netns_for_del
from .replay import safe_plugins

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .engine import Engine


class UpstreamDelegate:
    __slots__ = ("cache_path", "capability_args", "ifname", "network", "result")

    def __init__(
        self,
        network: DelegateNetwork,
        ifname: str,
        cache_path: str,
        result: dict[str, Any] | None,
        capability_args: dict[str, Any] | None,
    ) -> None:
        self.network = network
        self.ifname = ifname
        self.cache_path = cache_path
        self.result = result
        self.capability_args = capability_args


class UpstreamRecord:
    __slots__ = ("delegates", "path")

    def __init__(self, path: str, delegates: list[UpstreamDelegate]) -> None:
        self.path = path
        self.delegates = delegates


def _read_json(path: str) -> Any:
    with open(path, "rb") as handle:
        data = handle.read(MAX_CONF_BYTES * 4 + 1)
    return cnijson.loads(data, cnijson.RECORD_DEPTH)


def _network(item: Any, where: str, default_version: str) -> DelegateNetwork:
    if not isinstance(item, dict) or not isinstance(item.get("Bytes"), str):
        raise ValueError(f"{where}: no Bytes (the delegate's conf)")
    conf = cnijson.loads(binascii.a2b_base64(item["Bytes"]))
    if not isinstance(conf, dict):
        raise ValueError(f"{where}: the conf in Bytes is not an object")
    plugins = safe_plugins(conf, where)
    version = conf.get("cniVersion")
    if not isinstance(version, str) or not versions.is_supported(version):
        version = default_version  # e.g. 0.2.0, which we cannot speak; DEL needs little
    name = conf.get("name")
    return DelegateNetwork(
        name if isinstance(name, str) else "",
        version,
        plugins,
        is_list="plugins" in conf,
        source=where,
    )


def load(cni_dir: str, container_id: str, ifname: str) -> UpstreamRecord | None:
    """Upstream's cache of this container, or None when it has none (or an unusable one,
    which is logged: nothing can be done from it)."""
    path = os.path.join(cni_dir, container_id)
    if not os.path.isfile(path):
        return None
    try:
        items = _read_json(path)
        if not isinstance(items, list) or not items:
            raise ValueError("not a list of delegates")
        delegates: list[UpstreamDelegate] = []
        for index, item in enumerate(items):
            where = f"upstream Multus cache {path} [{index}]"
            network = _network(item, where, versions.DEFAULT_VERSION)
            request = item.get("ifnameRequest")
            if index == 0:
                name = ifname  # the cluster network: CNI_IFNAME, as at its ADD
            elif isinstance(request, str) and request:
                name = request
            else:
                name = f"net{index}"
            cache = os.path.join(cni_dir, "results", f"{network.name}-{container_id}-{name}")
            result = capability_args = None
            try:
                cached = _read_json(cache)
            except (OSError, ValueError):
                cached = None
            if isinstance(cached, dict) and isinstance(cached.get("result"), dict):
                result = cached["result"]
                if not versions.is_supported(str(result.get("cniVersion"))):
                    result = {"cniVersion": network.cni_version}  # held, but unreadable
                args = cached.get("capabilityArgs")
                capability_args = args if isinstance(args, dict) else None
            delegates.append(UpstreamDelegate(network, name, cache, result, capability_args))
    except (OSError, ValueError, CorruptRecord, CniError) as exc:
        reason = exc.msg if isinstance(exc, CniError) else str(exc)
        log.error(f"upstream Multus cache {path} cannot be used ({reason}); ignoring it")
        return None
    return UpstreamRecord(path, delegates)


def delete(engine: Engine, record: UpstreamRecord) -> None:
    """DEL upstream's delegates in reverse; fails (keeping its cache) while one that
    succeeded at ADD cannot be DEL'd."""
    log.error(f"no record of ours; undoing upstream Multus's attachment from {record.path}")
    failures: list[CniError] = []
    netns = netns_for_del(engine.env.netns)
    for entry in reversed(record.delegates):
        try:
            attachment = Attachment(
                entry.network, entry.ifname, engine.calls_for(entry.network, entry.ifname)
            )
        except CniError as exc:
            left = [exc]
        else:
            attachment.result = entry.result
            for call in attachment.calls:
                call.state = records.SUCCEEDED
            left = [f.error for f in attachment.delete(netns, entry.capability_args)]
        if left and entry.result is not None:
            failures += left
            continue
        for failure in left:
            log.error(
                f"best-effort DEL of an upstream delegate that never succeeded: {failure.msg}"
            )
        remove(entry.cache_path)
    engine.versions.save()
    if failures:
        raise CniError(
            f"DEL of upstream Multus's attachment ({record.path}) left {len(failures)} "
            "delegate(s) not cleaned up: " + "; ".join(f.msg for f in failures),
            code=failures[0].code,
        )
    remove(record.path)
