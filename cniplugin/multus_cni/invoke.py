"""Running delegate plugins the way a container runtime does.

A delegate is found by its bare `type` in `binDir` then `CNI_PATH`, never by path;
it runs in its own process group (so a timeout kills its whole tree) with bounded
output capture; its CNI error is passed on with its code and the delegate named.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import subprocess
import time
from typing import Any

from .errors import CniError, DelegateError, InvalidConfig, TryAgainLater
from .fsutil import write_atomic
from .logs import log

MAX_STDOUT = 1 << 20
MAX_STDERR_KEPT = 64 << 10
ETXTBSY_RETRIES = 5


def find_plugin(ptype: str, dirs: list[str], where: str) -> str:
    """The executable for plugin `ptype`; InvalidConfig naming the field otherwise.

    A symlink is followed only when its target stays inside a plugin directory, so a
    conf cannot smuggle in an arbitrary binary through a planted link.
    """
    problems: list[str] = []
    real_dirs = [os.path.realpath(d) for d in dirs]
    for directory in dirs:
        candidate = os.path.join(directory, ptype)
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if not _is_regular(st.st_mode):
            problems.append(f"{candidate} is not a regular file")
            continue
        if not os.access(candidate, os.X_OK):
            problems.append(f"{candidate} is not executable")
            continue
        if os.path.islink(candidate):
            target = os.path.realpath(candidate)
            if not any(target.startswith(d + os.sep) for d in real_dirs):
                problems.append(f"{candidate} links to {target}, outside the plugin directories")
                continue
        return candidate
    detail = "; ".join(problems) if problems else "searched " + ":".join(dirs)
    raise InvalidConfig(f"{where}type: plugin {ptype!r} not found ({detail})")


def _is_regular(mode: int) -> bool:
    return (mode & 0o170000) == 0o100000


class Delegate:
    """How to call one delegate: its binary and the environment the runtime gave us."""

    __slots__ = ("base_env", "label", "path", "timeout")

    def __init__(self, path: str, base_env: dict[str, str], timeout: float, label: str) -> None:
        self.path = path
        self.base_env = base_env
        self.timeout = timeout
        self.label = label

    def call(self, command: str, ifname: str, stdin: bytes, netns: str | None = None) -> bytes:
        """Run the delegate; its stdout on success, a CniError otherwise."""
        env = dict(self.base_env)
        env["CNI_COMMAND"] = command
        if ifname:
            env["CNI_IFNAME"] = ifname
        if netns is not None:
            if netns:
                env["CNI_NETNS"] = netns
            else:
                env.pop("CNI_NETNS", None)
        started = time.monotonic()
        rc, out, err = run_bounded(self.path, env, stdin, self.timeout, self.label)
        if err:
            log.verbose(f"{self.label} {command} stderr: {err.decode('utf-8', 'replace').strip()}")
        log.debug(f"{self.label} {command} rc={rc} in {time.monotonic() - started:.3f}s")
        if rc != 0:
            raise delegate_failure(self.label, command, rc, out, err)
        return out


def run_bounded(
    path: str, env: dict[str, str], stdin: bytes, timeout: float, label: str
) -> tuple[int, bytes, bytes]:
    """Exec `path`, feed stdin, capture at most MAX_STDOUT of stdout (more is an
    error) and the first MAX_STDERR_KEPT of stderr; kill the group on timeout."""
    proc = _spawn(path, env, label)
    deadline = time.monotonic() + timeout
    out = bytearray()
    err = bytearray()
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    sel = selectors.DefaultSelector()
    pending = memoryview(stdin)
    if pending:
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    sel.register(proc.stdout, selectors.EVENT_READ)
    sel.register(proc.stderr, selectors.EVENT_READ)
    overflow = False
    try:
        while sel.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill_group(proc)
                raise TryAgainLater(
                    f"delegate {label}: timed out after {timeout:g}s and was killed",
                    details=bytes(err[-4096:]).decode("utf-8", "replace"),
                )
            exited = proc.poll() is not None
            events = sel.select(min(remaining, 0.05) if exited else min(remaining, 1.0))
            if not events and exited:
                break  # a grandchild holds our pipes open; the delegate itself is done
            for key, _ in events:
                if key.fileobj is proc.stdin:
                    try:
                        written = os.write(proc.stdin.fileno(), pending[:65536])
                    except BrokenPipeError:
                        written = len(pending)
                    pending = pending[written:]
                    if not pending:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                if key.fileobj is proc.stdout:
                    out += chunk
                    overflow = len(out) > MAX_STDOUT
                elif len(err) < MAX_STDERR_KEPT:
                    err += chunk[: MAX_STDERR_KEPT - len(err)]
            if overflow:
                _kill_group(proc)
                break
    finally:
        sel.close()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass
    rc = proc.wait()
    if overflow:
        raise CniError(
            f"delegate {label}: printed more than {MAX_STDOUT} bytes on stdout and was killed"
        )
    return rc, bytes(out), bytes(err)


def _spawn(path: str, env: dict[str, str], label: str) -> subprocess.Popen[bytes]:
    for attempt in range(ETXTBSY_RETRIES + 1):
        try:
            return subprocess.Popen(
                [path],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                close_fds=True,
                process_group=0,
            )
        except OSError as exc:
            # The binary is being replaced by an installer right now: wait and retry.
            if exc.errno == errno.ETXTBSY and attempt < ETXTBSY_RETRIES:
                time.sleep(1.0)
                continue
            raise CniError(
                f"delegate {label}: cannot execute {path}: {exc.strerror}", code=5
            ) from None
    raise AssertionError("unreachable")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        try:
            proc.kill()
        except OSError:
            pass


def delegate_failure(label: str, command: str, rc: int, out: bytes, err: bytes) -> CniError:
    """A delegate's non-zero exit as our error: its code and message if it printed a
    CNI error, else 999 with what it printed on stderr in `details`."""
    stderr_text = err.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(out) if out.strip() else None
    except ValueError:
        doc = None
    if (
        isinstance(doc, dict)
        and isinstance(doc.get("code"), int)
        and not isinstance(doc.get("code"), bool)
    ):
        msg = str(doc.get("msg", "")) or "(no message)"
        details = str(doc.get("details", "") or stderr_text)
        return DelegateError(
            f"delegate {label}: {command} failed: {msg}", details, code=doc["code"]
        )
    if out.strip():
        shown = out[:512].decode("utf-8", "replace").strip()
        return CniError(
            f"delegate {label}: {command} failed with exit code {rc} and non-CNI output: {shown}",
            details=stderr_text,
        )
    reason = f"was killed by signal {-rc}" if rc < 0 else f"exited with code {rc}"
    return CniError(
        f"delegate {label}: {command} failed: {reason}"
        + (f": {stderr_text.splitlines()[-1]}" if stderr_text else " with no output"),
        details=stderr_text,
    )


def parse_result(label: str, out: bytes, sent_version: str) -> dict[str, Any]:
    """A delegate's ADD output as a result dict; a result without `cniVersion` is at
    the version we sent (libcni's rule)."""
    try:
        doc = json.loads(out)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        shown = out[:512].decode("utf-8", "replace").strip()
        raise CniError(f"delegate {label}: ADD succeeded but printed no JSON result: {shown!r}")
    if "cniVersion" not in doc:
        doc["cniVersion"] = sent_version
    return doc


class VersionCache:
    """What each plugin binary says it supports (its VERSION answer), remembered per
    binary identity (inode, size, mtime) in the cache dir so a pod costs no extra exec."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._entries: dict[str, Any] | None = None
        self._dirty = False

    def _load(self) -> dict[str, Any]:
        if self._entries is None:
            try:
                with open(self.path, "rb") as handle:
                    loaded = json.loads(handle.read())
                self._entries = loaded if isinstance(loaded, dict) else {}
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def supported(self, delegate: Delegate, wanted: str) -> list[str] | None:
        """The versions `delegate` supports; None when it would not say."""
        st = os.stat(delegate.path)
        ident = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]
        entries = self._load()
        entry = entries.get(delegate.path)
        if isinstance(entry, dict) and entry.get("id") == ident:
            cached = entry.get("versions")
            if isinstance(cached, list):
                return [str(v) for v in cached]
        try:
            out = delegate.call("VERSION", "", json.dumps({"cniVersion": wanted}).encode())
            doc = json.loads(out)
            offered = doc.get("supportedVersions") if isinstance(doc, dict) else None
        except (CniError, ValueError) as exc:
            log.verbose(f"{delegate.label}: VERSION gave no answer ({exc}); assuming {wanted}")
            return None
        if not isinstance(offered, list):
            return None
        entries[delegate.path] = {"id": ident, "versions": [str(v) for v in offered]}
        self._dirty = True
        return [str(v) for v in offered]

    def save(self) -> None:
        if self._dirty and self._entries is not None:
            try:
                write_atomic(self.path, json.dumps(self._entries).encode())
            except OSError as exc:
                log.verbose(f"cannot save plugin versions to {self.path}: {exc}")
            self._dirty = False
