"""Run the audit once (exit status: 0 clean, 1 loss or duplicates) or every ``watch_s``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator

from prometheus_client import start_http_server

from schema.journal import read_journal
from stream.audit.compare import AuditReport, AuditRules, audit
from stream.audit.metrics import AuditMetrics
from stream.audit.settings import AuditSettings
from stream.audit.store import stored_rows

log = logging.getLogger(__name__)


def rules_of(settings: AuditSettings) -> AuditRules:
    return AuditRules(
        lateness=settings.allowed_lateness,
        max_silent=settings.max_silent,
        history_hours=settings.history_hours,
        partitions=settings.partitions,
    )


async def audit_once(settings: AuditSettings) -> AuditReport:
    journal = await asyncio.to_thread(read_journal, settings.journal)
    readings, hours = await stored_rows(settings.database.dsn())
    return await asyncio.to_thread(
        audit, journal, readings, hours, rules_of(settings), examples=settings.examples
    )


@contextlib.contextmanager
def metrics_server(settings: AuditSettings, metrics: AuditMetrics) -> Iterator[None]:
    """``/metrics`` on ``metrics_host:metrics_port`` (a daemon thread) while inside."""
    if not settings.metrics_port:
        yield
        return
    server, thread = start_http_server(
        settings.metrics_port, settings.metrics_host, registry=metrics.registry
    )
    log.info("audit metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def run(settings: AuditSettings, show: Callable[[AuditReport], None]) -> int:
    """Audit (again every ``watch_s`` if set, until cancelled); 0 if the last audit passed."""
    metrics = AuditMetrics()
    with metrics_server(settings, metrics):
        while True:
            report = await audit_once(settings)
            metrics.record(report)
            show(report)
            if not settings.watch_s:
                return 0 if report.ok else 1
            await asyncio.sleep(settings.watch_s)
