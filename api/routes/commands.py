"""Changing things: device commands over MQTT (write or admin key), model activation (admin
key)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, status

from api import queries
from api.deps import AdminKey, ApiKey, Deps
from api.errors import PROBLEM_RESPONSES, NotFound
from api.models import CommandAccepted, CommandIn, ModelOut
from api.params import DevicePath
from schema.device_messages import DeviceCommand

AUTH_RESPONSES: dict[int | str, dict[str, str]] = {
    401: {"description": "Missing or invalid X-API-Key (problem+json)"},
    403: {"description": "The key's scope is too narrow: read for a command (problem+json)"},
    404: {"description": "Unknown device or model (problem+json)"},
    503: {"description": "The MQTT broker did not acknowledge in time (problem+json)"},
}

router = APIRouter(
    prefix="/api/v1",
    dependencies=[ApiKey],
    responses={**PROBLEM_RESPONSES, **AUTH_RESPONSES},
)


@router.post(
    "/devices/{device_id}/commands",
    response_model=CommandAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    tags=["commands"],
)
async def send_command(deps: Deps, device_id: DevicePath, body: CommandIn) -> CommandAccepted:
    """Publish a command to the device's MQTT command topic at QoS 1: inject an anomaly
    (``spike``, ``drift``, ``stuck``, ``dropout``), take it ``offline`` or back ``online``, or
    ``set_interval``. Answers 202 once the broker has acknowledged it; the device acts on it
    when it reads it."""
    async with deps.pool.acquire() as conn:
        if await queries.device_zone(conn, device_id) is None:
            raise NotFound(f"no device {device_id!r}")
    command = DeviceCommand(
        command_id=uuid.uuid4().hex,
        issued_at=datetime.now(UTC),
        **body.model_dump(),
    )
    topic = await deps.commands.publish(device_id, command)
    return CommandAccepted(device_id=device_id, topic=topic, command=command)


@router.post(
    "/admin/models/{model_id}/activate",
    response_model=ModelOut,
    tags=["admin"],
    dependencies=[AdminKey],
    responses={403: {"description": "The key is a read or write key, not admin (problem+json)"}},
)
async def activate_model(
    deps: Deps, model_id: Annotated[str, Path(min_length=1, max_length=128)]
) -> ModelOut:
    """Make this model the one the stream worker forecasts with (it polls ``models.active``);
    the previously active model is deactivated in the same transaction."""
    async with deps.pool.acquire() as conn:
        row = await queries.activate_model(conn, model_id)
    if row is None:
        raise NotFound(f"no model {model_id!r}")
    metrics = row["metrics"]
    return ModelOut(
        **{**row, "metrics": json.loads(metrics) if isinstance(metrics, str) else metrics}
    )
