"""What a key may do: scopes, keys limited to some devices, and how they come from settings."""

from __future__ import annotations

import json

import pytest
from pydantic import SecretStr, ValidationError

from api.__main__ import parse_args
from api.access import Grant, Scope, authorize, grant_of, like_prefix
from api.errors import Forbidden, Unauthorized
from api.settings import ApiSettings, DeviceKey

pytestmark = pytest.mark.unit

READ, WRITE, ADMIN = "r" * 24, "w" * 24, "a" * 24
SITE = "s" * 24


def settings(**overrides: object) -> ApiSettings:
    return ApiSettings(
        read_api_keys=(SecretStr(READ),),
        api_keys=(SecretStr(WRITE),),
        admin_api_keys=(SecretStr(ADMIN),),
        device_keys=(
            DeviceKey(
                key=SecretStr(SITE), scope="write", devices=("dev-7",), prefixes=("berlin_",)
            ),
        ),
        **overrides,  # type: ignore[arg-type]
    )


def test_unrestricted_keys_reach_every_device_with_their_scope() -> None:
    configured = settings()
    assert grant_of(configured, READ) == Grant(Scope.READ)
    assert grant_of(configured, WRITE) == Grant(Scope.WRITE)
    assert grant_of(configured, ADMIN) == Grant(Scope.ADMIN)
    assert grant_of(configured, "x" * 24) is None
    assert grant_of(configured, None) is None
    admin = grant_of(configured, ADMIN)
    assert admin is not None
    assert admin.allows("anything")
    assert not admin.restricted
    assert admin.sql_filter() == (None, None)
    admin.check_fleet()


def test_a_device_key_reaches_its_devices_and_prefixes_only() -> None:
    grant = grant_of(settings(), SITE)
    assert grant is not None
    assert grant.scope is Scope.WRITE
    assert grant.restricted
    assert [grant.allows(d) for d in ("dev-7", "berlin_1", "dev-70", "berlinx1", "dev-8")] == [
        True,
        True,
        False,
        False,  # "_" is a literal, not LIKE's one-character wildcard
        False,
    ]
    with pytest.raises(Forbidden, match="does not reach device 'dev-8'"):
        grant.check_device("dev-8")
    grant.check_device("berlin_9")
    with pytest.raises(Forbidden, match="fleet-wide"):
        grant.check_fleet()
    assert grant.sql_filter() == (["dev-7"], ["berlin\\_%"])
    assert like_prefix("a%b\\") == "a\\%b\\\\%"


def test_authorize_says_401_for_no_or_an_unknown_key_and_403_for_too_narrow_a_scope() -> None:
    configured = settings()
    with pytest.raises(Unauthorized, match="needs an API key"):
        authorize(configured, None, Scope.READ)
    with pytest.raises(Unauthorized, match="not valid"):
        authorize(configured, "y" * 24, Scope.READ)
    with pytest.raises(Forbidden, match="scope admin"):
        authorize(configured, SITE, Scope.ADMIN)
    assert authorize(configured, SITE, Scope.WRITE).restricted
    bare = ApiSettings(api_keys=(), admin_api_keys=())
    with pytest.raises(Unauthorized, match="no API keys are configured"):
        authorize(bare, READ, Scope.READ)


def test_device_keys_come_as_json_from_the_environment_or_repeated_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entry = {"key": SITE, "scope": "read", "devices": ["dev-1"], "prefixes": ["site-a-"]}
    monkeypatch.setenv("WATTSTREAM_API_DEVICE_KEYS", json.dumps([entry]))
    (key,) = ApiSettings().device_keys
    assert (key.scope, key.devices, key.prefixes) == ("read", ("dev-1",), ("site-a-",))
    other = {"key": "t" * 24, "devices": ["dev-2"]}
    flags = ["--device-keys", json.dumps(entry), "--device-keys", json.dumps(other)]
    assert [k.devices for k in parse_args(flags).device_keys] == [("dev-1",), ("dev-2",)]


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ({"key": SITE}, "names devices or prefixes"),
        ({"key": SITE, "devices": ["bad id"]}, "pattern"),
        ({"key": SITE, "devices": ["d"], "scope": "root"}, "scope"),
        ({"key": "short", "devices": ["d"]}, "refuses the placeholder"),
    ],
)
def test_bad_device_keys_are_refused(entry: dict[str, object], needle: str) -> None:
    strong = (SecretStr("k" * 32),)
    with pytest.raises(ValidationError, match=needle):
        ApiSettings(
            environment="production",
            database={"url": "postgresql://w:a-real-secret@db.example/w"},  # type: ignore[arg-type]
            api_keys=strong,
            admin_api_keys=strong,
            device_keys=[entry],  # type: ignore[list-item]
        )
