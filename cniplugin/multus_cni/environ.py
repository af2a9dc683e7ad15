"""The CNI_* environment of one invocation, validated before anything runs."""

from __future__ import annotations

import os

from multus_rules.names import ifname_problem, is_safe_name

from .errors import InvalidEnvironment

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "GC", "STATUS")
# Which variables each command needs (the spec's table; DEL may lack a netns).
_REQUIRED: dict[str, tuple[str, ...]] = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_PATH",),
    "STATUS": ("CNI_PATH",),
    "VERSION": (),
}
# The cache names files after the container id (`.<cid>:<ifname>.json.<pid>.<tid>.tmp` must
# fit in NAME_MAX, 255 bytes); runtimes use 64 hex digits.
MAX_CONTAINER_ID_BYTES = 200


class CniEnv:
    """What the runtime told us through the environment."""

    __slots__ = (
        "args",
        "args_raw",
        "command",
        "container_id",
        "environ",
        "ifname",
        "netns",
        "path",
        "refusal",
        "unaddressable",
    )

    def __init__(
        self,
        command: str,
        container_id: str,
        netns: str,
        ifname: str,
        path: list[str],
        args_raw: str,
        args: dict[str, str],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.command = command
        self.container_id = container_id
        self.netns = netns
        self.ifname = ifname
        self.path = path
        self.args_raw = args_raw
        self.args = args
        # The runtime's whole environment for this call: what delegates inherit. In thick
        # mode it is the request's, never the serving daemon's own os.environ.
        self.environ: dict[str, str] = dict(environ) if environ is not None else {}
        # DEL only: why ADD would refuse this environment (it then cannot have attached
        # anything under it); other commands raise instead.
        self.refusal = ""
        # DEL only: the container id or ifname is one no ADD accepts, so no record can
        # exist under it (and it must not be used in a path).
        self.unaddressable = False


def parse_cni_args(raw: str) -> dict[str, str]:
    """`K=V;K=V` -> dict. Empty pairs are skipped; a pair that is not exactly one
    `K=V` is refused here rather than forwarded to a delegate that would fail with 999."""
    parsed: dict[str, str] = {}
    for pair in raw.split(";"):
        if not pair:
            continue
        parts = pair.split("=")
        if len(parts) != 2 or not parts[0]:
            raise InvalidEnvironment(
                f"CNI_ARGS: {pair!r} is not a KEY=VALUE pair", details=f"CNI_ARGS={raw!r}"
            )
        parsed[parts[0]] = parts[1]
    return parsed


def read_env(environ: Mapping[str, str] | None = None) -> CniEnv:
    """Validate the environment; every missing or bad variable is named in one error."""
    env = os.environ if environ is None else environ
    command = env.get("CNI_COMMAND", "")
    if not command:
        raise InvalidEnvironment("required env variables [CNI_COMMAND] missing")
    if command not in COMMANDS:
        raise InvalidEnvironment(
            f"CNI_COMMAND: unknown command {command!r} (expected one of {', '.join(COMMANDS)})"
        )
    if command == "VERSION":
        # VERSION needs nothing but CNI_COMMAND (skel validates the rest only for the other
        # commands): a caller's leftover CNI_* variables must not make it fail.
        return CniEnv(command, "", "", "", [], "", {})
    missing = [name for name in _REQUIRED[command] if not env.get(name)]
    if missing:
        raise InvalidEnvironment(f"required env variables [{','.join(missing)}] missing")
    problems: list[str] = []
    container_id = env.get("CNI_CONTAINERID", "")
    if container_id and not is_safe_name(container_id):
        problems.append(f"CNI_CONTAINERID: {container_id!r} must match [A-Za-z0-9][A-Za-z0-9_.-]*")
    elif len(container_id) > MAX_CONTAINER_ID_BYTES:
        problems.append(
            f"CNI_CONTAINERID: {container_id[:16]}... is {len(container_id)} bytes, "
            f"longer than {MAX_CONTAINER_ID_BYTES}"
        )
    ifname = env.get("CNI_IFNAME", "")
    if ifname or "CNI_IFNAME" in _REQUIRED[command]:
        why = ifname_problem(ifname)
        if why:
            problems.append(f"CNI_IFNAME: {ifname!r} {why}")
    unaddressable = bool(problems)
    args_raw = env.get("CNI_ARGS", "")
    try:
        args = parse_cni_args(args_raw)
    except InvalidEnvironment as exc:
        problems.append(exc.msg)
        args = {}
    if problems and command != "DEL":
        raise InvalidEnvironment("; ".join(problems))
    netns = env.get("CNI_NETNS", "")
    path = [p for p in env.get("CNI_PATH", "").split(":") if p]
    cni_env = CniEnv(command, container_id, netns, ifname, path, args_raw, args, env)
    cni_env.refusal = "; ".join(problems)
    cni_env.unaddressable = unaddressable
    return cni_env
