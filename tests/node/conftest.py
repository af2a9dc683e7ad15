"""Fixtures for the node agent: `multus-node` as a real process in a node netns (prefix
`mnd`), the API emulator with watch semantics inside that netns, both shims, and the
"nothing lost" invariants after every passing test.

`lab` is tests/k8s's Lab in thick mode: every call goes through a shim to the daemon,
so the Kubernetes-mode scenarios of tests/k8s run here unchanged (test_thick_k8s.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.conftest import Lab
from tests.node.emulator import WatchApi
from tests.support.cni import CNI_PLUGINS, REPO, VENV_BIN, CniCall, run_multus
from tests.support.lab import PASSED as PASSED_KEY
from tests.support.lab import Node, checked_node, missing_prerequisites, record_outcome

PREFIX = "mnd"
NODE_NAME = "mnd-node-1"
MULTUS_NODE = str(VENV_BIN / "multus-node")
SHIMS = {"c": str(REPO / "build" / "multus-shim"), "py": str(VENV_BIN / "multus-shim-py")}

pytest_runtest_makereport = record_outcome


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/node/" in str(item.path) and {"lab", "node", "thick"} & set(
            getattr(item, "fixturenames", ())
        ):
            item.add_marker(pytest.mark.root)


@pytest.fixture(scope="session")
def c_shim() -> str:
    """The static C shim, built by `make shim` (make test builds it first)."""
    if not os.path.exists(SHIMS["c"]):
        subprocess.run(["make", "-C", str(REPO), "shim"], check=True, capture_output=True)
    return SHIMS["c"]


@pytest.fixture(scope="session")
def _prerequisites() -> None:
    problem = missing_prerequisites("nsenter", "unshare", "gcc")
    if problem:
        pytest.fail(f"node agent tests cannot run: {problem}", pytrace=False)


def run_shim(
    kind: str,
    command: str,
    conf: dict[str, Any] | bytes,
    socket_dir: Path,
    *,
    node: str,
    cni_path: str = "/opt/cni/bin",
    **kwargs: Any,
) -> CniCall:
    """One CNI call through a shim, as kubelet would make it on the node (`kwargs` as
    run_multus takes them)."""
    if isinstance(conf, dict):
        conf = {**conf, "type": "multus-py-shim", "daemonSocketDir": str(socket_dir)}
    return run_multus(command, conf, cni_path=cni_path, executable=SHIMS[kind], node=node, **kwargs)


class Daemon:
    """`multus-node` in the node netns (its hostNetwork), serving this node."""

    def __init__(
        self,
        node: Node,
        root: Path,
        api: WatchApi | None,
        *,
        conf_source: str = "none",
        extra: tuple[str, ...] = (),
        wrapper: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.node = node
        self.root = root
        self.api = api
        self.socket_dir = root / "run"
        self.bin_dir = root / "bin"
        self.conf_source = conf_source
        self.extra = extra
        self.wrapper = wrapper
        self.env = env or {}
        self.log_path = root / f"multus-node.{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.kubeconfig = api.kubeconfig(root, token="mnd-agent-token") if api else None

    def argv(self) -> list[str]:
        return [
            MULTUS_NODE,
            "--node-name",
            NODE_NAME,
            "--namespace",
            "kube-system",
            "--cni-bin-dir",
            str(self.bin_dir),
            "--cni-path",
            CNI_PLUGINS,
            "--cni-conf-dir",
            str(self.node.conf_dir),
            "--socket-dir",
            str(self.socket_dir),
            "--cni-cache-dir",
            str(self.node.cni_dir),
            "--conf-source",
            self.conf_source,
            "--metrics-port",
            "0",
            "--shim-binary",
            SHIMS["c"],
            "--sweep-interval",
            "0",
            "--token-file",
            "",
            "--log-level",
            "debug",
            *self.extra,
        ]

    def start(self, wait: bool = True) -> Daemon:
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        if self.kubeconfig is not None:
            env["KUBECONFIG"] = str(self.kubeconfig)
        env.update(self.env)
        argv = ["ip", "netns", "exec", self.node.name, *self.wrapper, *self.argv()]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if wait:
            self.wait_serving()
        return self

    def restarted(self) -> Daemon:
        """A new daemon with this one's settings, as when the agent restarts on the node
        (not started yet; it logs to a file of its own)."""
        return Daemon(
            self.node,
            self.root,
            self.api,
            conf_source=self.conf_source,
            extra=self.extra,
            wrapper=self.wrapper,
            env=self.env,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for(self, check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"multus-node exited ({self.proc.returncode}):\n{self.log()}")
            time.sleep(0.05)
        raise AssertionError(f"multus-node: {what} within {timeout}s; log:\n{self.log()[-4000:]}")

    def wait_serving(self) -> None:
        self.wait_for(lambda: "serving CNI requests" in self.log(), "not serving")
        if self.api is not None:
            self.wait_synced()

    def wait_synced(self) -> None:
        """Until its three caches watch and its NodeState has been written once."""
        assert self.api is not None
        api = self.api

        def ready() -> bool:
            queries = api.queries()
            watched = {p for m, p, q in queries if q.get("watch") == "true"}
            written = any(
                m == "PATCH" and p.endswith(f"nodestates/{NODE_NAME}/status") for m, p, _ in queries
            )
            return len(watched) >= 3 and written

        self.wait_for(ready, "caches not watching or NodeState not written")

    @property
    def metrics_port(self) -> int:
        def port() -> int:
            for line in self.log().splitlines():
                if "metrics and probes on port" in line:
                    return int(line.rsplit(" ", 1)[1])
            return 0

        return int(self.wait_for(port, "no metrics port"))

    def http(self, path: str) -> tuple[int, str]:
        """GET on the daemon's metrics/probe port (inside the node netns)."""
        url = f"http://127.0.0.1:{self.metrics_port}{path}"
        code = (
            "import sys, urllib.request, urllib.error\n"
            "try:\n"
            f"    r = urllib.request.urlopen({url!r}, timeout=5)\n"
            "    print(r.status); print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code); print(e.read().decode())\n"
        )
        out = subprocess.run(
            ["ip", "netns", "exec", self.node.name, sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            timeout=20,
        ).stdout
        status, _, body = out.partition("\n")
        return int(status), body

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample on /metrics (0 when absent)."""
        _, body = self.http("/metrics")
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in body.splitlines():
            if line.startswith("#"):
                continue
            key, _, value = line.rpartition(" ")
            metric, _, rest = key.partition("{")
            got = ",".join(sorted(rest.rstrip("}").split(","))) if rest else ""
            if metric == name and got == want:
                return float(value)
        return 0.0

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def shim(self, kind: str, command: str, conf: dict[str, Any] | bytes, **kwargs: Any) -> CniCall:
        return run_shim(kind, command, conf, self.socket_dir, node=self.node.name, **kwargs)


class ThickLab(Lab):
    """tests/k8s's Lab with every call served by the daemon through the C shim; pods are
    scheduled to the daemon's node (so its pod cache holds them)."""

    def __init__(self, node: Node, api: WatchApi, root: Path, daemon: Daemon, shim: str) -> None:
        super().__init__(node, api, root)
        self.daemon = daemon
        self.shim = shim

    def pod(
        self, name: str, namespace: str = "default", annotations: dict[str, str] | None = None
    ) -> dict[str, Any]:
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": dict(annotations or {}),
            },
            "spec": {"nodeName": NODE_NAME, "containers": [{"name": "c", "image": "busybox"}]},
        }
        return self.api.put("v1/pods", body)

    def call(self, command: str, conf: dict[str, Any], **kwargs: Any) -> CniCall:
        """Through the shim to the daemon (whose CNI_PATH is its own)."""
        kwargs.pop("cni_path", None)
        return self.daemon.shim(self.shim, command, conf, **kwargs)


