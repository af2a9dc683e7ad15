"""Certificates for the webhook tests, as a `kubernetes.io/tls` Secret would be mounted:
a directory with tls.crt, tls.key and (from a CA, as cert-manager writes it) ca.crt."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
SANS = "subjectAltName=DNS:localhost,IP:127.0.0.1"


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("the webhook tests need openssl on PATH (`make plugins`)", pytrace=False)
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def issue(directory: Path, *, with_ca: bool = True) -> Path:
    """Write a certificate for localhost/127.0.0.1 into `directory`; signed by a fresh
    CA (ca.crt beside it) or, without `with_ca`, self-signed (its own CA)."""
    directory.mkdir(parents=True, exist_ok=True)
    work = directory / ".work"
    work.mkdir(exist_ok=True)
    if not with_ca:
        _openssl("req", "-x509", *EC, "-keyout", "key.pem", "-out", "cert.pem",
                 "-subj", "/CN=localhost", "-addext", SANS, cwd=work)  # fmt: skip
    else:
        _openssl("req", "-x509", *EC, "-keyout", "ca.key", "-out", "ca.crt",
                 "-subj", "/CN=multus-test-ca", cwd=work)  # fmt: skip
        _openssl("req", *EC[:4], "-nodes", "-keyout", "key.pem", "-out", "req.csr",
                 "-subj", "/CN=localhost", cwd=work)  # fmt: skip
        (work / "ext.cnf").write_text(SANS + "\n")
        _openssl("x509", "-req", "-in", "req.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "1", "-out", "cert.pem", "-extfile", "ext.cnf",
                 cwd=work)  # fmt: skip
    # Swapped in whole, as the kubelet updates a mounted Secret.
    (work / "cert.pem").replace(directory / "tls.crt")
    (work / "key.pem").replace(directory / "tls.key")
    if with_ca:
        (work / "ca.crt").replace(directory / "ca.crt")
    else:
        (directory / "ca.crt").unlink(missing_ok=True)
    shutil.rmtree(work)
    return directory
