"""Pidfile-managed processes of the local cluster, with real (small Python) processes."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from wattstream.localcluster import ServiceStartError
from wattstream.localcluster.process import ManagedProcess, alive

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

# Processes for the tests to manage: they sleep so as to stay up, no test waits on them.
SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ManagedProcess]:
    token = f"wattstream-test-{uuid.uuid4().hex}"
    process = ManagedProcess(
        name="sleeper",
        pidfile=tmp_path / "sleeper.pid",
        logs=(tmp_path / "console.log",),
        markers=(token,),
    )
    yield process
    process.stop(timeout=1)


def command(code: str, service: ManagedProcess) -> list[str]:
    return [sys.executable, "-c", code, *service.markers]


def ready(service: ManagedProcess) -> bool:
    return "ready" in service.console_log.read_text()


def test_spawn_status_stop(service: ManagedProcess, tmp_path: Path) -> None:
    pid = service.spawn(command(SLEEPER, service), cwd=tmp_path)
    assert service.recorded_pid() == pid
    assert service.live_pid() == pid
    service.wait_until(lambda: ready(service), timeout=30, what="ready")
    assert os.getsid(pid) == pid  # detached: its own session
    assert service.status("127.0.0.1", 1).running
    service.stop(timeout=10)
    assert not alive(pid)
    assert not service.pidfile.exists()
    assert not service.status("127.0.0.1", 1).running


def test_a_process_ignoring_sigterm_is_killed(service: ManagedProcess, tmp_path: Path) -> None:
    pid = service.spawn(command(STUBBORN, service), cwd=tmp_path)
    service.wait_until(lambda: ready(service), timeout=30, what="ready")
    service.stop(timeout=1)
    assert not alive(pid)


def test_a_crash_during_start_shows_the_log_tail(service: ManagedProcess, tmp_path: Path) -> None:
    service.spawn(command("import sys; sys.exit('boom: bad config line 3')", service), cwd=tmp_path)
    with pytest.raises(ServiceStartError, match="exited while waiting") as caught:
        service.wait_until(lambda: False, timeout=30, what="never")
    assert "boom: bad config line 3" in caught.value.log_tail


def test_a_health_timeout_shows_the_log_tail(service: ManagedProcess, tmp_path: Path) -> None:
    service.spawn(command(SLEEPER, service), cwd=tmp_path)
    with pytest.raises(ServiceStartError, match="not healthy after 1 s") as caught:
        service.wait_until(lambda: False, timeout=1, what="healthy")
    assert "ready" in caught.value.log_tail


def test_a_pidfile_naming_another_process_is_stale(service: ManagedProcess) -> None:
    service.pidfile.write_text(f"{os.getpid()}\n")
    assert service.live_pid() is None
    service.stop()  # must not signal this test process
    assert not service.pidfile.exists()
