"""The API serves HTTPS when given a certificate and key (``ssl_certfile``/``ssl_keyfile``)."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from tests.fixtures.api import start_api, wait_until_answering
from wattstream.localcluster.tlscerts import ensure_server_certificate

from ..conftest import Services, Spawn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_the_api_over_https_with_a_key_required_for_commands(
    database: str, services: Services, namespace: str, spawn: Spawn, tmp_path: Path
) -> None:
    certificate = ensure_server_certificate(tmp_path / "tls", ["127.0.0.1"])
    api, port = start_api(
        spawn,
        services,
        database,
        namespace,
        ssl_certfile=str(certificate.cert_file),
        ssl_keyfile=str(certificate.key_file),
    )
    trusted = ssl.create_default_context(cafile=str(certificate.ca_file))
    base = f"https://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, verify=trusted, timeout=5) as https:
        live = await wait_until_answering(api, https)
        assert live.status_code == 200
        # Write endpoints still want a key over HTTPS.
        command = {"action": "anomaly", "anomaly": "spike", "magnitude": 3.0, "duration_s": 600}
        path = "/api/v1/devices/dev-00000/commands"
        refused = await https.post(path, json=command)
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")
        if services.secrets is not None:  # the local cluster's generated key (os.environ)
            key = services.secrets.api_key
            # Past the key check: the (empty) database has no such device.
            unknown = await https.post(path, json=command, headers={"X-API-Key": key})
            assert (unknown.status_code, unknown.json()["detail"]) == (
                404,
                "no device 'dev-00000'",
            )

    # The same port does not speak plain HTTP, and an untrusted client refuses the certificate.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as plain:
        with pytest.raises(httpx.TransportError):
            await plain.get("/live")
    async with httpx.AsyncClient(base_url=base, timeout=5) as untrusted:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.get("/live")
