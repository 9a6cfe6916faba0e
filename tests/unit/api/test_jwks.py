"""RS256/ES256 bearer tokens verified with a JWKS: keys generated here, the set in a file (the
URL source has its own test against a real HTTP server, tests/integration/test_api_jwks.py).

Each key verifies only its own algorithm: no algorithm confusion (an HS256 token MACed with a
public key, an RS256 header on an EC key, a symmetric key slipped into the set)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import SecretStr, ValidationError

from api.access import Grant, Scope
from api.errors import Unauthorized, Unavailable
from api.jwks import JwksKeys, parse_jwks
from api.settings import ApiSettings
from api.tokens import token_grant

pytestmark = pytest.mark.unit

ISSUER, AUDIENCE = "https://idp.example", "wattstream"
HS_SECRET = "an-hs256-secret-of-at-least-32-bytes!"


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def jwk(private: Any, kid: str, **extra: Any) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(private, rsa.RSAPrivateKey) else ECAlgorithm
    data: dict[str, Any] = algorithm.to_jwk(private.public_key(), as_dict=True)
    return {**data, "kid": kid, **extra}


def write_jwks(path: Path, *keys: dict[str, Any]) -> str:
    path.write_text(json.dumps({"keys": list(keys)}))
    return str(path)


def claims(**changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    body = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now + timedelta(minutes=5),
        "iat": now,
        "scope": "read",
        **changes,
    }
    return {k: v for k, v in body.items() if v is not None}


def sign(private: Any, algorithm: str, kid: str | None, **changes: Any) -> str:
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims(**changes), private, algorithm, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with(secret: bytes, kid: str) -> str:
    """An HS256 token MACed with ``secret`` (PyJWT refuses to do that with a PEM key)."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = b64(json.dumps(claims(scope="admin"), default=lambda d: int(d.timestamp())).encode())
    mac = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{b64(mac)}"


def keys_for(source: str, *, min_refresh_s: float = 0.0) -> JwksKeys:
    return JwksKeys(source, cache_s=300, min_refresh_s=min_refresh_s)


def settings_for(source: str, **more: Any) -> ApiSettings:
    return ApiSettings(jwt_jwks=source, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, **more)


