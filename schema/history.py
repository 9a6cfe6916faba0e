"""Hourly energy history: the file format the simulator exports and the trainer reads.

JSON lines, one :class:`HourlyEnergy` per (device, UTC hour) — the simulator's own device
models integrated over each hour (``wattstream simulate history ...``), so the forecaster
learns from exactly the behaviour it will later serve.
"""

from __future__ import annotations

from pydantic import AwareDatetime

from schema.wire import DeviceId, FiniteFloat, WireModel, ZoneName


class HourlyEnergy(WireModel):
    device_id: DeviceId
    kind: str
    tz: ZoneName
    hour_start: AwareDatetime
    """Start of the hour, UTC (hours are UTC-aligned here; in Kolkata a local hour is not)."""
    energy_kwh: FiniteFloat
    readings: int
    """How many readings the hour's energy sums."""
