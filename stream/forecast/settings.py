"""Settings of ``wattstream train`` (``WATTSTREAM_TRAIN_*``), and the plan they resolve to.

``--quick`` swaps the defaults for a small run (tests, smoke checks); anything set explicitly
(flag or environment) still wins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schema.commandline import Flag
from schema.connections import (
    DatabaseConnection,
    ServiceOptions,
    refuse_placeholder_secrets,
)

DEFAULT_START = datetime(2025, 10, 6, tzinfo=UTC)
"""A Monday; 182 days from it cross both DST changes of the fleet's zones."""


class TrainSettings(BaseSettings, ServiceOptions):
    model_config = SettingsConfigDict(env_prefix="WATTSTREAM_TRAIN_")

    seed: int = 7
    """Seeds the simulator export, the training-window sample and TensorFlow."""
    devices: Annotated[int, Field(ge=1)] = 140
    """Devices in the simulated fleet."""
    days: Annotated[float, Field(gt=0)] = 182
    """Days of history."""
    start: AwareDatetime = DEFAULT_START
    """First hour of the history (ISO-8601 with offset)."""
    interval_s: Annotated[int, Field(gt=0, le=3600)] = 900
    """Simulated reading interval."""
    history: Path | None = None
    """An existing export (JSON lines of HourlyEnergy) instead of running the simulator."""
    export_command: str | None = None
    """The export command, shell-quoted (default: this Python's ``-m simulator history``)."""
    artifacts_dir: Path = Path("artifacts")
    """Where the model directories (and ``latest``) go."""
    quick: bool = False
    """A small run (< 3 min): other defaults for the sizes below."""
    tiny: bool = False
    """The smallest run that goes through every step (< 1 min; the API's training test): a
    few devices, 2 epochs. Not a usable model."""
    progress: bool = False
    """Report progress as JSON lines on stdout (events: started, stage, epoch, done, failed)."""
    validation_days: Annotated[float, Field(gt=0)] = 14
    test_days: Annotated[float, Field(gt=0)] = 21
    """The held-out period: the last days of the history, after everything trained on."""
    epochs: Annotated[int, Field(ge=1)] = 20
    patience: Annotated[int, Field(ge=1)] = 3
    batch_size: Annotated[int, Field(ge=1)] = 256
    learning_rate: Annotated[float, Field(gt=0)] = 3e-3
    max_train_windows: Annotated[int, Field(ge=1)] = 300_000
    """A seeded sample of at most this many training windows (bounds the training time)."""
    gru_units: Annotated[int, Field(ge=1)] = 32
    dense_units: Annotated[int, Field(ge=1)] = 32
    residual: bool = True
    """The hourly and daily heads forecast a correction of seasonal-naive (``--no-residual``:
    the values themselves, as models before it did)."""
    median_loss: Literal["pinball", "squared"] = "squared"
    """The P50's training loss: ``squared`` (a mean: what the scorecard's RMSE rewards) or
    ``pinball`` (a median); the P10 and P90 keep the pinball loss."""
    update_latest: Annotated[bool, Flag("--no-latest", value=False)] = True
    """Point ``artifacts/latest`` at the new model."""
    register_url: Annotated[SecretStr | None, Flag("--register")] = None
    """Database URL: register the model in the ``models`` table and activate it."""
    activate: bool = True
    """With ``--register``: make the model the active one (``--no-activate``: register only)."""
    skip_training: bool = False
    """Only register (and activate) an existing model: ``model_id`` or the latest."""
    model_id: str | None = None
    """The model ``skip_training`` registers (default: the latest)."""

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> TrainSettings:
        if self.register_url is not None:
            refuse_placeholder_secrets(
                self.environment,
                variables="WATTSTREAM_TRAIN_",
                database=DatabaseConnection(url=self.register_url),
            )
        return self


QUICK: dict[str, Any] = {
    "devices": 21,
    "days": 42,
    "validation_days": 8,
    "test_days": 9,
    "epochs": 15,
    "patience": 3,
    "max_train_windows": 20_000,
    "gru_units": 16,
    "dense_units": 16,
}
"""Under 3 minutes on 2 cores, simulator export included. The validation and held-out periods
are longer than the 7 days the daily head forecasts (each needs whole 7-day targets)."""

TINY: dict[str, Any] = {
    **QUICK,
    "devices": 8,
    "days": 28,
    "epochs": 2,
    "patience": 1,
    "max_train_windows": 2_000,
    "gru_units": 8,
    "dense_units": 8,
}
"""The smallest run through every step: the first 8 devices hold every kind the model knows; 12
training days leave windows with 24 hours of history and 7 days of targets."""


@dataclass(frozen=True)
class TrainPlan:
    """The settings with ``--quick`` resolved: what the run actually does."""

    seed: int
    devices: int
    days: float
    start: datetime
    interval_s: int
    validation_days: float
    test_days: float
    epochs: int
    patience: int
    batch_size: int
    learning_rate: float
    max_train_windows: int
    gru_units: int
    dense_units: int
    residual: bool
    median_loss: str
    quick: bool

    @classmethod
    def of(cls, settings: TrainSettings) -> TrainPlan:
        plan = cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})
        preset = TINY if settings.tiny else QUICK if settings.quick else None
        if preset is not None:
            chosen = settings.model_fields_set
            plan = replace(plan, **{k: v for k, v in preset.items() if k not in chosen})
        return plan
