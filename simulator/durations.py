"""Durations as people write them on a command line: ``14d``, ``6h``, ``90m``, ``60s``, ``1h30m``,
ISO-8601 (``PT6H``, ``P14D``) or plain seconds (``3600``)."""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import TypeAdapter, ValidationError

_UNITS = {"w": 604_800, "d": 86_400, "h": 3600, "m": 60, "s": 1}
_SHORT = re.compile(r"^(?:\d+(?:\.\d+)?[wdhms])+$")
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_ISO = TypeAdapter(timedelta)


def parse_duration(value: str | float | timedelta) -> timedelta:
    """A non-negative duration; raises ``ValueError`` naming the accepted forms."""
    if isinstance(value, timedelta):
        result = value
    elif isinstance(value, int | float):
        result = timedelta(seconds=value)
    else:
        text = value.strip().lower()
        if text.isdigit():
            result = timedelta(seconds=int(text))
        elif _SHORT.match(text):
            result = timedelta(
                seconds=sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
            )
        else:
            try:
                result = _ISO.validate_python(value.strip())
            except ValidationError:
                raise ValueError(
                    f"not a duration: {value!r} (use e.g. 14d, 6h, 90m, 60s, PT6H or seconds)"
                ) from None
    if result < timedelta(0):
        raise ValueError(f"durations must not be negative: {value!r}")
    return result


def duration_seconds(value: str | float | timedelta) -> int:
    """:func:`parse_duration` in whole seconds (refusing fractions)."""
    seconds = parse_duration(value).total_seconds()
    if seconds != int(seconds):
        raise ValueError(f"{value!r} is not a whole number of seconds")
    return int(seconds)
