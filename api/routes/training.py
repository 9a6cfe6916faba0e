"""Training the forecast model from the API (admin key): start a run, read its state, follow its
progress as server-sent events. The model it makes is registered, not activated
(``POST /api/v1/admin/models/{id}/activate`` does that)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Response, status
from fastapi.responses import StreamingResponse

from api.deps import AdminKey, Deps, FleetWide
from api.errors import NotFound
from api.models import TrainingIn, TrainingOut
from api.responses import KEY_ANSWERS, answers
from api.training import TrainingRun

router = APIRouter(
    prefix="/api/v1/admin/training",
    tags=["admin"],
    dependencies=[AdminKey, FleetWide],
    responses=KEY_ANSWERS,
)
KEEP_ALIVE_S = 15.0
"""A comment line after this long without an event keeps proxies from closing the stream."""
TrainingId = Annotated[str, Path(min_length=1, max_length=64)]


def training_out(run: TrainingRun) -> TrainingOut:
    return TrainingOut(
        training_id=run.training_id,
        preset=run.preset,
        seed=run.seed,
        state=run.state,
        started_at=run.started_at,
        finished_at=run.finished_at,
        model_id=run.model_id,
        events=len(run.events),
        last_event=run.events[-1] if run.events else None,
        events_url=f"{router.prefix}/{run.training_id}/events",
    )


def _run(deps: Deps, training_id: str) -> TrainingRun:
    run = deps.training.get(training_id)
    if run is None:
        raise NotFound(f"no training {training_id!r}")
    return run


@router.post(
    "",
    response_model=TrainingOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=answers(
        400,
        409,
        422,
        s409="A training is running already (one at a time), or training from the API is "
        "turned off on this server",
    ),
)
async def start_training(deps: Deps, body: TrainingIn, response: Response) -> TrainingOut:
    """Start ``wattstream train`` in the background: follow it at ``events_url``. The model
    it makes is registered (``GET /api/v1/models``) but not activated."""
    run = await deps.training.start(body.preset, body.seed)
    out = training_out(run)
    response.headers["Location"] = f"{router.prefix}/{run.training_id}"
    return out


@router.get(
    "/{training_id}",
    response_model=TrainingOut,
    responses=answers(404, 422, s404="No such training (the last 20 are kept)"),
)
async def get_training(deps: Deps, training_id: TrainingId) -> TrainingOut:
    """A training's state, its last progress event and, once it succeeded, its model."""
    return training_out(_run(deps, training_id))


async def _server_sent(run: TrainingRun, after: int) -> AsyncIterator[str]:
    async for number, event in run.follow(after, KEEP_ALIVE_S):
        if not number:
            yield ": keep-alive\n\n"
            continue
        kind = str(event.get("event", "message")).replace("\n", " ")
        yield f"id: {number}\nevent: {kind}\ndata: {json.dumps(event, default=str)}\n\n"


@router.get(
    "/{training_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Server-sent events (`text/event-stream`), one per progress event "
            "(`event:` its kind, `data:` its JSON, `id:` its number), from the first (or after "
            "`Last-Event-ID`) until the training is over",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **answers(404, 422, s404="No such training (the last 20 are kept)"),
    },
)
async def training_events(
    deps: Deps,
    training_id: TrainingId,
    last_event_id: Annotated[
        int,
        # Not nullable: an HTTP header has no null (a client generated from a nullable one
        # would send the text "null").
        Header(alias="Last-Event-ID", ge=0, description="Resume after this event's number"),
    ] = 0,
) -> StreamingResponse:
    """The training's progress as server-sent events: ``started``, ``stage``, one ``epoch`` per
    epoch (loss, val_loss, validation_skill, validation_coverage), then ``done`` (the model id)
    or ``failed``; the stream ends with the training."""
    run = _run(deps, training_id)
    return StreamingResponse(
        _server_sent(run, last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
