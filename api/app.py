"""``create_app(settings)``: the FastAPI application and the lifespan owning its resources.

The lifespan owns the database pool, the live feed's Kafka consumer (:mod:`api.live.feed`) and
the MQTT command publisher (:mod:`api.commands`); the last two run as named tasks of one task
group and reconnect on their own. The app fails at start-up, not on the first request, when
the database cannot be reached; Kafka and MQTT being away makes ``/ready`` say so (and commands
answer 503) until they are back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api import errors
from api.commands import CommandPublisher
from api.deps import ReadKey, Resources, State
from api.jwks import JwksKeys
from api.kpi.store import TariffStore
from api.limits import BodyLimit, Deadline, RateLimit, TokenBuckets
from api.live.feed import KafkaFeed
from api.live.hub import Hub
from api.metrics import Metrics
from api.requestid import RequestId
from api.responses import KEY_ANSWERS, document_problem, middleware_answers
from api.routes import (
    commands,
    devices,
    fleet,
    forecasts,
    health,
    kpis,
    live,
    models,
    readings,
    training,
)
from api.settings import ApiSettings
from api.training import TrainingRunner
from schema.topics import KafkaTopics, MqttTopics

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"

DESCRIPTION = """
Readings, aggregates, forecasts and health of a fleet of energy devices, a live websocket feed,
and device commands.

* Every timestamp is ISO-8601 with a UTC offset; a time without one is refused (422).
* Errors are `application/problem+json` (RFC 9457) whose `detail` says what to change.
* Long lists (`/devices`, `/alerts`) are cursor-paginated: pass `next_cursor` as `cursor`.
* `X-API-Key` header: reads (every `GET` under `/api/v1`) need a key of scope `read` outside
  development; commands need `write`, model activation `admin` (each scope includes the ones
  below it). No key or an unknown one: 401; a key of too narrow a scope: 403.
* Live events: websocket `/api/v1/ws/live?kinds=readings,hourly,forecasts,health,alerts,status`
  `&devices=a,b&last_event_id=...` (not listed below: OpenAPI does not describe websockets);
  the key goes in the `X-API-Key` header or a first message `{"type": "auth", "api_key": ...}`,
  never in the URL.
"""


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """The pool's reset of a released connection: nothing to undo beyond what asyncpg itself
    does first (roll back a transaction left open, drop listeners).

    The API sets no session state: no ``SET``, ``LISTEN``, advisory lock or cursor outside a
    transaction. asyncpg's default reset (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL``) is a round trip to the server on every release, inside the route, so every
    request waited for it before its answer went out (bench/api_load.py)."""


def create_app(settings: ApiSettings) -> FastAPI:
    if settings.uses_placeholder_key:
        log.warning(
            "the API accepts the placeholder API key (environment=%s); set "
            "WATTSTREAM_API_API_KEYS before exposing it",
            settings.environment,
        )
    hub = Hub(
        queue_size=settings.ws_queue_size,
        max_behind_s=settings.ws_max_behind_s,
        replay_size=settings.ws_replay_size,
        replay_age_s=settings.ws_replay_age.total_seconds(),
        max_clients=settings.ws_max_clients,
        max_clients_per_key=settings.ws_max_clients_per_key,
    )
    feed = KafkaFeed(
        settings.kafka.bootstrap,
        KafkaTopics(settings.topic_namespace),
        hub,
        check_s=settings.live_kafka_check_s,
    )
    publisher = CommandPublisher(
        settings.mqtt.host,
        settings.mqtt.port,
        MqttTopics(settings.topic_namespace),
        timeout_s=settings.command_timeout_s,
        auth=settings.mqtt.auth(),
    )
    metrics = Metrics(hub, feed, publisher)
    tariffs = TariffStore.open(settings.tariffs_file)
    keys = (
        JwksKeys(
            settings.jwt_jwks,
            cache_s=settings.jwt_jwks_cache_s,
            min_refresh_s=settings.jwt_jwks_min_refresh_s,
        )
        if settings.jwt_jwks
        else None
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[State]:
        pool = await asyncpg.create_pool(
            settings.database.dsn(),
            min_size=1,
            max_size=10,
            init=_init_connection,
            reset=_keep_session,
            timeout=settings.db_timeout_s,  # connecting
            command_timeout=settings.db_timeout_s,  # every query
        )
        command = settings.training_command
        trainer = TrainingRunner(
            shlex.split(command) if command else [sys.executable, "-m", "stream.forecast"],
            database_url=settings.database.dsn(),
            artifacts_dir=settings.training_artifacts_dir,
            # The child gets this process's environment (PATH, PYTHONPATH) and the database URL.
            environment=dict(os.environ),
            enabled=settings.allow_training,
            timeout_s=settings.training_timeout.total_seconds(),
            clock=lambda: datetime.now(UTC),
        )
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(feed.run(), name="live-feed"),
                    group.create_task(publisher.run(), name="mqtt-commands"),
                ]
                try:
                    yield {
                        "resources": Resources(
                            settings=settings,
                            pool=pool,
                            hub=hub,
                            feed=feed,
                            commands=publisher,
                            metrics=metrics,
                            tariffs=tariffs,
                            training=trainer,
                            keys=keys,
                        )
                    }
                finally:
                    await trainer.aclose()
                    for task in tasks:
                        task.cancel()
        finally:
            await pool.close()

    app = FastAPI(
        title="WattStream",
        version="0.2.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    errors.install(app, retry_after_s=settings.retry_after_s)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT"],
            allow_headers=["Content-Type", "X-API-Key"],
        )
    app.add_middleware(
        Deadline, seconds=settings.request_timeout_s, retry_after_s=settings.retry_after_s
    )
    app.add_middleware(metrics.middleware)
    # Added last, so they run first: a refused request costs no route and no database.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.rate_limit > 0:
        buckets = TokenBuckets(settings.rate_limit, settings.rate_limit_burst)
        app.add_middleware(RateLimit, buckets=buckets)
    app.add_middleware(RequestId)  # outermost: every layer logs with the request's id
    document_problem(app)
    # The operations endpoints are never rate limited (probes, scrapers).
    app.include_router(health.router, responses=middleware_answers(rate_limited=False))
    app.include_router(live.router)  # authenticates its clients itself (header or first message)
    # Every other /api/v1 router: scope `read` where reads need a key (write/admin add theirs);
    # elsewhere (development) nothing, so the OpenAPI document says no key is needed.
    guarded = settings.reads_need_key
    limited = middleware_answers(rate_limited=settings.rate_limit > 0)
    for module in (readings, devices, forecasts, fleet, kpis, models, commands, training):
        app.include_router(
            module.router,
            dependencies=[ReadKey] if guarded else None,
            responses={**limited, **KEY_ANSWERS} if guarded else limited,
        )
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app
