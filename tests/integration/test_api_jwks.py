"""RS256/ES256 bearer tokens against the real app, with the identity provider's JWKS served
over HTTP by a real server on a local socket: tokens of either key type work where keys do, a
rotated key is fetched when a token names it, the keys in hand keep working while the provider
is away, and an app that never got the keys answers 503 (``Retry-After``) until it can."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from api.app import create_app

from .test_api_scopes import database, make_settings

if TYPE_CHECKING:
    from tests.conftest import Services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

__all__ = ["database"]  # the module-scoped database fixture, shared with the scope tests

ISSUER, AUDIENCE = "https://idp.test", "wattstream-api"


class Provider:
    """A JWKS endpoint on 127.0.0.1 whose key set the test changes; counts its fetches."""

    def __init__(self, port: int = 0) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.fetches += 1
                body = json.dumps({"keys": provider.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/.well-known/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Nothing listens on the port any more (connections are refused)."""
        if not self._thread.is_alive():
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def provider() -> Iterator[Provider]:
    served = Provider()
    yield served
    served.stop()


def public(private: Any, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else ECAlgorithm
    return {**algorithm.to_jwk(private.public_key(), as_dict=True), "kid": kid}


def bearer(private: Any, algorithm: str, kid: str, scope: str, **claims: Any) -> dict[str, str]:
    now = datetime.now(UTC)
    body = {"iss": ISSUER, "aud": AUDIENCE, "exp": now + timedelta(minutes=5), "scope": scope}
    token = jwt.encode({**body, **claims}, private, algorithm, headers={"kid": kid})
    return {"Authorization": f"Bearer {token}"}


def app_client(database: str, services: Services, url: str) -> TestClient:
    settings = make_settings(
        database,
        services,
        require_read_key=True,
        jwt_jwks=url,
        jwt_jwks_min_refresh_s=0,
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )
    return TestClient(create_app(settings))


def test_tokens_of_both_key_types_follow_a_rotation(
    database: str, services: Services, provider: Provider
) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    provider.keys = [public(rsa_key, "rsa-1"), public(ec_key, "ec-1")]
    with app_client(database, services, provider.url) as client:
        read = bearer(rsa_key, "RS256", "rsa-1", "read")
        assert client.get("/api/v1/devices", headers=read).status_code == 200
        assert provider.fetches == 1
        command = {"action": "online"}
        path = "/api/v1/devices/dev-own/commands"
        assert client.post(path, json=command, headers=read).status_code == 403
        write = bearer(ec_key, "ES256", "ec-1", "write", devices=["dev-own"])
        assert client.post(path, json=command, headers=write).status_code == 202
        assert client.get("/api/v1/fleet/summary", headers=write).status_code == 403
        wrong_issuer = bearer(rsa_key, "RS256", "rsa-1", "read", iss="https://evil.test")
        assert client.get("/api/v1/devices", headers=wrong_issuer).status_code == 401
        assert provider.fetches == 1  # the set is cached

        # The provider rotates: a token naming the new key makes the API fetch the set again.
        rotated = ec.generate_private_key(ec.SECP256R1())
        provider.keys = [public(rsa_key, "rsa-1"), public(rotated, "ec-2")]  # ec-1 retired
        answer = client.get("/api/v1/devices", headers=bearer(rotated, "ES256", "ec-2", "read"))
        assert answer.status_code == 200, answer.text
        assert provider.fetches == 2

        # The provider away: the keys in hand still verify; a retired key's token is a 401.
        provider.stop()
        assert client.get("/api/v1/devices", headers=read).status_code == 200
        retired = client.get("/api/v1/devices", headers=write)
        assert retired.status_code == 401
        assert "'ec-1' is not known" in retired.json()["detail"]


def test_without_the_keys_a_token_is_a_503_until_the_provider_is_back(
    database: str, services: Services, provider: Provider
) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    url = provider.url
    provider.stop()
    with app_client(database, services, url) as client:
        read = bearer(rsa_key, "RS256", "rsa-1", "read")
        answer = client.get("/api/v1/devices", headers=read)
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"]
        assert answer.headers["content-type"] == "application/problem+json"
        assert "could not be read" in answer.json()["detail"]
        back = Provider(provider.port)  # the provider is back, on the same address
        try:
            back.keys = [public(rsa_key, "rsa-1")]
            assert client.get("/api/v1/devices", headers=read).status_code == 200
            assert back.fetches == 1
        finally:
            back.stop()
