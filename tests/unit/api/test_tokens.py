"""Bearer JWTs: signature, algorithm, expiry with clock skew, issuer, audience, scope and
device claims; and no token, however mangled, gets past as anything but a 401 or 403."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from api.access import Grant, Scope
from api.errors import ApiProblem, Forbidden, Unauthorized
from api.settings import ApiSettings
from api.tokens import token_grant

pytestmark = pytest.mark.unit

SECRET = "an-hs256-secret-of-at-least-32-bytes!"


SETTINGS = ApiSettings(
    jwt_secret=SecretStr(SECRET), jwt_issuer="https://idp.example", jwt_audience="wattstream"
)


def token(secret: str = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    now = datetime.now(UTC)
    body = {
        "iss": "https://idp.example",
        "aud": "wattstream",
        "exp": now + timedelta(minutes=5),
        "iat": now,
        "scope": "read",
        **claims,
    }
    return jwt.encode({k: v for k, v in body.items() if v is not None}, secret, algorithm)


def test_a_valid_token_carries_its_widest_scope() -> None:
    assert token_grant(SETTINGS, token()) == Grant(Scope.READ)
    assert token_grant(SETTINGS, token(scope="openid read write")) == Grant(Scope.WRITE)
    assert token_grant(SETTINGS, token(scope=["admin", "read"])) == Grant(Scope.ADMIN)


def test_device_claims_limit_a_token() -> None:
    grant = token_grant(SETTINGS, token(devices=["dev-1"], device_prefixes=["site-a-"]))
    assert grant.restricted
    assert (grant.allows("dev-1"), grant.allows("site-a-7"), grant.allows("dev-2")) == (
        True,
        True,
        False,
    )
    assert token_grant(SETTINGS, token(devices=[])).allows("dev-1") is False
    with pytest.raises(Unauthorized, match="'devices' claim"):
        token_grant(SETTINGS, token(devices="dev-1"))


def test_expiry_is_checked_with_the_clock_skew_allowed() -> None:
    now = datetime.now(UTC)
    assert SETTINGS.jwt_leeway_s == 30
    token_grant(SETTINGS, token(exp=now - timedelta(seconds=10)))  # within the skew
    with pytest.raises(Unauthorized, match="expired"):
        token_grant(SETTINGS, token(exp=now - timedelta(seconds=60)))
    with pytest.raises(Unauthorized, match="not yet valid"):
        token_grant(SETTINGS, token(nbf=now + timedelta(seconds=60)))
    token_grant(SETTINGS, token(nbf=now + timedelta(seconds=10)))
    with pytest.raises(Unauthorized, match='"exp"'):
        token_grant(SETTINGS, token(exp=None))


@pytest.mark.parametrize(
    ("claims", "needle"),
    [
        ({"iss": "https://other.example"}, "issuer"),
        ({"iss": None}, '"iss"'),
        ({"aud": "someone-else"}, "Audience"),
        ({"scope": None}, '"scope"'),
        ({"scope": 7}, "'scope' claim"),
    ],
)
def test_issuer_audience_and_scope_are_checked(claims: dict[str, Any], needle: str) -> None:
    with pytest.raises(Unauthorized, match=needle):
        token_grant(SETTINGS, token(**claims))


def test_a_token_without_a_scope_of_this_api_is_forbidden() -> None:
    with pytest.raises(Forbidden, match="no scope of this API"):
        token_grant(SETTINGS, token(scope="openid profile"))


def test_forged_tokens_are_refused() -> None:
    with pytest.raises(Unauthorized, match="Signature verification failed"):
        token_grant(SETTINGS, token(secret="another-secret-that-is-32-bytes-long"))
    unsigned = jwt.encode({"scope": "admin", "exp": 4_000_000_000}, None, algorithm="none")
    with pytest.raises(Unauthorized, match="'none' is not accepted"):
        token_grant(SETTINGS, unsigned)
    with pytest.raises(Unauthorized, match="takes no bearer tokens"):
        token_grant(ApiSettings(), token())


def test_the_secret_must_be_long_enough_and_not_a_placeholder() -> None:
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        ApiSettings(jwt_secret=SecretStr("short"))


@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.hex()))
def test_no_mangled_token_gets_through_or_breaks(text: str) -> None:
    with pytest.raises(Unauthorized):
        token_grant(SETTINGS, text)


@given(
    position=st.integers(min_value=0, max_value=500),
    replacement=st.characters(codec="ascii"),
)
def test_a_token_changed_anywhere_is_refused(position: int, replacement: str) -> None:
    good = token(scope="admin")
    index = position % len(good)
    changed = good[:index] + replacement + good[index + 1 :]
    try:
        grant = token_grant(SETTINGS, changed)
    except ApiProblem as problem:
        assert problem.status in {401, 403}
        return
    # Base64url padding bits: a change that decodes to the same bytes is the same token.
    assert jwt.get_unverified_header(changed) == jwt.get_unverified_header(good)
    assert grant == Grant(Scope.ADMIN)
