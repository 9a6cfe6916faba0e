"""The served forecaster, owned by a mode service: loaded at start, switched without restart.

At start the active model (the ``models`` table's active row if it has one whose artifacts
are present, else ``artifacts/latest``) is loaded, and the worker fails to start if it cannot
be. Every 30 seconds the active model id is read again; a different one is loaded in a thread
and swapped in. Predictions run in a thread too (one batched ``tf.function`` call per burst),
never on the event loop. TensorFlow is imported only when the service starts.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
from mode import Service

from stream.core.hourclose import ForecastRequest
from stream.worker.processor import ForecastBatch

if TYPE_CHECKING:
    from stream.forecast import Forecaster

log = logging.getLogger(__name__)


def freeze_long_lived() -> None:
    """Exempt every object alive now from the cyclic garbage collector's full collections.

    TensorFlow, Keras and the model are ~400,000 objects that live as long as the worker;
    every full collection traversed them all (~300 ms of CPU each on this 2-core machine,
    ~18 % of the worker's CPU while catching up, counted with ``gc.callbacks``). Frozen, they
    are still freed by reference counting; only a cycle among them would outlive its use.
    """
    gc.freeze()


class ForecastService(Service):
    def __init__(self, artifacts_dir: Path, dsn: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._artifacts = artifacts_dir
        self._dsn = dsn
        self._model: Forecaster | None = None
        self._ready = asyncio.Event()

    @property
    def history_hours(self) -> int:
        model = self._model
        return 24 if model is None else int(model.spec.history_hours)

    def supports(self, kind: str) -> bool:
        model = self._model
        return model is not None and bool(model.supports(kind))

    async def on_start(self) -> None:
        from stream.forecast import load_latest  # noqa: PLC0415 - TensorFlow loads here, not at import

        wanted = await self._active_id()
        if wanted is not None and (self._artifacts / wanted).is_dir():
            self._model = await asyncio.to_thread(self._load, wanted)
        else:
            self._model = await asyncio.to_thread(load_latest, self._artifacts)
        log.info("serving forecasts with model %s", self._model.model_id)
        freeze_long_lived()
        self._ready.set()

    def _load(self, model_id: str) -> Forecaster:
        from stream.forecast import Forecaster  # noqa: PLC0415

        return Forecaster.load(self._artifacts / model_id)

    async def _active_id(self) -> str | None:
        from stream.forecast.registry import active_model_id  # noqa: PLC0415

        try:
            conn = await asyncpg.connect(self._dsn, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("cannot read the active model (%s); keeping the current one", exc)
            return None
        try:
            active: str | None = await active_model_id(conn)
        except asyncpg.UndefinedTableError:
            active = None
        finally:
            await conn.close()
        return active

    @Service.timer(30.0)
    async def _follow_active_model(self) -> None:
        wanted = await self._active_id()
        if wanted is None or self._model is None or wanted == self._model.model_id:
            return
        if not (self._artifacts / wanted).is_dir():
            log.error("model %s is active but has no artifacts in %s", wanted, self._artifacts)
            return
        from stream.forecast import ForecastError  # noqa: PLC0415

        try:
            self._model = await asyncio.to_thread(self._load, wanted)
        except (ForecastError, OSError):  # a broken artifact must not stop the current model
            log.exception("loading model %s failed; keeping the current one", wanted)
            return
        log.info("switched to model %s", wanted)
        freeze_long_lived()

    async def forecast(self, requests: Sequence[ForecastRequest]) -> ForecastBatch:
        """One batched model call: the next hour, and the horizons if the model has them."""
        from stream.forecast import ForecastInput  # noqa: PLC0415

        await self._ready.wait()
        model = self._model
        assert model is not None
        inputs = [
            ForecastInput(
                device_id=r.device_id,
                kind=r.kind,
                tz=r.tz,
                next_hour_start=r.target.start,
                history_kwh=r.history_kwh,
            )
            for r in requests
        ]
        if not model.multi_horizon:
            predicted = await asyncio.to_thread(model.forecast, inputs)
            return ForecastBatch(predicted.tolist(), model.model_id)
        out = await asyncio.to_thread(model.forecast_horizons, inputs)
        return ForecastBatch(
            out.next_hour_kwh.tolist(),
            model.model_id,
            out.hourly_kwh,
            out.daily_kwh,
        )
