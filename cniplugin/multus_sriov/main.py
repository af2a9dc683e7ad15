"""The `sriov` / `multus-sriov` executable: one CNI call in, one JSON document out."""

from __future__ import annotations

import os

from multus_cni import versions
from multus_cni.environ import read_env
from multus_cni.errors import InvalidConfig
from multus_cni.logs import log
from multus_cni.main import failed, serve
from multus_cni.netconf import check_version, decode
from multus_rules.sriov import SRIOV_TYPES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def run(stdin: bytes, environ: dict[str, str] | None = None) -> tuple[int, dict[str, Any] | None]:
    out_version = versions.LATEST
    env_map = dict(os.environ if environ is None else environ)
    try:
        env = read_env(env_map)
        if env.command == "VERSION":
            return 0, versions.version_answer()
        raw = decode(stdin)
        out_version = check_version(raw.get("cniVersion", versions.DEFAULT_VERSION), "")
        if raw.get("type") not in (None, *SRIOV_TYPES):
            raise InvalidConfig(f"type: {raw.get('type')!r} is not sriov")
        level = raw.get("logLevel")
        path = raw.get("logFile")
        log.configure(
            level if isinstance(level, str) else "error",
            path if isinstance(path, str) and os.path.isabs(path) else "",
            f"sriov {env.command} {env.container_id}/{env.ifname}: ",
        )
        if env.command == "STATUS":
            return 0, None
        from .delegate import Sriov
        from .settings import Settings

        sriov = Sriov(env, raw, Settings(env_map))
        try:
            if env.command == "ADD":
                return 0, sriov.add()
            if env.command == "DEL":
                sriov.delete()
            elif env.command == "CHECK":
                sriov.check()
            elif env.command == "GC":
                sriov.gc()
            return 0, None
        finally:
            sriov.close()
    except Exception as exc:
        return failed(exc, out_version)


def main() -> None:
    serve(run)


if __name__ == "__main__":
    main()
