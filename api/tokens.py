"""Bearer JWTs (``Authorization: Bearer``), next to the API keys, for deployments with an
identity provider, verified by PyJWT: HS256 with the shared ``jwt_secret``, RS256 and ES256 with
the provider's public keys (a JWKS file or URL, ``jwt_jwks``: :mod:`api.jwks`).

The token's header picks the way, and each way takes exactly one algorithm: ``HS256`` only ever
meets the shared secret, ``RS256``/``ES256`` only the JWKS key its ``kid`` names, and only if
that key is of that type (an RSA key verifies RS256 and nothing else). So an HS256 token "signed"
with a public key is refused, as are ``none`` and every other algorithm.

A token carries ``exp`` (required; checked with ``jwt_leeway_s`` of clock skew, as are
``nbf`` and ``iat``), ``iss`` and ``aud`` where the settings name them, and its scopes in the
claim ``jwt_scope_claim`` (``scope`` by default): ``read``, ``write`` or ``admin``,
space-separated (RFC 8693) or a list; the widest known one counts. Optional ``devices`` and
``device_prefixes`` limit it like a device key. A token that fails any check is a 401 saying
which; a valid token without a scope of this API a 403; signing keys that cannot be read (the
provider away) a 503.
"""

from __future__ import annotations

from typing import Any

import jwt

from api.access import Grant, Scope
from api.errors import Forbidden, Unauthorized, Unavailable
from api.jwks import JwksKeys, KeysUnavailable
from api.settings import ApiSettings

HMAC_ALGORITHM = "HS256"
PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256")


def _strings(claims: dict[str, Any], name: str) -> tuple[str, ...] | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Unauthorized(f"the bearer token's {name!r} claim is not a list of strings")
    return tuple(value)


def _scope(claims: dict[str, Any], name: str) -> Scope:
    value = claims.get(name)
    names = value.split() if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Unauthorized(f"the bearer token's {name!r} claim is not a string or a list")
    known = [Scope[n.upper()] for n in names if n.upper() in Scope.__members__]
    if not known:
        raise Forbidden("the bearer token carries no scope of this API (read, write, admin)")
    return max(known)


def _verification_key(
    settings: ApiSettings, keys: JwksKeys | None, token: str
) -> tuple[Any, list[str]]:
    """The key to verify ``token`` with and the one algorithm it may use."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"the bearer token is not valid: {exc}") from exc
    algorithm = header.get("alg")
    if algorithm == HMAC_ALGORITHM and settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value(), [HMAC_ALGORITHM]
    if algorithm in PUBLIC_KEY_ALGORITHMS and keys is not None:
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized("the bearer token's 'kid' is not a string")
        try:
            public = keys.key_for(kid)
        except KeysUnavailable as exc:
            raise Unavailable(str(exc)) from exc
        if public is None:
            raise Unauthorized(f"the bearer token's signing key {kid!r} is not known")
        if public.algorithm != algorithm:
            raise Unauthorized(
                f"the signing key {kid!r} is for {public.algorithm}, the token says {algorithm}"
            )
        return public.key, [public.algorithm]
    accepted = [HMAC_ALGORITHM] if settings.jwt_secret is not None else []
    accepted += list(PUBLIC_KEY_ALGORITHMS) if keys is not None else []
    if not accepted:
        raise Unauthorized(
            "this server takes no bearer tokens (WATTSTREAM_API_JWT_SECRET, "
            "WATTSTREAM_API_JWT_JWKS)"
        )
    raise Unauthorized(
        f"the bearer token's algorithm {algorithm!r} is not accepted here "
        f"(only {', '.join(accepted)})"
    )


def token_grant(settings: ApiSettings, token: str, keys: JwksKeys | None = None) -> Grant:
    """The rights of a valid bearer ``token``; :class:`Unauthorized` for any other. ``keys``:
    the identity provider's public keys, where ``settings.jwt_jwks`` names them. May block
    (a JWKS fetch): call it off the event loop."""
    key, algorithms = _verification_key(settings, keys, token)
    scope_claim = settings.jwt_scope_claim
    required = ["exp", scope_claim]
    required += ["iss"] if settings.jwt_issuer else []
    required += ["aud"] if settings.jwt_audience else []
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_s,
            options={"require": required},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the bearer token has expired") from exc
    except jwt.InvalidTokenError as exc:  # bad signature, format, claims, algorithm
        raise Unauthorized(f"the bearer token is not valid: {exc}") from exc
    scope = _scope(claims, scope_claim)
    devices, prefixes = _strings(claims, "devices"), _strings(claims, "device_prefixes")
    if devices is None and prefixes is None:
        return Grant(scope)
    return Grant(scope, frozenset(devices or ()), prefixes or ())
