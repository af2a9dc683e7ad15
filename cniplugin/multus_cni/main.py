"""The `multus` executable: one CNI call in, exactly one JSON document out.

stdout carries the result or the CNI error and nothing else; logs go to stderr or
`logFile`; the exit code is 0 exactly when the call succeeded.
"""

from __future__ import annotations

import os
import sys

from . import cnijson, versions
from .cache import AttachmentStore
from .environ import read_env
from .errors import CniError
from .logs import log
from .netconf import MAX_CONF_BYTES, lenient_conf, parse_conf, resolve_delegates
from .netns import check_netns
from .plan import assign_ifnames

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from .environ import CniEnv
    from .k8s.client import Client
    from .k8s.resolve import DeviceSource
    from .k8s.routes import Netlink
    from .netconf import MultusConf


def run(
    stdin: bytes,
    environ: Mapping[str, str] | None = None,
    *,
    api: Client | None = None,
    netlink: Netlink | None = None,
    devices: DeviceSource | None = None,
) -> tuple[int, dict[str, Any] | None]:
    """Serve one call; (exit code, document to print). VERSION and errors always print;
    DEL/CHECK/GC/STATUS print nothing on success.

    `environ` is the call's environment (default: this process's); `api`, `netlink` and
    `devices` let a serving daemon bring its warm API client, its netlink and its
    device lookups (see k8s.resolve.add).
    """
    out_version = versions.LATEST
    try:
        env = read_env(environ)
        if env.command == "VERSION":
            return 0, versions.version_answer()
        # DEL must work from the record whatever the conf says now (see lenient_conf).
        conf = lenient_conf(stdin) if env.command == "DEL" else parse_conf(stdin, resolve=False)
        out_version = conf.cni_version
        log.configure(
            conf.log_level, conf.log_file, f"{env.command} {env.container_id}/{env.ifname}: "
        )
        if env.command in ("GC", "STATUS"):
            from .engine import Engine

            engine = Engine(env, conf)
            if env.command == "GC":
                engine.gc()
            else:
                engine.status()
            return 0, None
        if env.unaddressable:
            # DEL only (other commands raised): ADD refuses this container id or ifname,
            # so nothing can be attached under it, and it must not name a file.
            log.error(f"DEL: {env.refusal}; ADD refuses this, so nothing is attached; done")
            return 0, None
        return 0, _serve_locked(env, conf, api, netlink, devices)
    except Exception as exc:
        return failed(exc, out_version)


def failed(exc: Exception, out_version: str) -> tuple[int, dict[str, Any]]:
    """A command's failure as the CNI error document, logged: a CniError as it is, anything
    else as an internal error (never a traceback on stdout; it goes to the log)."""
    if isinstance(exc, CniError):
        log.error(f"{exc.msg} (code {exc.code})")
        return 1, exc.to_dict(out_version)
    import traceback

    log.error("unexpected failure:\n" + traceback.format_exc())
    return 1, CniError(f"internal error: {type(exc).__name__}: {exc}").to_dict(out_version)


def _serve_locked(
    env: CniEnv,
    conf: MultusConf,
    api: Client | None = None,
    netlink: Netlink | None = None,
    devices: DeviceSource | None = None,
) -> dict[str, Any] | None:
    """ADD, DEL and CHECK under the container's lock, taken after the checks that need
    no lock (so a refused call writes nothing) and before anything else: a DEL must wait
    for an ADD that is still waiting for the readiness file, or it would find nothing
    and the ADD attach after it. DEL goes on without the lock when it cannot be made (a
    read-only cniDir); the lock file goes with the container's last record."""
    from .engine import Engine

    if env.command == "ADD":
        delegates = resolve_delegates(conf)
        if not conf.k8s:  # (Kubernetes mode names the pod's interfaces once it has read it)
            assign_ifnames(delegates, env.ifname, conf.seed_style)
        check_netns(env.netns)
    elif env.command == "CHECK":
        if not Engine.check_wanted(conf):
            return None
        check_netns(env.netns)
    store = AttachmentStore(conf.cni_dir)
    with store.lock(env.container_id, required=env.command == "ADD") as lock:
        try:
            return _serve(env, conf, api, netlink, devices)
        finally:
            if not store.has_records(env.container_id):
                lock.release_and_remove()


def _serve(
    env: CniEnv,
    conf: MultusConf,
    api: Client | None = None,
    netlink: Netlink | None = None,
    devices: DeviceSource | None = None,
) -> dict[str, Any] | None:
    from .engine import Engine

    if env.command == "ADD":
        if conf.k8s:
            # Kubernetes mode: the pod's networks come from the API. Only ADD reads it;
            # DEL/CHECK/GC work from the cache, API down or pod gone.
            from .k8s.resolve import add

            return add(env, conf, api, netlink, devices)
        return Engine(env, conf).add()
    engine = Engine(env, conf)
    if env.command == "DEL":
        engine.delete()
    else:
        engine.check()
    return None


def serve(handle: Callable[[bytes], tuple[int, dict[str, Any] | None]]) -> None:
    """The process around one CNI call: stdin in, one JSON document out, exit code; shared
    by every plugin executable of ours (`multus`, `sriov`)."""
    try:
        data = (
            b""
            if sys.stdin is None or sys.stdin.closed
            else sys.stdin.buffer.read(MAX_CONF_BYTES + 1)
        )
    except OSError:
        data = b""
    code, document = handle(data)
    if document is not None:
        # Every float in it was parsed by cnijson, which refuses non-finite ones.
        sys.stdout.write(cnijson.dumps(document) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is flushed and every file we wrote is closed and fsynced: skip the
    # interpreter's teardown, a measurable part of a per-pod exec.
    os._exit(code)


def main() -> None:
    serve(run)


if __name__ == "__main__":
    main()
