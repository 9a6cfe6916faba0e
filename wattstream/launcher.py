"""``wattstream run``: the local cluster, the migrations and every service, until Ctrl-C.

Each service runs as its own child process (``python -m <package>``), exactly as it would in
compose, with its settings passed as environment variables. On Ctrl-C or SIGTERM the children
get SIGTERM (then SIGKILL after a grace period), and the cluster services this run started are
stopped; services that were already running before are left as they were.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import BaseModel

from api.settings import ApiSettings
from schema.commandline import variables
from simulator.settings import SimulatorSettings
from stream.settings import BridgeSettings, StreamSettings
from wattstream import localcluster, migrate
from wattstream.firstrun import FirstRun, ProgressWatch

log = logging.getLogger(__name__)

GRACE_S = 15.0
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class ServiceProcess:
    name: str
    module: str
    env: Mapping[str, str]
    args: tuple[str, ...] = ()


def credential_environment(secrets: localcluster.LocalSecrets) -> dict[str, str]:
    """The variables that give each service its local-cluster credentials: the bridge and the
    API their broker users, the API its keys, the simulator the device root key and the
    operator's password (it publishes the labels)."""
    return {
        **variables(
            BridgeSettings,
            {"mqtt": {"username": "bridge", "password": secrets.mqtt_bridge_password}},
        ),
        **variables(
            ApiSettings,
            {
                "mqtt": {"username": "api", "password": secrets.mqtt_api_password},
                "api_keys": secrets.api_key,
                "admin_api_keys": secrets.api_admin_key,
                "read_api_keys": secrets.api_read_key,
            },
        ),
        **variables(
            SimulatorSettings,
            {
                "device_key": secrets.device_root_key,
                "operator_password": secrets.mqtt_operator_password,
            },
        ),
    }


def service_processes(
    endpoints: localcluster.Endpoints,
    secrets: localcluster.LocalSecrets,
    *,
    devices: int,
    api_port: int,
    metrics_port: int,
    simulator: Mapping[str, Any] | None = None,
) -> list[ServiceProcess]:
    """What ``run`` starts, each with the environment its settings read (credentials included:
    the bridge and the API as their own broker users, the simulator with the device key).
    ``simulator``: more simulator settings (``FirstRun.simulator_values``); without them the
    fleet goes live with the last six hours published first."""
    mqtt = {"host": endpoints.mqtt_host, "port": endpoints.mqtt_port}
    kafka = {"bootstrap": endpoints.kafka_bootstrap}
    database = {"url": endpoints.database_url}
    credentials = credential_environment(secrets)

    def env(settings_cls: type[BaseModel], values: Mapping[str, Any]) -> dict[str, str]:
        prefix = str(settings_cls.model_config.get("env_prefix"))
        own = {k: v for k, v in credentials.items() if k.startswith(prefix)}
        return {**variables(settings_cls, values), **own}

    return [
        ServiceProcess(
            "bridge",
            "stream.bridge",
            env(BridgeSettings, {"mqtt": mqtt, "kafka": kafka, "metrics_port": metrics_port}),
        ),
        ServiceProcess(
            "stream", "stream.worker", env(StreamSettings, {"kafka": kafka, "database": database})
        ),
        ServiceProcess(
            "api",
            "api",
            # The live feed reads the results topics: this cluster's Kafka, not a default.
            env(
                ApiSettings,
                {"database": database, "port": api_port, "mqtt": mqtt, "kafka": kafka},
            ),
        ),
        ServiceProcess(
            "simulator",
            "simulator",
            # Live, with history published first, so charts have something at once.
            env(
                SimulatorSettings,
                {
                    "mqtt": mqtt,
                    "devices": devices,
                    **(simulator or {"backfill": "PT6H", "interval_s": 60}),
                },
            ),
        ),
    ]


