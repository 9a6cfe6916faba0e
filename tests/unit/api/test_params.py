"""What the API's parameters refuse before any query runs: timestamps that are not ISO-8601
(a bare number is not seconds since 1970 here), text with NUL (which PostgreSQL cannot store:
it was a 500), and which methods a path has (all of them in ``Allow``)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError

from api.app import create_app
from api.models import AcknowledgeIn
from api.params import Instant
from api.settings import ApiSettings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("text", ["0.5", "1700000000", "-1", "1e9", "2026", "now"])
def test_an_instant_is_iso_8601_never_a_number(text: str) -> None:
    with pytest.raises(ValidationError, match="not an ISO-8601 date-time"):
        TypeAdapter(Instant).validate_python(text)


def test_an_instant_with_an_offset_is_taken() -> None:
    instant = TypeAdapter(Instant).validate_python("2026-03-29 01:30:00+01:00")
    assert instant.isoformat() == "2026-03-29T01:30:00+01:00"
    with pytest.raises(ValidationError, match="timezone"):
        TypeAdapter(Instant).validate_python("2026-03-29T01:30:00")


def test_free_text_with_nul_is_refused() -> None:
    with pytest.raises(ValidationError, match="by"):
        AcknowledgeIn(by="ana\x00")
    with pytest.raises(ValidationError, match="note"):
        AcknowledgeIn(by="ana", note="\x00")
    assert AcknowledgeIn(by="Ana Łukasz ✓", note="on it\n").by == "Ana Łukasz ✓"


def test_a_405_names_every_method_of_the_path() -> None:
    client = TestClient(create_app(ApiSettings()))  # no lifespan: a 405 needs no resources
    answer = client.request("OPTIONS", "/api/v1/tariffs")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, HEAD, PUT"
    assert answer.headers["content-type"] == "application/problem+json"
    answer = client.request("DELETE", "/api/v1/devices/dev-1/commands")
    assert (answer.status_code, answer.headers["allow"]) == (405, "POST")
