#!/usr/bin/env python3
"""A fake CNI delegate plugin, steered per command by a JSON "debug" file.

The debug file is named by the conf's `debugFile` key (for calls that carry no conf,
such as VERSION, by `<this file>.debug.json`). Its shape:

    {"label": "d1", "log": "/tmp/.../calls.jsonl", "markers": "/tmp/.../markers",
     "ADD": {<spec>}, "DEL": {<spec>}, "CHECK": {...}, "VERSION": {...}, ...}

A spec, applied in this order (every key optional):
    stderr      text written to stderr first
    effect      false: skip the side effect (ADD writes markers/<cid>-<ifname>,
                DEL removes it)
    flood       {"stdout": N, "stderr": N}: write N bytes to each stream
    closeOutput close stdout and stderr (before `sleep`): "done" to a reader of pipes
    sleep       seconds, spent waiting on a child `sleep` process (so a timeout has a
                process tree to kill)
    crash       "kill" (SIGKILL itself) or "exit" (exit with `exit`, default 1, silently)
    stdout      raw text printed instead of a result (garbage, non-JSON, ...)
    error       {"code", "msg", "details"}: printed as a CNI error, exit `exit` (default 1)
    result      the ADD result to print (any version, printed as given)
    omitVersion drop `cniVersion` from the default result
    versions    VERSION: the supportedVersions answer
    exit        exit code (default 0, or 1 after `error`)

Every invocation is appended to the `log` file as one JSON line (label, command,
CNI_* environment, stdin, pid) before anything else happens. Standard library only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

ALL_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        return (0,)


def _append(path: str, doc: dict[str, Any]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(doc) + "\n").encode())
    finally:
        os.close(fd)


def _default_result(conf: dict[str, Any], version: str, ifname: str, netns: str) -> dict[str, Any]:
    prev = conf.get("prevResult")
    if isinstance(prev, dict):
        return {**prev, "cniVersion": version}  # a chained plugin passes prevResult on
    address = str(conf.get("fakeAddress", "10.202.255.2/24"))
    ip: dict[str, Any] = {"address": address, "interface": 0}
    if _version_tuple(version) < (1, 0, 0):
        ip["version"] = "6" if ":" in address else "4"
    return {
        "cniVersion": version,
        "interfaces": [{"name": ifname, "sandbox": netns}],
        "ips": [ip],
        "dns": {},
    }


def _flood(fd: int, count: int) -> None:
    chunk = b"y" * 65536
    try:
        while count > 0:
            count -= os.write(fd, chunk[: min(count, len(chunk))])
    except BrokenPipeError:
        os._exit(141)


def main() -> int:
    command = os.environ.get("CNI_COMMAND", "")
    cid = os.environ.get("CNI_CONTAINERID", "")
    ifname = os.environ.get("CNI_IFNAME", "")
    netns = os.environ.get("CNI_NETNS", "")
    raw = sys.stdin.buffer.read()
    try:
        conf = json.loads(raw)
    except ValueError:
        conf = None
    if not isinstance(conf, dict):
        conf = {}
    debug_path = conf.get("debugFile") or os.path.abspath(__file__) + ".debug.json"
    try:
        with open(str(debug_path), "rb") as handle:
            debug = json.loads(handle.read())
    except (OSError, ValueError):
        debug = {}
    log_path = debug.get("log") or str(debug_path) + ".log"
    _append(
        log_path,
        {
            "label": debug.get("label", ""),
            "binary": os.path.basename(__file__),
            "command": command,
            "env": {k: v for k, v in os.environ.items() if k.startswith("CNI_")},
            "stdin": conf if conf else raw.decode("utf-8", "replace"),
            "pid": os.getpid(),
            "time": time.time(),
        },
    )
    spec: dict[str, Any] = debug.get(command) or {}
    if spec.get("stderr"):
        sys.stderr.write(spec["stderr"])
        sys.stderr.flush()
    markers = debug.get("markers") or str(debug_path) + ".markers"
    marker = os.path.join(markers, f"{cid}-{ifname}")
    if spec.get("effect", True):
        if command == "ADD":
            os.makedirs(markers, exist_ok=True)
            with open(marker, "w") as handle:
                handle.write(json.dumps({"pid": os.getpid(), "netns": netns}))
        elif command == "DEL":
            try:
                os.unlink(marker)
            except FileNotFoundError:
                pass
    flood = spec.get("flood") or {}
    if flood.get("stderr"):
        _flood(2, int(flood["stderr"]))
    if flood.get("stdout"):
        _flood(1, int(flood["stdout"]))
    if spec.get("closeOutput"):
        os.close(1)
        os.close(2)
    if spec.get("sleep"):
        subprocess.run(["sleep", str(spec["sleep"])], check=False)
    if spec.get("crash") == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if spec.get("crash") == "exit":
        os._exit(int(spec.get("exit", 1)))
    version = str(conf.get("cniVersion", "0.3.1"))
    out: str | None = None
    code = int(spec.get("exit", 0))
    if "stdout" in spec:
        out = str(spec["stdout"])
    elif spec.get("error"):
        out = json.dumps({"cniVersion": version, **spec["error"]})
        code = int(spec.get("exit", 1))
    elif command == "VERSION":
        supported = spec.get("versions", ALL_VERSIONS)
        out = json.dumps({"cniVersion": version, "supportedVersions": supported})
    elif command == "ADD":
        result = spec.get("result") or _default_result(conf, version, ifname, netns)
        if spec.get("omitVersion"):
            result.pop("cniVersion", None)
        out = json.dumps(result)
    elif command == "CHECK" and not os.path.exists(marker):
        out = json.dumps({"cniVersion": version, "code": 999, "msg": f"{marker} is missing"})
        code = 1
    if out is not None:
        sys.stdout.write(out)
        sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
