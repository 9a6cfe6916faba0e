"""Throw-away resources on the local cluster: free ports, fresh databases, health probes."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
import uuid

import asyncpg

from wattstream import localcluster


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def http_status(url: str) -> int:
    """The HTTP status of a GET (0 when nothing answers)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def http_text(url: str) -> str | None:
    """The body of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return None


def database_url(endpoints: localcluster.Endpoints, name: str) -> str:
    """The application database's URL with another database name (same credentials)."""
    return endpoints.database_url.rsplit("/", 1)[0] + f"/{name}"


async def fresh_database(endpoints: localcluster.Endpoints, prefix: str) -> str:
    """Create an empty database ``{prefix}_<random>``; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(endpoints.admin_database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return database_url(endpoints, name)


async def drop_database(endpoints: localcluster.Endpoints, url: str) -> None:
    admin = await asyncpg.connect(endpoints.admin_database_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await admin.close()
