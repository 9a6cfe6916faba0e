"""A private CA and a server certificate for the local cluster's TLS listeners (openssl CLI).

``ensure_server_certificate(directory, hosts)`` creates, once, under ``directory`` (mode 0700):
``ca.key``/``ca.crt`` (the CA clients trust) and ``server.key``/``server.crt`` signed by it,
valid for ``localhost`` and each of ``hosts`` (IP addresses or names). Existing files are kept.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wattstream.localcluster.errors import ServiceError
from wattstream.localcluster.install import find_program
from wattstream.localcluster.process import run

VALID_DAYS = 825


@dataclass(frozen=True)
class ServerCertificate:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _san(hosts: Sequence[str]) -> str:
    names = ["DNS:localhost"]
    for host in hosts:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            names.append(f"DNS:{host}")
        else:
            names.append(f"IP:{host}")
    return ",".join(dict.fromkeys(names))


def ensure_server_certificate(directory: Path, hosts: Sequence[str]) -> ServerCertificate:
    """The CA and server certificate under ``directory``, created if missing."""
    certificate = ServerCertificate(
        directory / "ca.crt", directory / "server.crt", directory / "server.key"
    )
    if all(path.exists() for path in (certificate.ca_file, certificate.cert_file)):
        return certificate
    openssl = find_program("openssl")
    if openssl is None:
        raise ServiceError("TLS needs the openssl program (Debian package openssl)")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    days = str(VALID_DAYS)
    run(
        [str(openssl), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
         "-out", "ca.crt", "-days", days, "-subj", "/CN=WattStream local CA"],
        what="creating the local CA", cwd=directory,
    )  # fmt: skip
    run(
        [str(openssl), "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
         "-out", "server.csr", "-subj", f"/CN={hosts[0] if hosts else 'localhost'}"],
        what="creating the server key", cwd=directory,
    )  # fmt: skip
    (directory / "san.ext").write_text(f"subjectAltName={_san(hosts)}\n")
    run(
        [str(openssl), "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.crt", "-days", days, "-extfile", "san.ext"],
        what="signing the server certificate", cwd=directory,
    )  # fmt: skip
    for key in ("ca.key", "server.key"):
        (directory / key).chmod(0o600)
    return certificate
