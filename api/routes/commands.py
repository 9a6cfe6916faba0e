"""Changing things: device commands over MQTT (write or admin key; ``Idempotency-Key``, see
:mod:`api.idempotency`), acknowledging and resolving alerts (write key), model activation
(admin key)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Header, Path, Request, Response, status

from api import idempotency, queries
from api.deps import AdminKey, AllowedDevice, ApiKey, Caller, Deps, FleetWide
from api.errors import Conflict, NotFound
from api.models import AcknowledgeIn, AlertOut, CommandAccepted, CommandIn, ModelOut, ResolveIn
from api.params import TEXT
from api.responses import KEY_ANSWERS, answers
from api.routes.fleet import alert_out
from schema.device_messages import DeviceCommand

router = APIRouter(
    prefix="/api/v1",
    dependencies=[ApiKey],
    responses={**answers(404, 422), **KEY_ANSWERS},
)


@router.post(
    "/devices/{device_id}/commands",
    response_model=CommandAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    tags=["commands"],
    responses=answers(
        400,
        409,
        422,
        503,
        s422="Invalid body, or an Idempotency-Key used for another command",
        s503="The MQTT broker did not acknowledge in time (the command may not have been "
        "delivered: retry with the same Idempotency-Key)",
    ),
)
async def send_command(
    *,
    deps: Deps,
    request: Request,
    response: Response,
    device_id: AllowedDevice,
    body: CommandIn,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=idempotency.MAX_KEY_LENGTH,
            description="A retry with the same key (within 24 h) answers the first answer "
            "(header Idempotent-Replayed: true) and publishes nothing new.",
        ),
    ] = None,
) -> CommandAccepted:
    """Publish a command to the device's MQTT command topic at QoS 1: inject an anomaly
    (``spike``, ``drift``, ``stuck``, ``dropout``), take it ``offline`` or back ``online``, or
    ``set_interval``. Answers 202 once the broker has acknowledged it; the device acts on it
    when it reads it."""
    async with deps.pool.acquire() as conn:
        await queries.known_device_zone(conn, device_id)
        reservation = None
        if idempotency_key is not None:
            reservation = await idempotency.reserve(
                conn,
                api_key=request.headers.get("x-api-key", ""),
                key=idempotency_key,
                request=json.dumps([device_id, body.model_dump(mode="json")], sort_keys=True),
                ttl=deps.settings.idempotency_ttl,
            )
            if reservation.replay is not None:
                response.headers["Idempotent-Replayed"] = "true"
                return CommandAccepted.model_validate(reservation.replay)
    command = DeviceCommand(
        command_id=uuid.uuid4().hex,
        issued_at=datetime.now(UTC),
        **body.model_dump(),
    )
    try:
        topic = await deps.commands.publish(device_id, command)
    except Exception:
        if reservation is not None:  # no acknowledged command: the client's retry may send it
            async with deps.pool.acquire() as conn:
                await idempotency.release(conn, reservation)
        raise
    accepted = CommandAccepted(device_id=device_id, topic=topic, command=command)
    if reservation is not None:
        async with deps.pool.acquire() as conn:
            await idempotency.complete(
                conn, reservation, status.HTTP_202_ACCEPTED, accepted.model_dump(mode="json")
            )
    return accepted


AlertId = Annotated[
    str,
    Path(pattern=r"^[A-Za-z0-9._:-]{1,200}$", description="e.g. `dev-00001.residual.1764460800`"),
]


async def _check_alert_device(conn: asyncpg.Connection, caller: Caller, alert_id: str) -> None:
    """A key limited to some devices acts only on their alerts (403 before anything changes)."""
    if caller is not None:
        device_id = await queries.alert_device(conn, alert_id)
        if device_id is not None:
            caller.check_device(device_id)


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=AlertOut,
    tags=["alerts"],
    responses=answers(400, 404, s404="No such alert"),
)
async def acknowledge_alert(
    deps: Deps, caller: Caller, alert_id: AlertId, body: AcknowledgeIn
) -> AlertOut:
    """Acknowledge an alert: someone (``by``) is on it, with an optional note. The first
    acknowledgement wins; acknowledging again (a retry) answers the alert unchanged. The alert
    still resolves by itself once its condition clears."""
    async with deps.pool.acquire() as conn:
        await _check_alert_device(conn, caller, alert_id)
        row = await queries.acknowledge_alert(conn, alert_id, body.by, body.note)
    if row is None:
        raise NotFound(f"no alert {alert_id!r}")
    return alert_out(row)


@router.post(
    "/alerts/{alert_id}/resolve",
    response_model=AlertOut,
    tags=["alerts"],
    responses=answers(
        400,
        404,
        409,
        s404="No such alert",
        s409="The alert is already resolved (its condition cleared, or a person resolved it)",
    ),
)
async def resolve_alert(deps: Deps, caller: Caller, alert_id: AlertId, body: ResolveIn) -> AlertOut:
    """Resolve an open or acknowledged alert by hand: someone (``by``) closes it, with an
    optional note (``resolution_note``; the acknowledgement keeps its own). It resolves as of
    the end of the last hour its condition held (``resolved_hour``) and is never reopened: if
    the stream worker still sees the condition in a later hour, a *new* alert of the same
    device and kind opens, starting at that hour. Answers the alert as it is now."""
    async with deps.pool.acquire() as conn:
        await _check_alert_device(conn, caller, alert_id)
        resolved, row = await queries.resolve_alert(conn, alert_id, body.by, body.note)
    if row is None:
        raise NotFound(f"no alert {alert_id!r}")
    if not resolved:
        how = f"by {row['resolved_by']}" if row["resolved_by"] else "its condition cleared"
        raise Conflict(f"alert {alert_id!r} is already resolved ({how})", title="Already resolved")
    return alert_out(row)


@router.post(
    "/admin/models/{model_id}/activate",
    response_model=ModelOut,
    tags=["admin"],
    dependencies=[AdminKey, FleetWide],
)
async def activate_model(
    deps: Deps, model_id: Annotated[str, Path(min_length=1, max_length=128, pattern=TEXT)]
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
