"""Fuzzing `multus_cni.main.run` in-process: any stdin, any conf shape, always an exit
code and one JSON-serializable document (or none), never an exception."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multus_cni import main
from multus_cni.logs import log
from multus_cni.versions import LATEST, SUPPORTED_VERSIONS
from tests.unit.strategies import add_env, confine, encoded, json_values, multus_confs

ERROR_KEYS = {"cniVersion", "code", "msg", "details"}
FUZZ = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One confined tree for every example: the conf dir, cniDir, binDir, CNI_PATH."""
    path = tmp_path_factory.mktemp("mib-fuzz")
    (path / "bin").mkdir()
    yield path
    log.configure("error", "")


@pytest.fixture(autouse=True)
def _no_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


def serve(stdin: bytes, env: dict[str, str]) -> tuple[int, dict[str, Any] | None]:
    try:
        return main.run(stdin, env)
    finally:
        log.configure("error", "")  # run() configures the process-wide logger from the conf


def assert_error_document(code: int, doc: dict[str, Any] | None) -> dict[str, Any]:
    assert code == 1
    assert isinstance(doc, dict) and set(doc) <= ERROR_KEYS, doc
    json.dumps(doc, allow_nan=False)
    assert isinstance(doc["code"], int) and isinstance(doc["msg"], str) and doc["msg"]
    assert doc["cniVersion"] in SUPPORTED_VERSIONS
    assert not doc["msg"].startswith("internal error"), doc  # an exception we did not expect
    return doc


@FUZZ
@given(st.binary(max_size=3000))
def test_any_bytes(root: Path, data: bytes) -> None:
    code, doc = serve(data, add_env(root))
    assert_error_document(code, doc)
    code, doc = serve(data, {"CNI_COMMAND": "VERSION"})
    assert (code, doc) == (0, {"cniVersion": LATEST, "supportedVersions": list(SUPPORTED_VERSIONS)})


@FUZZ
@given(json_values)
def test_any_json_document(root: Path, value: Any) -> None:
    code, doc = serve(encoded(confine(value, str(root))), add_env(root))
    error = assert_error_document(code, doc)
    if not isinstance(value, dict):
        assert error["code"] == 6


@FUZZ
@given(multus_confs)
def test_conf_shaped_documents(root: Path, conf: dict[str, Any]) -> None:
    code, doc = serve(encoded(confine(conf, str(root))), add_env(root))
    error = assert_error_document(code, doc)
    # a conf that parses gets as far as the netns check, and stops there (code 8)
    assert error["code"] in (1, 4, 5, 6, 7, 8), error


def test_a_valid_conf_reaches_the_netns_check(root: Path) -> None:
    """The fuzzed path is not all parse errors: a good conf stops only at CNI_NETNS."""
    conf = {"cniVersion": "1.0.0", "name": "n", "delegates": [{"type": "fake"}]}
    code, doc = serve(encoded(confine(conf, str(root))), add_env(root))
    assert assert_error_document(code, doc)["code"] == 8
