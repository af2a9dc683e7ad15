"""Running delegate plugins the way a container runtime does.

A delegate is found by its bare `type` in `binDir` then `CNI_PATH`, never by path;
it runs in its own process group (so a timeout kills its whole tree) with bounded
output capture; its CNI error is passed on with its code and the delegate named.
"""

from __future__ import annotations

import errno
import os
import select
import time

from . import cnijson
from .errors import CniError, DelegateError, PluginMissing, TryAgainLater
from .fsutil import write_atomic
from .logs import log

TYPE_CHECKING = False  # typing costs ~2 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

SIGKILL = 9  # Linux; the `signal` module would import `enum` (~3 ms)
# Put before a delegate's path when it is executed: a host that runs the engine in a
# container sets it (once, at start) to run delegates in the node's root,
# e.g. ("/usr/sbin/chroot", "/host"). Empty: delegates are executed directly.
EXEC_PREFIX: tuple[str, ...] = ()
# Directories whose binaries run directly all the same: the host's own plugins of ours
# that live in that container's image.
EXEC_DIRECT: tuple[str, ...] = ()
# Plugin names a host maps to a binary of its own, whatever the plugin dirs hold:
# multus-node's `--sriov-type multus-sriov` maps "sriov" to our SR-IOV delegate where
# the SR-IOV network operator's own `sriov` sits in binDir. Set once, at start.
PLUGIN_OVERRIDES: dict[str, str] = {}
MAX_STDOUT = 1 << 20
MAX_STDERR_KEPT = 64 << 10
ETXTBSY_RETRIES = 5


def find_plugin(ptype: str, dirs: list[str], where: str) -> str:
    """The executable for plugin `ptype`; InvalidConfig naming the field otherwise.

    A symlink is followed only when its target stays inside a plugin directory, so a
    conf cannot smuggle in an arbitrary binary through a planted link.
    """
    override = PLUGIN_OVERRIDES.get(ptype)
    if override is not None:
        return override
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
    raise PluginMissing(f"{where}type: plugin {ptype!r} not found ({detail})")


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
        took = time.monotonic() - started
        if err:
            log.verbose(f"{self.label} {command} stderr: {err.decode('utf-8', 'replace').strip()}")
        log.debug(f"{self.label} {command} rc={rc} in {took:.3f}s")
        log.timing("delegate", took, os.path.basename(self.path))
        if rc != 0:
            raise delegate_failure(self.label, command, rc, out, err)
        return out


def run_bounded(
    path: str, env: dict[str, str], stdin: bytes, timeout: float, label: str
) -> tuple[int, bytes, bytes]:
    """Exec `path`, feed stdin, capture at most MAX_STDOUT of stdout (more is an
    error) and the first MAX_STDERR_KEPT of stderr; kill the group on timeout.

    posix_spawn + poll rather than `subprocess`: the latter costs ~8 ms of imports
    (threading, selectors, signal/enum) on every pod, and vfork-style spawning is
    cheaper than fork for a large parent."""
    in_r, in_w = os.pipe2(os.O_CLOEXEC)
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = _spawn(path, env, (in_r, out_w, err_w), label)
    finally:
        for fd in (in_r, out_w, err_w):
            os.close(fd)
    deadline = time.monotonic() + timeout
    out = bytearray()
    err = bytearray()
    pending = memoryview(stdin)
    poller = select.poll()
    open_fds = {out_r, err_r}
    poller.register(out_r, select.POLLIN)
    poller.register(err_r, select.POLLIN)
    if pending:
        os.set_blocking(in_w, False)
        poller.register(in_w, select.POLLOUT)
        open_fds.add(in_w)
    else:
        os.close(in_w)
    status: int | None = None
    try:
        while open_fds:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill_group(pid)
                status = os.waitpid(pid, 0)[1]
                raise TryAgainLater(
                    f"delegate {label}: timed out after {timeout:g}s and was killed",
                    details=bytes(err[-4096:]).decode("utf-8", "replace"),
                )
            events = poller.poll(int(min(remaining, 0.1) * 1000) + 1)
            if not events:
                if status is None:
                    done_pid, done_status = os.waitpid(pid, os.WNOHANG)
                    if done_pid:
                        status = done_status
                        continue
                else:
                    break  # a grandchild holds our pipes open; the delegate itself is done
            for fd, event in events:
                if fd == in_w:
                    try:
                        written = os.write(in_w, pending[:65536]) if event & select.POLLOUT else 0
                    except BrokenPipeError:
                        written = len(pending)
                    pending = pending[written:]
                    if not pending or event & (select.POLLERR | select.POLLHUP):
                        _close(poller, open_fds, in_w)
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    _close(poller, open_fds, fd)
                elif fd == out_r:
                    out += chunk
                elif len(err) < MAX_STDERR_KEPT:
                    err += chunk[: MAX_STDERR_KEPT - len(err)]
            if len(out) > MAX_STDOUT:
                _kill_group(pid)
                status = os.waitpid(pid, 0)[1] if status is None else status
                raise CniError(
                    f"delegate {label}: printed more than {MAX_STDOUT} bytes on stdout "
                    "and was killed"
                )
    finally:
        for fd in list(open_fds):
            _close(poller, open_fds, fd)
    if status is None:
        status = _reap(pid, deadline, timeout, label, err)
    return os.waitstatus_to_exitcode(status), bytes(out), bytes(err)


