"""Response models of the API (separate from the wire and table models)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict


class ReadingOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    device_id: str
    seq: int
    ts: AwareDatetime
    """Event time with the device's UTC offset at that instant."""
    tz: str
    interval_s: int
    energy_kwh: float
    power_kw: float


class ReadingsPage(BaseModel):
    model_config = ConfigDict(frozen=True)

    device_id: str
    start: AwareDatetime
    end: AwareDatetime
    count: int
    items: list[ReadingOut]
