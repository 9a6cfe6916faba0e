"""The forecast models: every registered model with its card metrics, and which is active."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api import horizons
from api.deps import Deps
from api.errors import NotFound
from api.models import ModelDetail, ModelSummary
from api.params import TEXT
from api.responses import answers

router = APIRouter(prefix="/api/v1", tags=["models"], responses=answers(422))


@router.get("/models", response_model=list[ModelSummary])
async def list_models(deps: Deps) -> list[ModelSummary]:
    """Every registered model, newest first, with its held-out metrics (next hour and, for a
    multi-horizon model, per horizon and device kind) and whether the worker serves it."""
    async with deps.pool.acquire() as conn:
        rows = await horizons.models(conn)
    return [ModelSummary(**row) for row in rows]


@router.get("/models/{model_id}", response_model=ModelDetail, responses=answers(404))
async def get_model(
    deps: Deps, model_id: Annotated[str, Path(min_length=1, max_length=128, pattern=TEXT)]
) -> ModelDetail:
    """One model: its metrics, whether it is active, and its whole model card."""
    async with deps.pool.acquire() as conn:
        row = await horizons.model(conn, model_id)
    if row is None:
        raise NotFound(f"no model {model_id!r}")
    return ModelDetail(**row)
