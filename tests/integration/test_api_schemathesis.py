"""The API against its own OpenAPI description (schemathesis), once per scope: no input makes it
answer 5xx or a status its operation does not document, and 401/403 come exactly where the
operation's scope is more than the key's.

In process (the ASGI app through Starlette's test client, lifespan included) on a real
PostgreSQL holding the REST tests' fixture rows (Berlin over both DST changes, Kolkata, alerts,
forecasts, models), with the real Kafka live feed and MQTT command publisher, so commands are
really published. The app is configured as outside development (reads need a key, a rate
limit), and the description under test is that app's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from pydantic import SecretStr
from schemathesis import checks

from api.app import create_app
from api.deps import Scope
from api.settings import ApiSettings

from ..conftest import migrated_database
from .test_api_rest import ADMIN_KEY, KEY, load_fixtures, settings_for

if TYPE_CHECKING:
    from schemathesis.generation.case import Case

    from tests.conftest import Services

pytestmark = pytest.mark.integration

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.content_type_conformance,
]
"""Not ``ignored_auth``: it re-sends the request over the network; the no-key test below
checks the same in process."""
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
async def schemathesis_database(services: Services) -> AsyncIterator[str]:
    async with migrated_database(services) as url:
        await load_fixtures(url)
        yield url


READ_KEY = "schemathesis-read-key-0123456789"
KEYS = {None: None, Scope.READ: READ_KEY, Scope.WRITE: KEY, Scope.ADMIN: ADMIN_KEY}
AS_DEPLOYED: dict[str, Any] = {
    "require_read_key": True,
    "read_api_keys": (SecretStr(READ_KEY),),
    # A limit no test reaches: the description says 429 only where one is configured.
    "rate_limit_per_s": 1000.0,
    "rate_limit_burst": 1_000_000,
}
"""Settings as outside development; the test app has them too."""
NEEDS: dict[tuple[str, str], Scope] = {
    ("POST", "/api/v1/devices/{device_id}/commands"): Scope.WRITE,
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): Scope.WRITE,
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): Scope.WRITE,
    ("POST", "/api/v1/admin/models/{model_id}/activate"): Scope.ADMIN,
    # Training is turned off in these settings (the default): a 409, never a run.
    ("POST", "/api/v1/admin/training"): Scope.ADMIN,
    ("GET", "/api/v1/admin/training/{training_id}"): Scope.ADMIN,
    ("GET", "/api/v1/admin/training/{training_id}/events"): Scope.ADMIN,
    ("PUT", "/api/v1/tariffs"): Scope.ADMIN,
}
"""Every other operation under /api/v1 needs ``read``; the operations endpoints nothing."""


@pytest.fixture(scope="module")
def api_client(schemathesis_database: str, services: Services) -> Iterator[TestClient]:
    settings = settings_for(schemathesis_database, services, "tschemathesis", **AS_DEPLOYED)
    app = create_app(settings)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


# The description is built without I/O (create_app only wires objects; the lifespan connects).
# Not schemathesis.pytest.from_fixture: its lazy loader sets Function._nodeid, gone in pytest 9.
DOCUMENT = create_app(ApiSettings(**AS_DEPLOYED)).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
KNOWN = {"device_id": ["dev-ber", "dev-kol", "dev-raw"], "model_id": ["gbm-1", "gbm-2"]}


@schema.hook
def map_path_parameters(
    _context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Most generated ids name nothing (404); steer half of them to the fixture's rows."""
    if not path_parameters:
        return path_parameters
    mapped = dict(path_parameters)
    for name, known in KNOWN.items():
        value = mapped.get(name)
        if isinstance(value, str) and len(value) % 2 == 0:
            mapped[name] = known[len(value) // 2 % len(known)]
    return mapped


def needed(case: Case) -> Scope | None:
    path = case.operation.path
    if not path.startswith("/api/v1/"):
        return None
    return NEEDS.get((case.operation.method.upper(), path), Scope.READ)


def call(client: TestClient, case: Case, scope: Scope | None) -> None:
    key = KEYS[scope]
    headers = {"X-API-Key": key} if key else {}
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    # The key of the scope under test, whatever schemathesis generated for the security scheme.
    kwargs["headers"].pop("X-API-Key", None)
    kwargs["headers"].pop("Authorization", None)  # bearer tokens: tests/unit/api/test_tokens.py
    kwargs["headers"].update(headers)
    assert not kwargs.get("cookies"), "the API takes no cookies"
    response = client.request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers=kwargs.get("headers"),
        json=kwargs.get("json"),
        content=kwargs.get("data") if isinstance(kwargs.get("data"), bytes | str) else None,
    )
    # /ready's 503 is its documented answer, not a server error: Kafka or the database slow to
    # answer its probe (a loaded machine); the other checks still hold it to its description.
    ready = case.operation.path == "/ready"
    used = [c for c in CHECKS if c is not checks.not_a_server_error] if ready else CHECKS
    case.validate_response(response, checks=used, headers=headers)
    status = response.status_code
    if case.method.upper() != case.operation.method.upper():  # a method the path does not have
        assert status == 405, response.text
        assert case.operation.method.upper() in response.headers["allow"]
        return
    need = needed(case)
    if need is None or (scope is not None and scope >= need):
        assert status not in {401, 403}, response.text
        return
    # Too narrow: refused, unless the request is refused before its key is looked at (a body
    # that is not JSON, or not even text).
    refused = 401 if scope is None else 403
    assert status in {refused, 400, 422}, response.text
    assert case.operation.definition.raw.get("security"), "refused, yet documented as open"


def test_the_description_is_the_apps(api_client: TestClient) -> None:
    assert api_client.get("/openapi.json").json() == DOCUMENT
    operations = {
        (method.upper(), path)
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if path.startswith("/api/v1/")
    }
    assert set(NEEDS) <= operations
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            secured = bool(operation.get("security"))
            assert secured == path.startswith("/api/v1/"), (method, path)
            assert {"413", "503"} <= set(operation["responses"]), (method, path)
            assert ("429" in operation["responses"]) == secured, (method, path)


@schema.parametrize()
@EXAMPLES
def test_without_a_key(case: Case, api_client: TestClient) -> None:
    call(api_client, case, None)


@schema.parametrize()
@EXAMPLES
def test_with_a_read_key(case: Case, api_client: TestClient) -> None:
    call(api_client, case, Scope.READ)


@schema.parametrize()
@EXAMPLES
def test_with_a_write_key(case: Case, api_client: TestClient) -> None:
    call(api_client, case, Scope.WRITE)


@schema.parametrize()
@EXAMPLES
def test_with_an_admin_key(case: Case, api_client: TestClient) -> None:
    call(api_client, case, Scope.ADMIN)
