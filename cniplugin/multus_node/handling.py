"""One CNI request through the engine, as the thin plugin would serve it, with the
daemon's own settings where the request must not decide.

Per-request state only: the delegates get the environment the runtime gave the shim,
never the daemon's (`os.environ` holds its service account and its own paths). What
could make the daemon run or read what the caller chooses comes from the daemon's
configuration, never from the request, or anyone who reaches the socket could run any
binary as root: `CNI_PATH` and `binDir` (where delegates are found), `cniDir` (the
attachment records), `confDir`, `logFile` and `kubeconfig`. The dynamic loader's
`LD_*` variables are dropped for the same reason, and the sriov delegate's
`MULTUS_SYSFS_ROOT` / `MULTUS_SRIOV_*` are the daemon's own (`--sysfs-root`, ...).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from typing import TYPE_CHECKING, Any

from multus_cni import cnijson
from multus_cni.environ import parse_cni_args
from multus_cni.errors import InvalidEnvironment
from multus_cni.main import run

from . import metrics
from .apiclient import ClientPool
from .config import NodeConfig
from .logs import request_context

if TYPE_CHECKING:
    from multus_cni.k8s.resolve import DeviceSource
    from multus_cni.k8s.routes import Netlink

logger = logging.getLogger("multus_node.handling")

# The dynamic loader's variables, and the sriov delegate's (which sysfs tree, which
# records and files it writes): never the request's; the latter are the daemon's own.
DROPPED_PREFIXES = ("LD_", "MULTUS_SRIOV_", "MULTUS_SYSFS_ROOT")


@dataclasses.dataclass
class Request:
    """A request as it came off the socket."""

    env: dict[str, str]
    stdin: bytes
    received: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def command(self) -> str:
        return self.env.get("CNI_COMMAND", "")

    @property
    def container_id(self) -> str:
        return self.env.get("CNI_CONTAINERID", "")


@dataclasses.dataclass
class Reply:
    rc: int
    out: bytes
    err: bytes = b""


class Handler:
    def __init__(
        self,
        config: NodeConfig,
        pool: ClientPool | None,
        netlink: Netlink | None,
        delegate_dirs: tuple[str, ...],
    ) -> None:
        self.config = config
        self.pool = pool
        self.netlink = netlink
        self.devices: DeviceSource | None = None
        # what every request's environment gets in place of its own, worked out once
        self.pinned_env = {"CNI_PATH": ":".join(delegate_dirs), **config.sriov_environment()}

    def environment(self, env: dict[str, str]) -> dict[str, str]:
        """The request's environment with the daemon's CNI_PATH and SR-IOV settings, and
        no loader variables."""
        clean = {k: v for k, v in env.items() if not k.startswith(DROPPED_PREFIXES)}
        clean.update(self.pinned_env)
        return clean

    def pin(self, stdin: bytes) -> tuple[bytes, str]:
        """(the conf with the daemon's settings where they decide, its network name)."""
        try:
            conf = cnijson.loads(stdin)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return stdin, ""  # the engine reports what is wrong with it
        if not isinstance(conf, dict):
            return stdin, ""
        conf["binDir"] = self.config.cni_bin_dir
        conf["cniDir"] = self.config.cni_cache_dir
        conf["confDir"] = self.config.cni_conf_dir
        conf.pop("logFile", None)
        if "kubeconfig" in conf:
            if self.config.kubeconfig:
                conf["kubeconfig"] = self.config.kubeconfig
            else:
                conf.pop("kubeconfig")  # in-cluster: the engine sees the service account
        name = conf.get("name")
        return cnijson.dumps(conf).encode(), name if isinstance(name, str) else ""

    def __call__(self, request: Request) -> Reply:
        started = time.monotonic()
        command = request.command
        metrics.PHASE_SECONDS.labels("queue").observe(started - request.received)
        env = self.environment(request.env)
        stdin, network = self.pin(request.stdin)
        try:
            args = parse_cni_args(env.get("CNI_ARGS", ""))
        except InvalidEnvironment:
            args = {}  # the engine refuses it, naming the pair
        pod = ""
        if args.get("K8S_POD_NAMESPACE") and args.get("K8S_POD_NAME"):
            pod = f"{args['K8S_POD_NAMESPACE']}/{args['K8S_POD_NAME']}"
        with request_context(pod, request.container_id[:12], network):
            logger.debug(
                "%s started after %.1fms in the queue", command, (started - request.received) * 1000
            )
            with contextlib.ExitStack() as stack:
                api = (
                    stack.enter_context(self.pool.client(args.get("K8S_POD_UID", "")))
                    if self.pool is not None and command == "ADD"
                    else None
                )
                try:
                    rc, doc = run(stdin, env, api=api, netlink=self.netlink, devices=self.devices)
                except BaseException:  # run() reports every error; this is a bug: say so
                    logger.exception("%s failed unexpectedly", command)
                    raise
            code = 0 if rc == 0 else int(doc.get("code", 999)) if doc else 999
            took = time.monotonic() - request.received
            if rc == 0:
                logger.info("%s done in %.3fs", command, took)
            else:
                logger.error("%s failed (code %d) in %.3fs", command, code, took)
        metrics.REQUESTS.labels(command or "none", str(code)).inc()
        metrics.REQUEST_SECONDS.labels(command or "none").observe(took)
        out = (cnijson.dumps(doc) + "\n").encode() if doc is not None else b""
        return Reply(rc, out)


def error_reply(code: int, msg: str, stdin: bytes) -> Reply:
    """A CNI error the daemon answers itself (queue full, bad frame), at the conf's version."""
    version = "1.1.0"
    try:
        conf: Any = cnijson.loads(stdin)
        if isinstance(conf, dict) and isinstance(conf.get("cniVersion"), str):
            version = conf["cniVersion"]
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass
    doc = {"cniVersion": version, "code": code, "msg": msg}
    return Reply(1, (cnijson.dumps(doc) + "\n").encode())
