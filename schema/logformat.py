"""The two log formats every service can write: plain text (the default, for people) and JSON
(``--log-format json``: one object per line, for log collectors).

A JSON event::

    {"ts": "2026-11-29T23:51:21.123456+00:00", "level": "INFO", "service": "api",
     "logger": "api.app", "message": "...", "request_id": "..."}

``ts`` is ISO-8601 in UTC; ``request_id`` appears while a request is being served (the API sets
:data:`request_id`); anything passed as ``extra={...}`` (a Kafka ``partition`` and ``offset``,
say) is added as it is, and an exception as ``exception`` (its formatted traceback).
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request being served, for every event logged while serving it."""

# Attributes every LogRecord has: anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per event, on one line (newlines inside are escaped)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current is not None:
            event["request_id"] = current
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in event:
                event[key] = value
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str, ensure_ascii=False)


def handler(log_format: LogFormat, service: str) -> logging.Handler:
    """A stderr handler writing ``log_format``."""
    out = logging.StreamHandler()
    formatter = JsonFormatter(service) if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    out.setFormatter(formatter)
    return out