def _reap(pid: int, deadline: float, timeout: float, label: str, err: bytearray) -> int:
    """Wait for the delegate's exit, still within the deadline: closing its stdout and
    stderr does not mean it is done (a hang after `exec >&- 2>&-` must time out too)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # no pidfd (kernel < 5.3): wait without a deadline, as before
        return os.waitpid(pid, 0)[1]
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(max(0, int((deadline - time.monotonic()) * 1000)) + 1):
            _kill_group(pid)
            os.waitpid(pid, 0)
            raise TryAgainLater(
                f"delegate {label}: timed out after {timeout:g}s and was killed",
                details=bytes(err[-4096:]).decode("utf-8", "replace"),
            )
    finally:
        os.close(pidfd)
    return os.waitpid(pid, 0)[1]


def _close(poller: select.poll, open_fds: set[int], fd: int) -> None:
    poller.unregister(fd)
    open_fds.discard(fd)
    os.close(fd)


def _spawn(path: str, env: dict[str, str], fds: tuple[int, int, int], label: str) -> int:
    actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(fds)]
    direct = any(path.startswith(d.rstrip("/") + "/") for d in EXEC_DIRECT)
    argv = [path] if direct else [*EXEC_PREFIX, path]
    for attempt in range(ETXTBSY_RETRIES + 1):
        try:
            # Own process group (a timeout kills the whole tree); SIGPIPE/SIGXFSZ back
            # to their defaults, which Python ignores for itself.
            return os.posix_spawn(
                argv[0], argv, env, file_actions=actions, setpgroup=0, setsigdef=(13, 25)
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


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, SIGKILL)
    except OSError:
        try:
            os.kill(pid, SIGKILL)
        except OSError:
            pass


def delegate_failure(label: str, command: str, rc: int, out: bytes, err: bytes) -> CniError:
    """A delegate's non-zero exit as our error: its code and message if it printed a
    CNI error, else 999 with what it printed on stderr in `details`."""
    stderr_text = err.decode("utf-8", "replace").strip()
    try:
        doc = cnijson.loads(out) if out.strip() else None
    except ValueError:
        doc = None
    if (
        isinstance(doc, dict)
        and isinstance(doc.get("code"), int)
        and not isinstance(doc.get("code"), bool)
    ):
        msg = str(doc.get("msg", "")) or "(no message)"
        details = str(doc.get("details", "") or stderr_text)
        # Code 0 is no error code (libcni-based plugins print it when their IPAM
        # plugin failed silently): report it as internal, never as 0.
        code = doc["code"] if doc["code"] > 0 else 999
        return DelegateError(
            f"delegate {label}: {command} failed: {msg}", details, code=code, reason=msg
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
        doc = cnijson.loads(out)
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
                    loaded = cnijson.loads(handle.read())
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
            out = delegate.call("VERSION", "", cnijson.dumps({"cniVersion": wanted}).encode())
            doc = cnijson.loads(out)
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
                write_atomic(self.path, cnijson.dumps(self._entries).encode())
            except OSError as exc:
                log.verbose(f"cannot save plugin versions to {self.path}: {exc}")
            self._dirty = False
