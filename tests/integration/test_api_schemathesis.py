"""The API against its own OpenAPI description (schemathesis): no input makes it answer 5xx.

In process (the ASGI app through Starlette's test client, lifespan included) on a real
PostgreSQL holding the REST tests' fixture rows (Berlin over both DST changes, Kolkata, alerts,
forecasts, models), with the real Kafka live feed and MQTT command publisher, so commands are
really published. Every operation is called with generated valid and invalid input, once
without an API key and once with the right one; each response must not be a server error,
must match its documented schema and content type, and no key must never pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import checks

from api.app import create_app
from api.settings import ApiSettings

from ..conftest import migrated_database
from .test_api_rest import KEY, load_fixtures, settings_for

if TYPE_CHECKING:
    from schemathesis.generation.case import Case

    from tests.conftest import Services

pytestmark = pytest.mark.integration

CHECKS = [
    checks.not_a_server_error,
    checks.response_schema_conformance,
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


@pytest.fixture(scope="module")
def api_client(schemathesis_database: str, services: Services) -> Iterator[TestClient]:
    app = create_app(settings_for(schemathesis_database, services, "tschemathesis"))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


# The description is built without I/O (create_app only wires objects; the lifespan connects).
# Not schemathesis.pytest.from_fixture: its lazy loader sets Function._nodeid, gone in pytest 9.
schema = schemathesis.openapi.from_dict(create_app(ApiSettings()).openapi())
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


def call(client: TestClient, case: Case, key: str | None) -> None:
    headers = {"X-API-Key": key} if key else {}
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=headers)
    if not key:
        kwargs["headers"].pop("X-API-Key", None)
    assert not kwargs.get("cookies"), "the API takes no cookies"
    response = client.request(
        kwargs["method"],
        kwargs["url"],
        params=kwargs.get("params"),
        headers=kwargs.get("headers"),
        json=kwargs.get("json"),
        content=kwargs.get("data") if isinstance(kwargs.get("data"), bytes | str) else None,
    )
    case.validate_response(response, checks=CHECKS, headers=headers)
    secured = case.operation.definition.raw.get("security")
    if key is None and secured and case.method.upper() == case.operation.method.upper():
        # 401, or 400/422 when the request is refused before the key is looked at.
        assert response.status_code in {400, 401, 422}, response.text


@schema.parametrize()
@EXAMPLES
def test_no_server_error_without_a_key(case: Case, api_client: TestClient) -> None:
    call(api_client, case, None)


@schema.parametrize()
@EXAMPLES
def test_no_server_error_with_the_key(case: Case, api_client: TestClient) -> None:
    call(api_client, case, KEY)
