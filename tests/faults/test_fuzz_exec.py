"""Fuzzing the real `multus` executable (fewer examples than in-process): stdout is
exactly one JSON document, rc != 0 on error, never a traceback (invariant I4)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.faults.checks import ERROR_KEYS
from tests.support.cni import MULTUS
from tests.unit.strategies import add_env, confine, encoded, json_values, multus_confs

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("mib-fuzz-exec")
    (path / "bin").mkdir()
    yield path


def execute(stdin: bytes, env: dict[str, str]) -> tuple[int, str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("CNI_", "KUBERNETES_"))}
    full.update(env)
    proc = subprocess.run([MULTUS], input=stdin, env=full, capture_output=True, check=False)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode("utf-8", "replace")


def add(root: Path, stdin: bytes) -> dict[str, Any]:
    rc, out, err = execute(stdin, add_env(root))
    assert "Traceback" not in err and "Traceback" not in out, err
    assert rc == 1, (rc, out)
    assert out.endswith("\n") and out.count("\n") == 1, f"not one line: {out!r}"
    doc = json.loads(out)
    assert isinstance(doc, dict) and set(doc) <= ERROR_KEYS and isinstance(doc["code"], int)
    assert not doc["msg"].startswith("internal error"), doc
    return doc


@FUZZ
@given(st.binary(max_size=2000))
def test_any_bytes(root: Path, data: bytes) -> None:
    add(root, data)
    rc, out, err = execute(data, {"CNI_COMMAND": "VERSION"})
    assert rc == 0 and "Traceback" not in err
    assert json.loads(out)["supportedVersions"][-1] == "1.1.0"


@FUZZ
@given(json_values)
def test_any_json(root: Path, value: Any) -> None:
    add(root, encoded(confine(value, str(root))))


@FUZZ
@given(multus_confs)
def test_conf_shaped(root: Path, conf: dict[str, Any]) -> None:
    add(root, encoded(confine(conf, str(root))))


@pytest.mark.parametrize(
    "text", ["{trunc", '{"a" 1}', '"abc', "[1 2]", '"\\x"', "[" * 100_000, "{}}"]
)
def test_malformed_json_the_scanner_reports_positionally(root: Path, text: str) -> None:
    """The executable's lean JSON path must report these as code 6 (not SystemError)."""
    assert add(root, text.encode())["code"] == 6


def test_lone_surrogate_is_carried_as_json_not_crashed_on(root: Path) -> None:
    doc = add(root, b'{"name": "\\ud800", "delegates": [{"type": "fake"}]}')
    assert doc["code"] == 7 and "name" in doc["msg"]
