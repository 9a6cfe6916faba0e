"""Alembic environment: runs the migrations over asyncpg against ``sqlalchemy.url``.

Storage options (:class:`schema.storage.StorageOptions`) reach the migrations as the
``storage_options`` entry of the migration context's ``opts``: from
``config.attributes["storage_options"]`` (set by :mod:`wattstream.migrate`) or from ``-x`` arguments
when Alembic is run by hand (``alembic -x storage_mode=postgresql``).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from schema import storage
from schema.tables import metadata


def _storage_options() -> storage.StorageOptions:
    given = context.config.attributes.get("storage_options")
    if isinstance(given, storage.StorageOptions):
        return given
    return storage.StorageOptions.from_strings(context.get_x_argument(as_dictionary=True))


def _configure_and_run(connection: Connection) -> None:
    options = _storage_options()
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        include_object=storage.include_object,
        storage_options=options,
    )
    with context.begin_transaction():
        context.run_migrations()
        if context.config.attributes.get("apply_storage_policies"):
            # Re-running `wattstream migrate` with other settings changes the policies.
            storage.apply_policies(connection, options)


async def _run_online(url: str) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_configure_and_run)
    finally:
        await engine.dispose()


def _main() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set; run migrations through wattstream.migrate")
    if context.is_offline_mode():
        # Offline SQL cannot look at the server, so the mode must be named (-x storage_mode=).
        context.configure(
            url=url,
            target_metadata=metadata,
            literal_binds=True,
            include_object=storage.include_object,
            storage_options=_storage_options(),
        )
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(_run_online(url))


_main()
