"""Model trainings started from the API: one at a time, as a subprocess, its progress kept for
the clients that follow it.

The API does not import ``stream`` (import-linter), so it runs the train command
(``python -m stream.forecast`` by default, ``training_command``) with ``--progress
--no-activate --no-latest`` and the database URL in ``WATTSTREAM_TRAIN_REGISTER_URL`` (never on
the command line), and reads the JSON lines it prints (see ``stream/forecast/progress.py``):
``started``, ``stage``, ``epoch`` (loss, val_loss, validation skill and coverage), ``done``
(the model id: registered, not active) or ``failed``. A run that exits without ``done`` ends
with a ``failed`` event carrying its exit status and the last lines of its stderr.

Every event is kept (a run has a few dozen), so a client that connects late or reconnects
(``Last-Event-ID``) gets them from where it left off. Starting a second run while one is going
is refused (:class:`TrainingBusy`, 409), as is starting one where ``allow_training`` is off.
:meth:`TrainingRunner.aclose` (the lifespan's exit) stops a running training: SIGTERM, then
SIGKILL after a grace period; a run that takes longer than ``training_timeout`` is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from api.errors import ApiProblem

log = logging.getLogger(__name__)

Preset = Literal["tiny", "quick", "full"]
State = Literal["running", "succeeded", "failed"]
PRESET_FLAGS: dict[str, tuple[str, ...]] = {"tiny": ("--tiny",), "quick": ("--quick",), "full": ()}
REGISTER_URL_VARIABLE = "WATTSTREAM_TRAIN_REGISTER_URL"
STOP_GRACE_S = 10.0
KEEP_RUNS = 20
STDERR_LINES = 40


class TrainingBusy(ApiProblem):
    """A training is running already (or training from the API is turned off)."""

    status = 409
    title = "Conflict"


@dataclass
class TrainingRun:
    training_id: str
    preset: Preset
    seed: int
    started_at: datetime
    state: State = "running"
    finished_at: datetime | None = None
    model_id: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition, repr=False)

    async def add(self, event: dict[str, Any]) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def finish(self, state: State, at: datetime) -> None:
        async with self._changed:
            self.state, self.finished_at = state, at
            self._changed.notify_all()

    async def follow(self, after: int, idle_s: float) -> AsyncIterator[tuple[int, dict[str, Any]]]:
        """Events numbered from 1, those after ``after`` as they come, until the run is over;
        ``(0, {})`` after ``idle_s`` without one (a keep-alive)."""
        sent = max(0, after)
        while True:
            async with self._changed:
                if sent >= len(self.events) and self.state == "running":
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), idle_s)
                fresh, over = self.events[sent:], self.state != "running"
            if not fresh and not over:
                yield 0, {}
            for event in fresh:
                sent += 1
                yield sent, event
            if over and sent >= len(self.events):
                return


class TrainingRunner:
    """Starts the train command and keeps its runs (the last :data:`KEEP_RUNS`)."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        database_url: str,
        artifacts_dir: Path,
        environment: Mapping[str, str],
        enabled: bool,
        timeout_s: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._command = list(command)
        self._artifacts_dir = artifacts_dir
        self._environment = {**environment, REGISTER_URL_VARIABLE: database_url}
        self._enabled = enabled
        self._timeout_s = timeout_s
        self._clock = clock
        self._runs: dict[str, TrainingRun] = {}
        self._current: tuple[TrainingRun, asyncio.subprocess.Process, asyncio.Task[None]] | None
        self._current = None
        self._closed = False
        self._lock = asyncio.Lock()

    def get(self, training_id: str) -> TrainingRun | None:
        return self._runs.get(training_id)

    async def start(self, preset: Preset, seed: int) -> TrainingRun:
        if not self._enabled:
            raise TrainingBusy(
                "training from the API is turned off here (WATTSTREAM_API_ALLOW_TRAINING=true "
                "turns it on)"
            )
        async with self._lock:
            if self._closed:
                raise TrainingBusy("the API is shutting down")
            if self._current is not None and self._current[0].state == "running":
                running = self._current[0].training_id
                raise TrainingBusy(f"training {running} is running; one at a time", running=running)
            argv = [
                *self._command, "--progress", "--no-activate", "--no-latest",
                "--artifacts-dir", str(self._artifacts_dir), "--seed", str(seed),
                *PRESET_FLAGS[preset],
            ]  # fmt: skip
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._environment,
            )
            run = TrainingRun(uuid.uuid4().hex[:16], preset, seed, self._clock())
            log.info("training %s started (pid %d): %s", run.training_id, process.pid, argv)
            task = asyncio.create_task(
                self._watch(run, process), name=f"training-{run.training_id}"
            )
            self._current = (run, process, task)
            self._runs[run.training_id] = run
            while len(self._runs) > KEEP_RUNS:
                del self._runs[next(iter(self._runs))]
            return run

    async def _watch(self, run: TrainingRun, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None and process.stderr is not None
        tail: deque[str] = deque(maxlen=STDERR_LINES)

        async def drain_stderr(stream: asyncio.StreamReader) -> None:
            async for raw in stream:
                line = raw.decode(errors="replace").rstrip()
                tail.append(line)
                log.debug("training %s: %s", run.training_id, line)

        try:
            async with asyncio.timeout(self._timeout_s), asyncio.TaskGroup() as group:
                group.create_task(drain_stderr(process.stderr), name="training-stderr")
                async for raw in process.stdout:
                    await self._event(run, raw)
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()
            await run.add({"event": "failed", "error": f"no result within {self._timeout_s:g} s"})
        code = process.returncode
        done = next((e for e in run.events if e.get("event") == "done"), None)
        if code == 0 and done is not None:
            run.model_id = str(done.get("model_id"))
            await run.finish("succeeded", self._clock())
            log.info("training %s done: model %s", run.training_id, run.model_id)
            return
        if not any(e.get("event") == "failed" for e in run.events):  # it could not say why
            await run.add({
                "event": "failed", "error": f"the train command exited {code}",
                "exit_code": code, "stderr": list(tail),
            })  # fmt: skip
        await run.finish("failed", self._clock())
        log.warning("training %s failed (exit %s)", run.training_id, code)

    async def _event(self, run: TrainingRun, raw: bytes) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            log.debug("training %s printed: %r", run.training_id, raw[:200])
            return
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            await run.add(event)

    async def aclose(self) -> None:
        """Stop a running training (idempotent)."""
        async with self._lock:
            self._closed = True
            current, self._current = self._current, None
        if current is None:
            return
        run, process, task = current
        if process.returncode is None:
            log.info("stopping training %s", run.training_id)
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), STOP_GRACE_S)
            except TimeoutError:
                process.kill()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, STOP_GRACE_S)