@pytest.fixture
def node(request: pytest.FixtureRequest, tmp_path: Path, _prerequisites: None) -> Iterator[Node]:
    """A node netns whose invariants are checked after a passing test."""
    with checked_node(PREFIX, tmp_path, request) as made:
        made.conf_dir.mkdir(parents=True, exist_ok=True)
        yield made


@pytest.fixture
def api(node: Node) -> Iterator[WatchApi]:
    emulator = WatchApi(f"/var/run/netns/{node.name}")
    emulator.put("v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE_NAME}})
    try:
        yield emulator
    finally:
        emulator.close()


@pytest.fixture
def daemons(node: Node, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[list[Daemon]]:
    """Daemons a test starts; all stopped (and their logs shown on failure) afterwards."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop()  # SIGTERM: what runs finishes, as in a pod's termination
    if not request.node.stash.get(PASSED_KEY, False):
        for daemon in started:
            sys.stderr.write(f"--- {daemon.log_path} ---\n{daemon.log()[-6000:]}\n")


@pytest.fixture
def thick(node: Node, api: WatchApi, tmp_path: Path, daemons: list[Daemon], c_shim: str) -> Daemon:
    """A serving daemon on the node, with the API."""
    daemon = Daemon(node, tmp_path, api).start()
    daemons.append(daemon)
    return daemon


@pytest.fixture
def thick_lab(node: Node, api: WatchApi, tmp_path: Path, thick: Daemon) -> ThickLab:
    return ThickLab(node, api, tmp_path, thick, "c")


def node_pod(
    api: WatchApi,
    name: str,
    networks: str | None = None,
    namespace: str = "default",
    *,
    spec: dict[str, Any] | None = None,
    claims: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pod on the daemon's node (so its pod cache holds it), stored in the emulator:
    `networks` is its k8s.v1.cni.cncf.io/networks annotation, `claims` its
    ResourceClaim statuses (claim name in the pod -> ResourceClaim name)."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if networks is not None:
        metadata["annotations"] = {"k8s.v1.cni.cncf.io/networks": networks}
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"nodeName": NODE_NAME, **(spec or {})},
    }
    if claims:
        body["status"] = {
            "resourceClaimStatuses": [
                {"name": n, "resourceClaimName": c} for n, c in claims.items()
            ]
        }
    return api.put("v1/pods", body)


def vf_pod(api: WatchApi, networks: str) -> dict[str, Any]:
    """team/vfpod, with an init container and an app container (devices are handed out
    in container order, init first)."""
    spec = {"initContainers": [{"name": "sidecar"}], "containers": [{"name": "app"}]}
    return node_pod(api, "vfpod", networks, "team", spec=spec)


def nad(api: WatchApi, name: str, config: dict[str, Any], namespace: str = "default") -> None:
    api.put(
        "k8s.cni.cncf.io/v1/network-attachment-definitions",
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"config": json.dumps(config)},
        },
    )
