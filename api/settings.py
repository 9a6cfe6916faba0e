"""Settings of the API service (env prefix ``WATTSTREAM_API_``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_API_", frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65_535)] = 8000
    database_url: SecretStr = SecretStr(
        "postgresql://wattstream:wattstream@127.0.0.1:15432/wattstream"
    )
    max_range: timedelta = timedelta(days=31)
    """Longest time range one readings query may ask for."""
    max_rows: Annotated[int, Field(ge=1, le=100_000)] = 10_000
