"""The local cluster's PostgreSQL server: its own cluster (initdb), start, health, stop.

Files under ``home/postgres``: ``data/`` (the cluster), ``run/`` (its unix socket),
``postgres.log`` (server output) and ``postgres.pid``. The system's own clusters (``pg_ctlcluster``,
port 5432) are never touched.

The server programs are ``ClusterSettings.pg_bindir`` or Debian's newest. When that PostgreSQL
has the TimescaleDB extension (its control file and library), the server preloads it, and
``wattstream migrate`` (storage mode ``auto``) then sets the database up in TimescaleDB mode.

PostgreSQL refuses to run as root, so as root every server program runs as the Debian
``postgres`` user. That user must reach ``home/postgres`` through every parent directory; when it
cannot (a checkout under /root, or in a ``mktemp -d`` directory of mode 0700), the cluster's files
go to ``/var/tmp/wattstream-pg-<hash of home>`` instead and ``home/postgres`` links there.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from wattstream.localcluster.config import ClusterSettings, endpoints
from wattstream.localcluster.detach import user_kwargs
from wattstream.localcluster.errors import ServiceError, ServiceStartError
from wattstream.localcluster.install import postgres_bindir
from wattstream.localcluster.process import ManagedProcess, ServiceStatus, run

logger = logging.getLogger(__name__)

NAME = "postgres"
SYSTEM_USER = "postgres"
_READY_TIMEOUT_S = 60
_STOP_TIMEOUT_S = 60
_SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL
# Development settings passed as -c flags. fsync stays on: crash-safety tests rely on it.
_SERVER_SETTINGS = {
    "shared_buffers": "256MB",
    "max_connections": "200",
    "fsync": "on",
    "log_timezone": "UTC",
    # pg_xact_commit_timestamp(xmin): when each row's transaction committed (bench/pipeline.py
    # measures end-to-end latency to the commit with it; ingested_at is the transaction start).
    "track_commit_timestamp": "on",
}


@dataclass(frozen=True)
class PostgresLayout:
    directory: Path
    """``home/postgres`` (possibly a symbolic link, see the module docstring)."""
    data: Path
    run: Path
    log: Path
    pidfile: Path

    @classmethod
    def of(cls, settings: ClusterSettings) -> PostgresLayout:
        link = settings.home / NAME
        # Server arguments name resolved paths, so that the server never has to pass through a
        # directory it cannot enter.
        directory = link.resolve() if link.is_symlink() else link
        return cls(
            directory=directory,
            data=directory / "data",
            run=directory / "run",
            log=directory / "postgres.log",
            pidfile=directory / "postgres.pid",
        )


def service_user() -> str | None:
    """The system user the server runs as: ``postgres`` when we are root, else ourselves."""
    return SYSTEM_USER if os.geteuid() == 0 else None


def fallback_directory(home: Path) -> Path:
    """Where the cluster lives when the ``postgres`` user cannot reach ``home``."""
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"wattstream-pg-{digest}"  # noqa: S108 - a fixed, owned, 0700 dir


def server_arguments(
    settings: ClusterSettings, layout: PostgresLayout, *, timescaledb: bool = False
) -> list[str]:
    """The ``postgres`` command-line settings: address, port, socket directory, dev tuning,
    and with ``timescaledb`` the extension preloaded (its telemetry off)."""
    socket_dir = str(layout.run)
    if len(f"{socket_dir}/.s.PGSQL.{settings.pg_port}".encode()) > _SOCKET_PATH_MAX:
        logger.warning("postgres: %s is too long for a unix socket; TCP only", socket_dir)
        socket_dir = ""
    values = {
        "listen_addresses": settings.host,
        "port": str(settings.pg_port),
        "unix_socket_directories": socket_dir,
        **_SERVER_SETTINGS,
    }
    if timescaledb:
        values |= {"shared_preload_libraries": "timescaledb", "timescaledb.telemetry_level": "off"}
    arguments: list[str] = []
    for key, value in values.items():
        arguments += ["-c", f"{key}={value}"]
    return arguments


def required_packages(settings: ClusterSettings) -> list[str]:
    if settings.pg_bindir is not None:  # the machine's own build: nothing to install
        return []
    return ["postgresql"] if postgres_bindir() is None else []


def managed_process(settings: ClusterSettings) -> ManagedProcess:
    layout = PostgresLayout.of(settings)
    return ManagedProcess(
        name=NAME,
        pidfile=layout.pidfile,
        logs=(layout.log,),
        markers=("postgres", str(layout.data)),
    )


def _bindir(settings: ClusterSettings) -> Path:
    if settings.pg_bindir is not None:
        if not (settings.pg_bindir / "postgres").is_file():
            raise ServiceStartError(
                NAME, f"no PostgreSQL server programs in {settings.pg_bindir} (pg_bindir)", ""
            )
        return settings.pg_bindir
    bindir = postgres_bindir()
    if bindir is None:
        raise ServiceStartError(NAME, "the PostgreSQL server programs are not installed", "")
    return bindir


def _installation_dirs(bindir: Path) -> tuple[Path, Path]:
    """(share, library) directories of the PostgreSQL whose programs are in ``bindir``.

    ``pg_config`` knows them when it is installed next to the server; otherwise Debian's
    layout, which PostgreSQL resolves relative to its programs: ``<p>/lib/postgresql/N/bin``
    has ``<p>/share/postgresql/N`` and ``<p>/lib/postgresql/N/lib``.
    """
    pg_config = bindir / "pg_config"
    if pg_config.is_file():
        found = run([str(pg_config), "--sharedir", "--pkglibdir"], what="pg_config").split()
        if len(found) == 2:
            return Path(found[0]), Path(found[1])
    version = bindir.parent
    return version.parents[2] / "share" / "postgresql" / version.name, version / "lib"


def has_timescaledb(bindir: Path) -> bool:
    """Whether this PostgreSQL can load the timescaledb extension (control file and library)."""
    share, library = _installation_dirs(bindir)
    return (share / "extension" / "timescaledb.control").is_file() and (
        library / "timescaledb.so"
    ).is_file()


def _environment(user: str | None) -> dict[str, str]:
    entry = pwd.getpwnam(user) if user else pwd.getpwuid(os.geteuid())
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "HOME": entry.pw_dir,
        "USER": entry.pw_name,
        "LOGNAME": entry.pw_name,
    }


def _owned_directory(path: Path, user: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)


def _can_enter(user: str, path: Path) -> bool:
    done = subprocess.run(["test", "-x", str(path)], check=False, **user_kwargs(user))
    return done.returncode == 0


def _prepare_directory(settings: ClusterSettings) -> None:
    """Create ``home/postgres`` so that the service user owns it and can reach it."""
    link = settings.home / NAME
    user = service_user()
    settings.home.mkdir(parents=True, exist_ok=True)
    if user is None:
        link.mkdir(exist_ok=True)
        return
    if link.is_symlink():
        _owned_directory(link.resolve(), user)
        return
    if _can_enter(user, settings.home):
        _owned_directory(link, user)
        return
    target = fallback_directory(settings.home)
    logger.info(
        "postgres: the %s user cannot reach %s (a parent directory denies it), so the cluster "
        "lives in %s and %s links there",
        user,
        settings.home,
        target,
        link,
    )
    if link.exists():
        if (link / "data" / "PG_VERSION").exists():
            raise ServiceError(
                f"postgres: the {user} user cannot reach the existing cluster in {link}; "
                "move it or make its parent directories searchable (chmod o+x)"
            )
        shutil.rmtree(link)
    _owned_directory(target, user)
    link.symlink_to(target, target_is_directory=True)


def _initdb(settings: ClusterSettings, layout: PostgresLayout, user: str | None) -> None:
    if (layout.data / "PG_VERSION").exists():
        return
    logger.info("postgres: creating a cluster in %s", layout.data)
    pwfile = layout.directory / ".initdb-password"
    descriptor = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as stream:
        stream.write(settings.pg_password.get_secret_value() + "\n")
    if user:
        entry = pwd.getpwnam(user)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    try:
        output = run(
            [
                str(_bindir(settings) / "initdb"),
                "-D",
                str(layout.data),
                "-U",
                settings.pg_user,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-instructions",
            ],
            what="initdb",
            user=user,
            cwd=layout.directory,
            env=_environment(user),
        )
    finally:
        pwfile.unlink(missing_ok=True)
    logger.debug("initdb output:\n%s", output)


def start(settings: ClusterSettings) -> None:
    """Create the cluster if needed and start the server unless it runs; does not wait."""
    process = managed_process(settings)
    if process.running_pid(settings.host, [settings.pg_port], home=settings.home) is not None:
        return
    _prepare_directory(settings)
    layout = PostgresLayout.of(settings)  # resolved now that home/postgres exists
    user = service_user()
    _initdb(settings, layout, user)
    layout.run.mkdir(exist_ok=True)
    if user:
        _owned_directory(layout.run, user)
    bindir = _bindir(settings)
    timescaledb = has_timescaledb(bindir)
    logger.info(
        "postgres: %s, %s", bindir, "with TimescaleDB" if timescaledb else "without TimescaleDB"
    )
    arguments = server_arguments(settings, layout, timescaledb=timescaledb)
    managed_process(settings).spawn(
        [str(bindir / "postgres"), "-D", str(layout.data), *arguments],
        cwd=layout.directory,
        env=_environment(user),
        user=user,
    )


async def _query(dsn: str, sql: str, *args: object) -> object:
    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        return await connection.fetchval(sql, *args)
    finally:
        await connection.close()


def _answers(settings: ClusterSettings) -> bool:
    try:
        run(
            [
                str(_bindir(settings) / "pg_isready"),
                "-q",
                "-h",
                settings.host,
                "-p",
                str(settings.pg_port),
                "-t",
                "2",
            ],
            what="pg_isready",
        )
    except ServiceError:
        return False
    try:
        return asyncio.run(_query(endpoints(settings).admin_database_url, "SELECT 1")) == 1
    except (OSError, asyncpg.CannotConnectNowError):
        return False
    except asyncpg.PostgresError as exc:
        raise managed_process(settings).start_error(f"answers but refuses queries: {exc}") from exc


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _ensure_database(admin_dsn: str, name: str) -> None:
    connection = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return
        logger.info("postgres: creating database %s", name)
        await connection.execute("CREATE DATABASE " + _quote_identifier(name))
    finally:
        await connection.close()


def wait_ready(settings: ClusterSettings) -> None:
    """Wait until the server answers queries, then create the application database."""
    managed_process(settings).wait_until(
        lambda: _answers(settings), timeout=_READY_TIMEOUT_S, what="answering queries"
    )
    asyncio.run(_ensure_database(endpoints(settings).admin_database_url, settings.pg_database))
    logger.info("postgres: ready on %s:%d", settings.host, settings.pg_port)


def stop(settings: ClusterSettings) -> None:
    """Fast shutdown (``pg_ctl stop -m fast``): roll back open transactions, then exit."""
    process = managed_process(settings)
    pid = process.live_pid()
    if pid is None:
        process.clear_stale_pidfile()
        return
    layout = PostgresLayout.of(settings)
    user = service_user()
    try:
        run(
            [
                str(_bindir(settings) / "pg_ctl"),
                "stop",
                "-D",
                str(layout.data),
                "-m",
                "fast",
                "-w",
                "-t",
                str(_STOP_TIMEOUT_S),
            ],
            what="pg_ctl stop",
            user=user,
            cwd=layout.directory,
            env=_environment(user),
            timeout=_STOP_TIMEOUT_S + 10,
        )
    except ServiceError as exc:
        logger.warning("postgres: %s; sending SIGINT (fast shutdown) instead", exc)
        os.kill(pid, signal.SIGINT)
    process.wait_gone(pid, timeout=_STOP_TIMEOUT_S)


def status(settings: ClusterSettings) -> ServiceStatus:
    return managed_process(settings).status(settings.host, settings.pg_port)