def service_environment(
    endpoints: localcluster.Endpoints, secrets: localcluster.LocalSecrets
) -> dict[str, str]:
    """Every variable that points the services (and ``wattstream migrate``) at ``endpoints``,
    with the cluster's credentials."""
    merged = {"WATTSTREAM_MIGRATE_DATABASE_URL": endpoints.database_url}
    for proc in service_processes(endpoints, secrets, devices=20, api_port=8000, metrics_port=9101):
        merged.update(proc.env)
    return merged


def provision_simulator(settings: localcluster.ClusterSettings, proc: ServiceProcess) -> None:
    """Let the devices of the simulator ``proc`` connect: ask it for its identities (``python
    -m simulator identities``, its own settings) and provision them on the broker."""
    from schema.credentials import DeviceIdentities  # noqa: PLC0415

    done = subprocess.run(
        [sys.executable, "-m", proc.module, "identities", *proc.args],
        env={**os.environ, **proc.env},
        capture_output=True,
        check=True,
    )
    identities = DeviceIdentities.model_validate_json(done.stdout)
    localcluster.provision(settings, identities)


class _Stop(Exception):
    """Raised in the main thread by SIGINT/SIGTERM to begin the shutdown."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _wait_until_ready(metrics_url: str, bridge: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if bridge.poll() is not None:
            raise _ChildExited(f"bridge exited with {bridge.returncode}")
        try:
            with urllib.request.urlopen(metrics_url, timeout=2) as response:  # noqa: S310 - our own http URL
                if b"bridge_ready 1.0" in response.read():
                    return
        except OSError:
            pass  # not listening yet
        time.sleep(0.5)
    raise _ChildExited(f"bridge not ready after {READY_TIMEOUT_S:.0f}s")


class _ChildExited(Exception):
    """A service process ended on its own: the pipeline is no longer whole."""


def _watch(
    children: Mapping[str, subprocess.Popen[bytes]], progress: Callable[[], bool] | None = None
) -> None:
    """Return never; raise when a child exits (or a signal arrives). ``progress`` is called
    every second until it returns True."""
    while True:
        for name, child in children.items():
            if child.poll() is not None:
                raise _ChildExited(f"{name} exited with {child.returncode}")
        if progress is not None and progress():
            progress = None
        time.sleep(1.0)


def run_directory(settings: localcluster.ClusterSettings) -> Path:
    """Where ``run`` keeps what the tools read afterwards (the delivery journal)."""
    return Path(settings.home).resolve() / "run"


def journal_path(settings: localcluster.ClusterSettings) -> Path:
    """The delivery journal of the last ``run`` (``wattstream audit`` reads it by default)."""
    return run_directory(settings) / "journal.jsonl"


def labels_path(settings: localcluster.ClusterSettings) -> Path:
    """The simulator's ground truth of the last ``run``'s injected anomalies
    (``python bench/alert_quality.py --labels`` scores the run's alerts against it)."""
    return run_directory(settings) / "labels.jsonl"


def _fresh_journal(path: Path) -> None:
    """This run's file starts empty; the previous run's is kept beside it (``.prev``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.replace(path.with_name(path.name + ".prev"))


def _terminate(children: Mapping[str, subprocess.Popen[bytes]]) -> None:
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + GRACE_S
    for name, child in children.items():
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0fs; killing it", name, GRACE_S)
            child.kill()
            child.wait()


def _with_journal(settings: localcluster.ClusterSettings, plan: FirstRun) -> FirstRun:
    """``plan`` writing this run's (fresh) journal and labels; a warning when its history is
    too short."""
    if not plan.completes_in_history:
        log.warning(
            "%s of history is too little for forecasts and coloured health before live time; "
            "the dashboard completes only after more live hours (use --history 3d)",
            plan.history,
        )
    journal, labels = journal_path(settings), labels_path(settings)
    _fresh_journal(journal)
    _fresh_journal(labels)
    return dataclasses.replace(plan, journal=journal, labels=labels)


def run_pipeline(
    *,
    plan: FirstRun,
    announce: Callable[[str], None],
    api_port: int = 8000,
    metrics_port: int = 9101,
) -> int:
    """Start everything, ``announce`` where to look and how far the history got, run until
    interrupted; return the exit code. ``plan.journal`` is replaced by this cluster's."""
    settings = localcluster.ClusterSettings()
    before = {name: s.running for name, s in localcluster.status(settings).items()}
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    children: dict[str, subprocess.Popen[bytes]] = {}
    exit_code = 0
    logs = Path(settings.home).resolve() / "logs"
    try:
        endpoints = localcluster.up(settings)
        services_up = time.monotonic()
        secrets = localcluster.load_secrets(settings.secrets_path)
        plan = _with_journal(settings, plan)
        now = datetime.now(UTC)
        devices = plan.devices
        log.info("migrating %s", endpoints.database_url.rsplit("@", 1)[-1])
        migrate.upgrade(endpoints.database_url)
        logs.mkdir(parents=True, exist_ok=True)
        # The worker's state under the cluster's home, wherever `run` is started from.
        worker_dir = variables(StreamSettings, {"data_dir": logs.parent / "faust"})
        for proc in service_processes(
            endpoints,
            secrets,
            devices=devices,
            api_port=api_port,
            metrics_port=metrics_port,
            simulator=plan.simulator_values(now),
        ):
            if proc.name == "stream":
                proc = dataclasses.replace(proc, env={**proc.env, **worker_dir})  # noqa: PLW2901
            if proc.name == "simulator":  # devices publish once the bridge has subscribed
                _wait_until_ready(f"http://127.0.0.1:{metrics_port}/metrics", children["bridge"])
                provision_simulator(settings, proc)
            with (logs / f"{proc.name}.log").open("ab") as out:
                children[proc.name] = subprocess.Popen(
                    [sys.executable, "-m", proc.module, *proc.args],
                    env={**os.environ, **proc.env},
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            log.info("started %s (pid %d), log: %s", proc.name, children[proc.name].pid, out.name)
        base = f"http://127.0.0.1:{api_port}"
        announce(
            f"\nWattStream is running with {devices} simulated devices: "
            f"{plan.history.total_seconds() / 3600:g} h of history (a reading every "
            f"{plan.interval_s} s), then live; planned anomalies on "
            f"{', '.join(plan.anomaly_devices()) or 'none'}. The dashboard is complete (every "
            "device with a forecast and a coloured health status) when the history is "
            "processed: progress below.\n"
            f"  Dashboard:  {base}/#api_key={secrets.api_key} (the write key: acknowledge alerts)\n"
            f"  API docs:   {base}/docs\n"
            f"  Readings:   {base}/api/v1/devices/dev-00000/readings\n"
            f"  Logs:       {logs}/\n"
            f"  Journal:    {plan.journal} (`wattstream audit` checks it)\n"
            f"  Labels:     {plan.labels} (`python bench/alert_quality.py --labels {plan.labels}`"
            " scores the alerts)\n"
            f"  API keys:   {settings.secrets_path}/api-key (write), api-admin-key (admin),\n"
            f"              api-read-key (read); local dev write key: {secrets.api_key},\n"
            f"              read key: {secrets.api_read_key} (reads need none in development)\n"
            "Press Ctrl-C to stop everything.\n"
        )
        watch = ProgressWatch(
            endpoints.database_url, plan, plan.start(now), f"{base}/", announce, began=services_up
        )
        _watch(children, watch)
    except _ChildExited as exited:
        log.error("%s; stopping everything (logs: %s)", exited, logs)  # noqa: TRY400 - no traceback here
        exit_code = 1
    except _Stop as stop:
        log.info("%s received; stopping", stop)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _terminate(children)
        started_here = [name for name, running in before.items() if not running]
        if started_here:
            log.info("stopping the cluster services this run started: %s", started_here)
            localcluster.down(settings, only=started_here)
        announce("WattStream stopped.")
    return exit_code
