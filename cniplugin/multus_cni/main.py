"""The `multus` executable: one CNI call in, exactly one JSON document out.

stdout carries the result or the CNI error and nothing else; logs go to stderr or
`logFile`; the exit code is 0 exactly when the call succeeded.
"""

from __future__ import annotations

import os
import sys

from . import cnijson, versions
from .environ import read_env
from .errors import CniError
from .logs import log
from .netconf import MAX_CONF_BYTES, parse_conf

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def run(stdin: bytes, environ: dict[str, str] | None = None) -> tuple[int, dict[str, Any] | None]:
    """Serve one call; (exit code, document to print). VERSION and errors always print;
    DEL/CHECK/GC/STATUS print nothing on success."""
    out_version = versions.LATEST
    try:
        env = read_env(environ)
        if env.command == "VERSION":
            return 0, {
                "cniVersion": versions.LATEST,
                "supportedVersions": list(versions.SUPPORTED_VERSIONS),
            }
        conf = parse_conf(stdin)
        out_version = conf.cni_version
        log.configure(
            conf.log_level, conf.log_file, f"{env.command} {env.container_id}/{env.ifname}: "
        )
        if env.command == "ADD" and conf.k8s:
            # Kubernetes mode: the pod's networks come from the API. Only ADD reads it;
            # DEL/CHECK/GC work from the cache, API down or pod gone.
            from .k8s.resolve import add

            return 0, add(env, conf)
        from .engine import Engine

        engine = Engine(env, conf)
        if env.command == "ADD":
            return 0, engine.add()
        if env.command == "DEL":
            engine.delete()
        elif env.command == "CHECK":
            engine.check()
        elif env.command == "GC":
            engine.gc()
        else:
            engine.status()
        return 0, None
    except CniError as exc:
        log.error(f"{exc.msg} (code {exc.code})")
        return 1, exc.to_dict(out_version)
    except Exception as exc:  # never a traceback on stdout: report it as a CNI error
        import traceback

        log.error("unexpected failure:\n" + traceback.format_exc())
        return 1, CniError(f"internal error: {type(exc).__name__}: {exc}").to_dict(out_version)


def main() -> None:
    try:
        data = (
            b""
            if sys.stdin is None or sys.stdin.closed
            else sys.stdin.buffer.read(MAX_CONF_BYTES + 1)
        )
    except OSError:
        data = b""
    code, document = run(data)
    if document is not None:
        # Every float in it was parsed by cnijson, which refuses non-finite ones.
        sys.stdout.write(cnijson.dumps(document) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is flushed and every file we wrote is closed and fsynced: skip the
    # interpreter's teardown, a measurable part of a per-pod exec.
    os._exit(code)


if __name__ == "__main__":
    main()
