"""Assertions shared by the fault tests: invariant I4 (one JSON document, rc, no
traceback) and a run of multus that measures its peak memory."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.cni import MULTUS, CniCall

ERROR_KEYS = {"cniVersion", "code", "msg", "details"}
TIME = "/usr/bin/time"  # GNU time, for peak RSS


def one_document(stdout: str) -> Any:
    """The single JSON document `stdout` holds; fails on none, two, or trailing junk."""
    text = stdout.strip()
    assert text, "nothing on stdout"
    decoder = json.JSONDecoder()
    doc, end = decoder.raw_decode(text)
    assert text[end:].strip() == "", f"more than one document on stdout: {stdout!r}"
    return doc


def assert_error(call: CniCall, code: int | None = None) -> dict[str, Any]:
    """I4 for a failure: rc != 0, one CNI error document, no traceback anywhere."""
    assert call.rc != 0, f"expected a failure, got rc 0: {call.stdout!r}"
    assert "Traceback" not in call.stdout and "Traceback" not in call.stderr, call.stderr
    doc = one_document(call.stdout)
    assert isinstance(doc, dict) and set(doc) <= ERROR_KEYS, doc
    assert {"cniVersion", "code", "msg"} <= set(doc), doc
    assert isinstance(doc["code"], int) and doc["msg"], doc
    if code is not None:
        assert doc["code"] == code, doc
    return doc


def assert_ok(call: CniCall, *, prints: bool = True) -> Any:
    """I4 for a success: rc 0, one result document (ADD) or nothing (DEL, CHECK)."""
    assert call.rc == 0, f"rc {call.rc}: {call.stdout!r} {call.stderr!r}"
    assert "Traceback" not in call.stderr
    if not prints:
        assert call.stdout.strip() == "", call.stdout
        return None
    return one_document(call.stdout)


@dataclass
class MeasuredCall:
    call: CniCall
    seconds: float
    max_rss_kib: int


def run_measured(stdin: bytes, env: dict[str, str]) -> MeasuredCall:
    """Exec multus (`env` is its whole environment) under GNU time to read its peak RSS
    (and that of the delegates it waited for). Not via our own wait4: a child forked from
    this (possibly large) test process inherits its RSS high-water mark, across exec."""
    with (
        tempfile.TemporaryFile() as fin,
        tempfile.TemporaryFile() as fout,
        tempfile.TemporaryFile() as ferr,
        tempfile.NamedTemporaryFile(prefix="mib-rss-") as frss,
    ):
        fin.write(stdin)
        fin.seek(0)
        started = time.monotonic()
        proc = subprocess.run(
            [TIME, "-f", "%M", "-o", frss.name, MULTUS],
            stdin=fin,
            stdout=fout,
            stderr=ferr,
            env=env,
            check=False,
        )
        seconds = time.monotonic() - started
        fout.seek(0)
        ferr.seek(0)
        call = CniCall(
            proc.returncode,
            fout.read().decode("utf-8", "replace"),
            ferr.read().decode("utf-8", "replace"),
        )
        max_rss_kib = int(Path(frss.name).read_text().split()[-1])
    return MeasuredCall(call, seconds, max_rss_kib)
