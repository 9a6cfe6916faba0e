"""The public keys of an identity provider (a JWKS, RFC 7517) for RS256/ES256 bearer tokens.

The set comes from a file or an ``http(s)`` URL (``ApiSettings.jwt_jwks``), is kept for
``jwt_jwks_cache_s`` and fetched again when a token names a key id the set does not hold (the
provider rotated its keys), at most once per ``jwt_jwks_min_refresh_s`` (a flood of made-up key
ids costs one fetch, not one each).

Each key is pinned to one algorithm by its type: ``RSA`` -> ``RS256``, ``EC`` on P-256 ->
``ES256``. Any other key (``oct`` above all: a symmetric key in a public set would let anyone
sign) and a key whose ``alg`` names another algorithm are left out, so a token is verified
only with the algorithm its key is for (no algorithm confusion: an ``HS256`` token "signed"
with a public key never meets that key).

Fetching blocks (urllib): callers run it off the event loop (FastAPI runs the key
dependencies in its thread pool; the live feed uses ``asyncio.to_thread``). A lock keeps
concurrent refreshes to one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 5.0
MAX_JWKS_BYTES = 1 << 20


class KeysUnavailable(Exception):  # a state, like the API's Unavailable
    """The key set could not be read (retriable: the provider or the file may come back)."""


class InvalidJwks(ValueError):
    """A document that is not a JWKS (poison until the file or the provider changes)."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    kid: str | None
    algorithm: str
    """``RS256`` or ``ES256``: the one algorithm this key verifies."""
    key: Any
    """The ``cryptography`` public key PyJWT verifies with."""


def pinned_algorithm(jwk: dict[str, Any]) -> str | None:
    """The one algorithm a JWK may verify, by its type; ``None``: not a key this API uses."""
    kty, crv = jwk.get("kty"), jwk.get("crv")
    algorithm = "RS256" if kty == "RSA" else "ES256" if kty == "EC" and crv == "P-256" else None
    if algorithm is None or jwk.get("alg", algorithm) != algorithm:
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    return algorithm


def parse_jwks(document: bytes | str) -> dict[str | None, PublicKey]:
    """The usable keys of a JWKS document by key id; :class:`InvalidJwks` if it is not one."""
    try:
        data = json.loads(document)
    except ValueError as exc:
        raise InvalidJwks(f"not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise InvalidJwks('a JWKS is an object with a "keys" list')
    keys: dict[str | None, PublicKey] = {}
    for jwk in data["keys"]:
        if not isinstance(jwk, dict):
            continue
        algorithm = pinned_algorithm(jwk)
        if algorithm is None:
            log.debug("JWKS: leaving out a key of type %r, alg %r", jwk.get("kty"), jwk.get("alg"))
            continue
        try:
            key = jwt.PyJWK(jwk, algorithm).key
        except jwt.PyJWKError as exc:
            log.warning("JWKS: leaving out an invalid key (kid %r): %s", jwk.get("kid"), exc)
            continue
        kid = jwk.get("kid")
        keys[kid if isinstance(kid, str) else None] = PublicKey(kid, algorithm, key)
    return keys


def read_source(source: str) -> bytes:
    """The document at ``source``: an ``http(s)`` URL or a file path."""
    if source.startswith(("http://", "https://")):
        request = urllib.request.Request(source, headers={"Accept": "application/json"})  # noqa: S310  # scheme checked above
        with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as answer:  # noqa: S310
            body: bytes = answer.read(MAX_JWKS_BYTES + 1)
    else:
        body = Path(source).read_bytes()
    if len(body) > MAX_JWKS_BYTES:
        raise InvalidJwks(f"larger than {MAX_JWKS_BYTES} bytes")
    return body


class JwksKeys:
    """The key set of one source, cached and refreshed (see the module doc). Thread-safe."""

    def __init__(
        self,
        source: str,
        *,
        cache_s: float,
        min_refresh_s: float,
        read: Callable[[str], bytes] = read_source,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self._cache_s, self._min_refresh_s = cache_s, min_refresh_s
        self._read, self._clock = read, clock
        self._keys: dict[str | None, PublicKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def key_for(self, kid: str | None) -> PublicKey | None:
        """The key ``kid`` names (``None``: the set's only key), fetching the set when it is
        stale or lacks that key; ``None`` if even a fresh set has no such key.
        :class:`KeysUnavailable` when no set could be read at all."""
        with self._lock:
            now = self._clock()
            stale = self._fetched_at is None or now - self._fetched_at > self._cache_s
            if stale or self._find(kid) is None:
                self._refresh(now)
            return self._find(kid)

    def _find(self, kid: str | None) -> PublicKey | None:
        if kid is None and len(self._keys) == 1:
            return next(iter(self._keys.values()))
        return self._keys.get(kid)

    def _refresh(self, now: float) -> None:
        if self._attempted_at is not None and now - self._attempted_at < self._min_refresh_s:
            # Asked again too soon (an unknown kid, a stale set, the source away): no fetch.
            if self._fetched_at is None:
                raise KeysUnavailable(f"the token signing keys could not be read ({self.source})")
            return
        self._attempted_at = now
        self.fetches += 1
        try:
            keys = parse_jwks(self._read(self.source))
        except (OSError, ValueError) as exc:  # urllib's errors are OSErrors
            log.warning("JWKS: could not read %s: %s", self.source, exc)
            if self._fetched_at is None:
                raise KeysUnavailable(f"the token signing keys could not be read: {exc}") from exc
            return  # keep the keys we had (the provider may be briefly away)
        if not keys:
            log.warning("JWKS: %s holds no RS256 or ES256 signing key", self.source)
        self._keys, self._fetched_at = keys, now
