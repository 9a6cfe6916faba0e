"""Bearer JWTs (``Authorization: Bearer``), next to the API keys, for deployments with an
identity provider: HS256 with the shared ``jwt_secret``, verified by PyJWT.

A token carries ``exp`` (required; checked with ``jwt_leeway_s`` of clock skew, as are
``nbf`` and ``iat``), ``iss`` and ``aud`` where the settings name them, and ``scope``: ``read``,
``write`` or ``admin``, space-separated (RFC 8693) or a list; the widest known one counts.
Optional ``devices`` and ``device_prefixes`` limit it like a device key. A token that fails any
check is a 401 saying which; a valid token without a scope of this API a 403.
"""

from __future__ import annotations

from typing import Any

import jwt

from api.access import Grant, Scope
from api.errors import Forbidden, Unauthorized
from api.settings import ApiSettings

ALGORITHMS = ["HS256"]
"""Only these: a token naming another (``none``, an asymmetric one) is refused."""


def _strings(claims: dict[str, Any], name: str) -> tuple[str, ...] | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Unauthorized(f"the bearer token's {name!r} claim is not a list of strings")
    return tuple(value)


def _scope(claims: dict[str, Any]) -> Scope:
    value = claims.get("scope")
    names = value.split() if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise Unauthorized("the bearer token's 'scope' claim is not a string or a list")
    known = [Scope[n.upper()] for n in names if n.upper() in Scope.__members__]
    if not known:
        raise Forbidden("the bearer token carries no scope of this API (read, write, admin)")
    return max(known)


def token_grant(settings: ApiSettings, token: str) -> Grant:
    """The rights of a valid bearer ``token``; :class:`Unauthorized` for any other."""
    if settings.jwt_secret is None:
        raise Unauthorized("this server takes no bearer tokens (WATTSTREAM_API_JWT_SECRET)")
    required = ["exp", "scope"]
    required += ["iss"] if settings.jwt_issuer else []
    required += ["aud"] if settings.jwt_audience else []
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=ALGORITHMS,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_s,
            options={"require": required},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("the bearer token has expired") from exc
    except jwt.InvalidTokenError as exc:  # bad signature, format, claims, algorithm
        raise Unauthorized(f"the bearer token is not valid: {exc}") from exc
    scope = _scope(claims)
    devices, prefixes = _strings(claims, "devices"), _strings(claims, "device_prefixes")
    if devices is None and prefixes is None:
        return Grant(scope)
    return Grant(scope, frozenset(devices or ()), prefixes or ())
