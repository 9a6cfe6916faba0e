"""Run the Alembic migrations of :mod:`schema.migrations` against a database URL.

``wattstream migrate`` is ``upgrade(url, "head", options)``. The functions are synchronous
(Alembic drives its own event loop for asyncpg); from async code call them through
``asyncio.to_thread``. ``options`` choose the storage mode and the TimescaleDB policies
(:mod:`schema.storage`); an upgrade also re-applies the policies, so changing a setting and
migrating again takes effect even when the schema is already at head.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from schema.storage import StorageOptions


def alembic_url(database_url: str) -> str:
    """The SQLAlchemy URL for an asyncpg DSN (``postgresql://`` -> ``postgresql+asyncpg://``)."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or scheme not in {"postgresql", "postgres", "postgresql+asyncpg"}:
        raise ValueError(f"not a PostgreSQL URL: {scheme!r}")
    return f"postgresql+asyncpg://{rest}"


def alembic_config(database_url: str, options: StorageOptions | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", "schema:migrations")
    # ConfigParser interpolation: a '%' in a password must be doubled.
    config.set_main_option("sqlalchemy.url", alembic_url(database_url).replace("%", "%%"))
    config.attributes["storage_options"] = options or StorageOptions()
    return config


def upgrade(
    database_url: str, revision: str = "head", options: StorageOptions | None = None
) -> None:
    config = alembic_config(database_url, options)
    config.attributes["apply_storage_policies"] = True
    command.upgrade(config, revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