def test_rs256_and_es256_tokens_are_verified_with_their_keys(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    source = write_jwks(tmp_path / "jwks.json", jwk(rsa_key, "rsa-1"), jwk(ec_key, "ec-1"))
    settings, keys = settings_for(source), keys_for(source)
    assert token_grant(settings, sign(rsa_key, "RS256", "rsa-1"), keys) == Grant(Scope.READ)
    admin = sign(ec_key, "ES256", "ec-1", scope="read admin")
    assert token_grant(settings, admin, keys) == Grant(Scope.ADMIN)
    limited = token_grant(settings, sign(ec_key, "ES256", "ec-1", devices=["dev-1"]), keys)
    assert (limited.allows("dev-1"), limited.allows("dev-2")) == (True, False)


def test_issuer_audience_and_expiry_are_checked(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    source = write_jwks(tmp_path / "jwks.json", jwk(rsa_key, "rsa-1"))
    settings, keys = settings_for(source), keys_for(source)
    for changes, needle in [
        ({"iss": "https://other.example"}, "issuer"),
        ({"aud": "someone-else"}, "Audience"),
        ({"exp": datetime.now(UTC) - timedelta(minutes=5)}, "expired"),
        ({"exp": None}, '"exp"'),
    ]:
        with pytest.raises(Unauthorized, match=needle):
            token_grant(settings, sign(rsa_key, "RS256", "rsa-1", **changes), keys)


def test_scopes_come_from_the_configured_claim(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    source = write_jwks(tmp_path / "jwks.json", jwk(rsa_key, "rsa-1"))
    settings, keys = settings_for(source, jwt_scope_claim="scp"), keys_for(source)
    token = sign(rsa_key, "RS256", "rsa-1", scope=None, scp=["write"])
    assert token_grant(settings, token, keys) == Grant(Scope.WRITE)
    with pytest.raises(Unauthorized, match='"scp"'):  # the claim is required
        token_grant(settings, sign(rsa_key, "RS256", "rsa-1", scope="admin"), keys)


def test_a_token_signed_by_another_key_is_refused(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    source = write_jwks(tmp_path / "jwks.json", jwk(rsa_key, "rsa-1"))
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(Unauthorized, match="Signature verification failed"):
        token_grant(settings_for(source), sign(impostor, "RS256", "rsa-1"), keys_for(source))


def test_hs256_signed_with_the_public_key_is_refused(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    source = write_jwks(tmp_path / "jwks.json", jwk(rsa_key, "rsa-1"), jwk(ec_key, "ec-1"))
    keys = keys_for(source)
    forged = [
        hs256_with(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            kid,
        )
        for key, kid in ((rsa_key, "rsa-1"), (ec_key, "ec-1"))
    ]
    forged.append(hs256_with(json.dumps(jwk(rsa_key, "rsa-1")).encode(), "rsa-1"))
    for token in forged:
        # Without an HS256 secret no HS256 token is taken at all ...
        with pytest.raises(Unauthorized, match="'HS256' is not accepted"):
            token_grant(settings_for(source), token, keys)
        # ... and with one, HS256 meets only that secret, never a public key.
        with_secret = settings_for(source, jwt_secret=SecretStr(HS_SECRET))
        with pytest.raises(Unauthorized, match="Signature verification failed"):
            token_grant(with_secret, token, keys)


def test_a_key_verifies_only_its_own_algorithm(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    source = write_jwks(tmp_path / "jwks.json", jwk(rsa_key, "rsa-1"), jwk(ec_key, "ec-1"))
    settings, keys = settings_for(source), keys_for(source)
    # An RS256 token naming the EC key, an ES256 token naming the RSA key.
    with pytest.raises(Unauthorized, match="'ec-1' is for ES256, the token says RS256"):
        token_grant(settings, sign(rsa_key, "RS256", "ec-1"), keys)
    with pytest.raises(Unauthorized, match="'rsa-1' is for RS256, the token says ES256"):
        token_grant(settings, sign(ec_key, "ES256", "rsa-1"), keys)
    for algorithm in ("RS512", "PS256", "none"):
        header = b64(json.dumps({"alg": algorithm, "kid": "rsa-1"}).encode())
        with pytest.raises(Unauthorized, match="is not accepted"):
            token_grant(settings, f"{header}.{b64(b'{}')}.", keys)


def test_symmetric_and_mislabelled_keys_are_left_out_of_the_set(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    document = json.dumps(
        {
            "keys": [
                {"kty": "oct", "k": b64(HS_SECRET.encode()), "kid": "sym", "alg": "HS256"},
                jwk(rsa_key, "rsa-hs", alg="HS256"),
                jwk(rsa_key, "rsa-enc", use="enc"),
                jwk(p384, "p384"),
                jwk(ec_key, "ec-1", alg="ES256"),
                "not a key",
            ]
        }
    )
    assert {kid: k.algorithm for kid, k in parse_jwks(document).items()} == {"ec-1": "ES256"}


def test_an_unknown_kid_fetches_the_set_again_at_most_so_often(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "jwks.json"
    source = write_jwks(path, jwk(rsa_key, "rsa-1"))
    settings, keys = settings_for(source), keys_for(source, min_refresh_s=3600)
    assert token_grant(settings, sign(rsa_key, "RS256", "rsa-1"), keys) == Grant(Scope.READ)
    assert keys.fetches == 1
    write_jwks(path, jwk(rsa_key, "rsa-1"), jwk(ec_key, "ec-2"))  # the provider rotates
    for _ in range(5):  # made-up kids: one fetch, not one each (and within the hour, none)
        with pytest.raises(Unauthorized, match="'unknown' is not known"):
            token_grant(settings, sign(rsa_key, "RS256", "unknown"), keys)
    assert keys.fetches == 1
    eager = keys_for(source, min_refresh_s=0)
    assert token_grant(settings, sign(rsa_key, "RS256", "rsa-1"), eager) == Grant(Scope.READ)
    write_jwks(path, jwk(ec_key, "ec-3"))
    assert token_grant(settings, sign(ec_key, "ES256", "ec-3"), eager) == Grant(Scope.READ)
    assert eager.fetches == 2  # refreshed for the new kid


def test_keys_that_cannot_be_read_are_a_503_until_they_can(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "later.json"
    keys = keys_for(str(path))
    settings = settings_for(write_jwks(tmp_path / "now.json", jwk(rsa_key, "rsa-1")))
    with pytest.raises(Unavailable, match="could not be read"):
        token_grant(settings, sign(rsa_key, "RS256", "rsa-1"), keys)
    write_jwks(path, jwk(rsa_key, "rsa-1"))
    assert token_grant(settings, sign(rsa_key, "RS256", "rsa-1"), keys) == Grant(Scope.READ)


def test_the_settings_refuse_a_bad_jwks(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read the JWKS file"):
        ApiSettings(jwt_jwks=str(tmp_path / "missing.json"))
    with pytest.raises(ValidationError, match="holds no RS256 or ES256"):
        ApiSettings(jwt_jwks=write_jwks(tmp_path / "empty.json"))
    with pytest.raises(ValidationError, match="file path or an http"):
        ApiSettings(jwt_jwks="ftp://idp.example/jwks.json")
    production = {
        "environment": "production",
        "api_keys": (SecretStr("k" * 32),),
        "admin_api_keys": (SecretStr("a" * 32),),
        "database": {"url": SecretStr("postgresql://app:a-long-real-password@db/app")},
    }
    with pytest.raises(ValidationError, match="JWKS URL is https"):
        ApiSettings(jwt_jwks="http://idp.example/jwks.json", **production)
    assert ApiSettings(jwt_jwks="http://127.0.0.1:8080/jwks.json", **production).jwt_jwks
