"""Background processes managed through pidfiles.

A service runs detached (its own session, output to a log file) and is known by the pid in its
pidfile. A pidfile is trusted only while ``/proc/<pid>/cmdline`` still shows the process it was
written for, so a recycled pid is never mistaken for a service, nor signalled.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wattstream.localcluster.detach import user_kwargs
from wattstream.localcluster.errors import ServiceError, ServiceStartError

logger = logging.getLogger(__name__)

_DETACH = Path(__file__).with_name("detach.py")
_POLL_S = 0.25
_TAIL_LINES = 40


@dataclass(frozen=True)
class ServiceStatus:
    """What :func:`wattstream.localcluster.status` found for one service."""

    running: bool
    pid: int | None
    detail: str


def run(
    argv: Sequence[str],
    *,
    what: str,
    user: str | None = None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> str:
    """Run a command to completion and return its stdout; raise :class:`ServiceError` on failure."""
    logger.debug("running %s", " ".join(argv))
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            check=False,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            timeout=timeout,
            **user_kwargs(user),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServiceError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        raise ServiceError(f"{what} failed (exit {done.returncode}): {' '.join(argv)}\n{output}")
    return str(done.stdout)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing), across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _cmdline(pid: int) -> str | None:
    """The command line of a live (not zombie) process, arguments joined by spaces."""
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        raw = (proc / "cmdline").read_bytes()
    except OSError:
        return None
    state = stat.rpartition(")")[2].split()[0]
    if state in {"Z", "X"}:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (zombies count as gone)."""
    return _cmdline(pid) is not None


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(_POLL_S)
    return not alive(pid)


def tail(path: Path, lines: int = _TAIL_LINES) -> str:
    """The last ``lines`` lines of a text file, or a note that it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"({path}: {exc.strerror})"
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class ManagedProcess:
    """One long-running service process, known by its pidfile.

    ``markers`` are strings that all appear in the command line of the right process (for
    example its configuration file's path). ``logs`` are the files whose tails explain a failure;
    the first one receives the process's stdout and stderr.
    """

    name: str
    pidfile: Path
    logs: tuple[Path, ...]
    markers: tuple[str, ...]

    @property
    def console_log(self) -> Path:
        return self.logs[0]

    def recorded_pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def live_pid(self) -> int | None:
        """The pid from the pidfile if that process is alive and is this service."""
        pid = self.recorded_pid()
        if pid is None:
            return None
        cmdline = _cmdline(pid)
        if cmdline is None or not all(marker in cmdline for marker in self.markers):
            return None
        return pid

    def clear_stale_pidfile(self) -> None:
        pid = self.recorded_pid()
        if self.pidfile.exists() and self.live_pid() is None:
            logger.info("%s: removing stale pidfile %s (pid %s)", self.name, self.pidfile, pid)
            self.pidfile.unlink(missing_ok=True)

    def running_pid(self, host: str, ports: Iterable[int], *, home: Path) -> int | None:
        """Before a start: the pid if this service already runs, else ``None`` once a stale
        pidfile is gone and every one of ``ports`` is free (a :class:`ServiceError` names the
        first port something else holds)."""
        pid = self.live_pid()
        if pid is not None:
            logger.info("%s: already running (pid %d)", self.name, pid)
            return pid
        self.clear_stale_pidfile()
        for port in ports:
            if port_open(host, port):
                raise ServiceError(
                    f"{self.name}: {host}:{port} is in use by a process this cluster "
                    f"(home {home}) did not start"
                )
        return None

    def log_tail(self) -> str:
        return "\n".join(f"==> {log} <==\n{tail(log)}" for log in self.logs)

    def start_error(self, reason: str) -> ServiceStartError:
        return ServiceStartError(self.name, reason, self.log_tail())

    def spawn(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> int:
        """Start ``argv`` detached, output appended to the console log; record its pid."""
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        launcher = [
            sys.executable,
            "-I",
            "-W",
            "ignore::ResourceWarning",
            str(_DETACH),
            "--log",
            str(self.console_log),
            "--cwd",
            str(cwd),
            *(["--user", user] if user else []),
            "--",
            *argv,
        ]
        logger.info("%s: starting %s", self.name, " ".join(argv))
        output = run(launcher, what=f"starting {self.name}", env=env, timeout=60)
        pid = int(output.strip())
        temporary = self.pidfile.with_suffix(".tmp")
        temporary.write_text(f"{pid}\n")
        temporary.replace(self.pidfile)
        logger.info("%s: started, pid %d, log %s", self.name, pid, self.console_log)
        return pid

    def wait_until(self, ready: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Poll ``ready`` until true; fail with the log tail if the process dies or time is up."""
        deadline = time.monotonic() + timeout
        while True:
            if self.live_pid() is None:
                raise self.start_error(f"exited while waiting until {what}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise self.start_error(f"not {what} after {timeout:.0f} s")
            time.sleep(_POLL_S * 2)

    def stop(self, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> None:
        """Signal the process, wait until it is gone (SIGKILL after ``timeout``)."""
        pid = self.live_pid()
        if pid is None:
            self.clear_stale_pidfile()
            return
        if alive(pid):
            logger.info("%s: sending %s to pid %d", self.name, sig.name, pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        self.wait_gone(pid, timeout=timeout)

    def wait_gone(self, pid: int, *, timeout: float) -> None:
        """Wait until ``pid`` is gone, SIGKILL its process group after ``timeout``."""
        if not _wait_gone(pid, timeout):
            logger.warning(
                "%s: pid %d still alive after %.0f s, killing it", self.name, pid, timeout
            )
            with contextlib.suppress(ProcessLookupError):
                # The service leads its own session and process group (start_new_session).
                os.killpg(pid, signal.SIGKILL)
            if not _wait_gone(pid, 10):
                raise ServiceError(f"{self.name}: pid {pid} survived SIGKILL")
        self.pidfile.unlink(missing_ok=True)
        logger.info("%s: stopped (pid %d)", self.name, pid)

    def status(self, host: str, port: int) -> ServiceStatus:
        pid = self.live_pid()
        if pid is None:
            recorded = self.recorded_pid()
            detail = "not running" if recorded is None else f"not running (stale pid {recorded})"
            return ServiceStatus(running=False, pid=None, detail=detail)
        answering = port_open(host, port)
        detail = f"pid {pid}, " + (
            f"listening on {host}:{port}" if answering else f"not answering on {host}:{port}"
        )
        return ServiceStatus(running=True, pid=pid, detail=detail)
