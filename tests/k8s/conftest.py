"""Fixtures for Kubernetes mode: a node netns (prefix `mid`) where `multus` runs, the
API emulator listening on 127.0.0.1 inside that node, a kubeconfig pointing at it, and
the "nothing lost" invariants checked after every passing test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.k8s.emulator import NAD, NETWORK, POD, Api
from tests.support.cni import CNI_PLUGINS, CniCall, pod_args
from tests.support.lab import Node, checked_node, missing_prerequisites, record_outcome

PREFIX = "mid"


pytest_runtest_makereport = record_outcome


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/k8s/" in str(item.path) and "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.root)


class Lab:
    """A node, the API it talks to, and helpers to make pods and network objects."""

    def __init__(self, node: Node, api: Api, root: Path) -> None:
        self.node = node
        self.api = api
        self.root = root
        self.kubeconfig = api.kubeconfig(root)
        self.node.conf_dir.mkdir(parents=True, exist_ok=True)

    def conf(self, delegates: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "cniVersion": "1.0.0",
            "name": "mid-k8s",
            "type": "multus",
            "kubeconfig": str(self.kubeconfig),
            "cniDir": str(self.node.cni_dir),
            "confDir": str(self.node.conf_dir),
            "binDir": CNI_PLUGINS,
            "kubeApiTimeout": 2,
        }
        if delegates is not None:
            conf["delegates"] = delegates
        conf.update(extra)
        return conf

    def pod(
        self,
        name: str,
        namespace: str = "default",
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return self.api.put(
            POD,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "annotations": dict(annotations or {}),
                },
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        )

    def nad(self, name: str, config: dict[str, Any] | str, namespace: str = "default") -> None:
        text = config if isinstance(config, str) else json.dumps(config)
        self.api.put(
            NAD,
            {
                "apiVersion": "k8s.cni.cncf.io/v1",
                "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"config": text},
            },
        )

    def network(self, name: str, plugin: str, args: str, namespace: str = "default") -> None:
        """A seed `kubernetes.com/v1` Network (top-level plugin + args string)."""
        self.api.put(
            NETWORK,
            {
                "apiVersion": "kubernetes.com/v1",
                "kind": "Network",
                "metadata": {"name": name, "namespace": namespace},
                "plugin": plugin,
                "args": args,
            },
        )

    def status(self, name: str, namespace: str = "default") -> list[dict[str, Any]]:
        pod = self.api.get(POD, namespace, name)
        assert pod is not None
        text = pod["metadata"].get("annotations", {}).get("k8s.v1.cni.cncf.io/network-status")
        assert text is not None, "no network-status annotation"
        doc: list[dict[str, Any]] = json.loads(text)
        return doc

    def run(
        self,
        command: str,
        conf: dict[str, Any],
        pod: dict[str, Any] | None,
        netns: str = "",
        container_id: str = "",
        **kwargs: Any,
    ) -> CniCall:
        args = kwargs.pop("cni_args", None)
        if args is None and pod is not None:
            args = pod_args(pod, container_id)
        return self.call(
            command, conf, container_id=container_id, netns=netns, cni_args=args or "", **kwargs
        )

    def call(self, command: str, conf: dict[str, Any], **kwargs: Any) -> CniCall:
        """One CNI call as the runtime makes it (here: the `multus` executable)."""
        return self.node.run(command, conf, **kwargs)


@pytest.fixture(scope="session")
def _prerequisites() -> None:
    """Only the tests on real netns need root and the plugins; the others run anywhere."""
    problem = missing_prerequisites("nsenter")
    if problem:
        pytest.fail(f"Kubernetes-mode tests cannot run: {problem}", pytrace=False)


@pytest.fixture
def lab(request: pytest.FixtureRequest, tmp_path: Path, _prerequisites: None) -> Iterator[Lab]:
    """Node + API for one test; after a passing test every pod is deleted and the node
    must be as it started (no lease, record, lock, temp file or stray link)."""
    with checked_node(PREFIX, tmp_path, request) as node:
        api = Api(f"/var/run/netns/{node.name}")
        try:
            yield Lab(node, api, tmp_path)
        finally:
            api.close()
