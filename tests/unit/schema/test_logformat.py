"""JSON log events: one line each, ISO-8601 UTC time, service, level, request id, extras; the
flag that turns them on; fuzzed with arbitrary messages and extras."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.__main__ import parse_args
from schema.logformat import JsonFormatter, request_id

pytestmark = pytest.mark.unit


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("tests.logformat")
    made = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_an_event_has_time_service_level_and_the_request_id() -> None:
    formatter = JsonFormatter("bridge")
    token = request_id.set("req-123")
    try:
        line = formatter.format(record("sent %d of %s", 3, "x", partition=2, offset=41))
    finally:
        request_id.reset(token)
    event = json.loads(line)
    ts = datetime.fromisoformat(event.pop("ts"))
    assert ts.utcoffset() == UTC.utcoffset(None)
    assert event == {
        "level": "WARNING",
        "service": "bridge",
        "logger": "tests.logformat",
        "message": "sent 3 of x",
        "request_id": "req-123",
        "partition": 2,
        "offset": 41,
    }
    # Outside a request there is no request id.
    assert "request_id" not in json.loads(formatter.format(record("idle")))


def test_an_exception_stays_on_its_line() -> None:
    error = ValueError("bad\nvalue")
    made = logging.getLogger("t").makeRecord(
        "t", logging.ERROR, __file__, 1, "failed", (), exc_info=(ValueError, error, None)
    )
    line = JsonFormatter("api").format(made)
    assert "\n" not in line
    assert "ValueError: bad\nvalue" in json.loads(line)["exception"]


@given(
    message=st.text(),
    extra=st.dictionaries(
        st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True).filter(
            lambda k: k not in vars(record("x"))
        ),
        st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.none(), st.binary()),
        max_size=4,
    ),
)
def test_any_message_and_extras_make_one_parsable_line(
    message: str, extra: dict[str, object]
) -> None:
    line = JsonFormatter("simulate").format(record("%s", message, **extra))
    assert "\n" not in line
    event = json.loads(line)
    assert event["message"] == message
    for key, value in extra.items():
        if key not in {"ts", "level", "service", "logger", "message"}:
            assert event[key] == (value if not isinstance(value, bytes) else str(value))


def test_the_flag_turns_json_on_and_text_stays_the_default() -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert parse_args([]).log_format == "text"
        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
        assert parse_args(["--log-format", "json"]).log_format == "json"
        formatter = root.handlers[0].formatter
        assert isinstance(formatter, JsonFormatter)
        assert formatter.service == "api"
        with pytest.raises(SystemExit) as refused:
            parse_args(["--log-format", "xml"])
        assert refused.value.code == 2
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
