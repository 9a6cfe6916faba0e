"""Migrations on the real PostgreSQL: up from empty, down to empty, up again, no drift."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, pool
from sqlalchemy.ext.asyncio import create_async_engine

from schema import migrate
from schema.tables import metadata

pytestmark = pytest.mark.integration


async def user_tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'alembic_version'"
        )
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def drift(url: str) -> list[object]:
    engine = create_async_engine(migrate.alembic_url(url), poolclass=pool.NullPool)

    def compare(connection: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(connection), metadata))

    try:
        async with engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await engine.dispose()


async def test_upgrade_downgrade_upgrade_without_drift(database: str) -> None:
    assert await user_tables(database) == set(metadata.tables)
    assert await drift(database) == []
    await asyncio.to_thread(migrate.downgrade, database, "base")
    assert await user_tables(database) == set()
    await asyncio.to_thread(migrate.upgrade, database)
    assert await user_tables(database) == set(metadata.tables)
    assert await drift(database) == []


def test_alembic_url_refuses_other_databases() -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        migrate.alembic_url("mysql://u@h/db")
