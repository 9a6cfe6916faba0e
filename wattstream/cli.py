"""``wattstream`` (``python -m schema``): one command for every service and the local cluster.

Service sub-commands replace this process with the service's own entry point
(``python -m simulator`` and so on), so each service stays a separate program that this
package never imports; ``run`` starts them all as child processes.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from schema.commandline import configure_logging

if TYPE_CHECKING:
    from wattstream.firstrun import FirstRun

SERVICES = {
    "simulate": ("simulator", "publish a simulated fleet's readings over MQTT"),
    "bridge": ("stream.bridge", "forward device messages from MQTT to Kafka"),
    "stream": ("stream.worker", "run the Faust stream worker"),
    "api": ("api", "serve the REST API and dashboard"),
    "train": ("stream.forecast", "train the next-hour GRU forecaster and write artifacts/"),
    "audit": ("stream.audit", "compare the simulator's delivery journal with the database"),
}

_STORAGE_FLAGS = (  # (flag, default, help); defaults also come from WATTSTREAM_MIGRATE_<FLAG>
    ("storage-mode", "auto", "auto | timescaledb | postgresql (auto: TimescaleDB when usable)"),
    (
        "compress-after",
        None,
        "TimescaleDB: compress raw readings older than this ('7 days', 'off')",
    ),
    ("retention", None, "TimescaleDB: drop raw readings older than this ('off' keeps them)"),
)


def _exec_module(module: str, args: Sequence[str]) -> None:
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="wattstream", description="WattStream: IoT simulator and stream processor."
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("WATTSTREAM_LOG_LEVEL", "INFO"),
        help="for migrate, services and run (the services take their own) [WATTSTREAM_LOG_LEVEL]",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_module, help_) in SERVICES.items():
        commands.add_parser(name, help=help_, add_help=False)
    migrate = commands.add_parser("migrate", help="upgrade the database schema (Alembic)")
    migrate.add_argument(
        "--database-url", default=os.environ.get("WATTSTREAM_MIGRATE_DATABASE_URL")
    )
    migrate.add_argument("--revision", default="head")
    migrate.add_argument("--downgrade", action="store_true", help="downgrade to --revision instead")
    for flag, default, help_ in _STORAGE_FLAGS:  # see schema/storage.py
        variable = "WATTSTREAM_MIGRATE_" + flag.upper().replace("-", "_")
        migrate.add_argument(f"--{flag}", default=os.environ.get(variable, default), help=help_)
    _add_services(commands)
    _add_topics(commands)
    _add_run(commands)

    if argv and argv[0] == "audit":
        argv = [argv[0], *_audit_defaults(argv[1:], os.environ)]
    if argv and argv[0] in SERVICES:  # the service parses its own flags
        _exec_module(SERVICES[argv[0]][0], argv[1:])
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    if args.command == "migrate":
        from wattstream import migrate as migrations  # noqa: PLC0415 - only this command needs Alembic

        if not args.database_url:
            parser.error("migrate needs --database-url or WATTSTREAM_MIGRATE_DATABASE_URL")
        from schema.storage import StorageOptions  # noqa: PLC0415

        try:
            options = StorageOptions.from_strings(
                {
                    f.replace("-", "_"): getattr(args, f.replace("-", "_"))
                    for f, _, _ in _STORAGE_FLAGS
                }
            )
        except ValueError as exc:
            parser.error(str(exc))
        if args.downgrade:
            migrations.downgrade(args.database_url, args.revision)
        else:
            migrations.upgrade(args.database_url, args.revision, options)
    elif args.command == "services":
        sys.exit(_services(args))
    elif args.command == "topics":
        sys.exit(_topics(args))
    elif args.command == "run":
        from wattstream import launcher  # noqa: PLC0415

        sys.exit(launcher.run_pipeline(plan=_first_run(parser, args), announce=_announce))


def _add_run(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="services up + migrate + the whole pipeline: history first, then live",
        description="Start the local cluster and every service. The simulator first publishes "
        "--history of accelerated history (enough for forecasts, coloured health and alerts), "
        "then goes live; a progress line shows how far the pipeline got, and 'dashboard "
        "complete' when every device has a forecast and a health status.",
    )
    run.add_argument("--devices", type=int, default=20, help="simulated devices (20)")
    run.add_argument(
        "--history", default="3d", help="history published before live time (3d; 14d, 36h, ...)"
    )
    run.add_argument(
        "--interval", default="300s", help="seconds between two readings of a device (300s)"
    )
    run.add_argument(
        "--scenario",
        action="append",
        metavar="NAME",
        help="repeatable: an anomaly kind (spike, drift, stuck, dropout: planned on dev-00001, "
        "dev-00002, ... late in the history) or a delivery scenario of the simulator "
        "(duplicates, late-bursts, ...: the whole fleet); default: every anomaly kind (one "
        "device each, so every alert kind shows); 'none': neither",
    )


def _first_run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> FirstRun:
    from schema.device_messages import AnomalyKind  # noqa: PLC0415
    from simulator.durations import duration_seconds, parse_duration  # noqa: PLC0415
    from wattstream.firstrun import FirstRun, split_scenarios  # noqa: PLC0415

    names = [n for n in (args.scenario or [k.value for k in AnomalyKind]) if n != "none"]
    try:
        anomalies, scenarios = split_scenarios(names)
        return FirstRun(
            devices=args.devices,
            history=parse_duration(args.history),
            interval_s=duration_seconds(args.interval),
            anomalies=anomalies,
            scenarios=scenarios,
        )
    except ValueError as exc:
        parser.error(str(exc))


def _audit_defaults(argv: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """``wattstream audit`` without a journal or database audits what ``wattstream run``
    started: the local cluster's run journal and database."""
    given = {a.split("=", 1)[0] for a in argv}
    wanted = {
        "--journal": "WATTSTREAM_AUDIT_JOURNAL",
        "--database-url": "WATTSTREAM_AUDIT_DATABASE_URL",
    }
    missing = [f for f, variable in wanted.items() if f not in given and variable not in environ]
    if not missing or "-h" in given or "--help" in given:
        return list(argv)
    from wattstream import localcluster  # noqa: PLC0415
    from wattstream.launcher import journal_path  # noqa: PLC0415

    settings = localcluster.ClusterSettings()
    defaults = {
        "--journal": str(journal_path(settings)),
        "--database-url": localcluster.endpoints(settings).database_url,
    }
    return [*argv, *(f"{flag}={defaults[flag]}" for flag in missing)]


def _add_services(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    services = commands.add_parser("services", help="the local cluster without Docker")
    actions = services.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("up", help="start Mosquitto, Kafka and PostgreSQL (installing them)")
    actions.add_parser("down", help="stop them")
    actions.add_parser("status", help="show whether each is running")
    actions.add_parser(
        "env",
        help="print the variables that point every service at the local cluster, with its "
        "credentials",
    )
    provision = actions.add_parser(
        "provision",
        help="let the devices and gateways of --identities (JSON, as `python -m simulator "
        "identities` prints) connect to the broker",
    )
    provision.add_argument("--identities", default="-", help="JSON file of identities ('-': stdin)")
    provision.add_argument(
        "--compose",
        metavar="DIR",
        help="write Mosquitto's password file and ACL into DIR for docker-compose "
        "(secrets from WATTSTREAM_BRIDGE_MQTT_PASSWORD, WATTSTREAM_API_MQTT_PASSWORD and "
        "WATTSTREAM_SIM_DEVICE_KEY) instead of the local cluster",
    )
    actions.add_parser(
        "test-tools", help="install what the test suite needs beyond the cluster (docker-compose)"
    )


def _add_topics(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topics = commands.add_parser("topics", help="the pipeline's Kafka topics")
    topic_actions = topics.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = topic_actions.add_parser(
        "create", help="create the pipeline's Kafka topics that do not exist yet (idempotent)"
    )
    create.add_argument(
        "--kafka-bootstrap",
        default=os.environ.get("WATTSTREAM_TOPICS_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
    )
    create.add_argument(
        "--namespace",
        default=os.environ.get("WATTSTREAM_TOPICS_NAMESPACE", ""),
        help="topic namespace",
    )
    create.add_argument(
        "--app-id",
        default=os.environ.get("WATTSTREAM_TOPICS_APP_ID", "wattstream-stream"),
        help="the stream worker's app id (its changelog topic is created too)",
    )


def _announce(text: str) -> None:
    print(text, flush=True)


def _read_identities(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    with open(source, encoding="utf-8") as file:  # noqa: PTH123 - a path from the command line
        return file.read()


def _topics(args: argparse.Namespace) -> int:
    import asyncio  # noqa: PLC0415

    from schema.topics import KafkaTopics  # noqa: PLC0415
    from stream.provision import ensure_topics_retrying  # noqa: PLC0415

    specs = KafkaTopics(args.namespace).worker_specs(args.app_id)
    created = asyncio.run(ensure_topics_retrying(args.kafka_bootstrap, specs))
    _announce(f"{len(specs)} topics, {len(created)} created: {', '.join(created) or '-'}")
    return 0


def _services(args: argparse.Namespace) -> int:
    from schema.credentials import DeviceIdentities  # noqa: PLC0415
    from wattstream import localcluster  # noqa: PLC0415 - only these commands need it

    action = args.action
    if action == "provision" and args.compose:  # only provision has --compose
        from wattstream.localcluster.compose import write_compose_auth  # noqa: PLC0415

        identities = DeviceIdentities.model_validate_json(_read_identities(args.identities))
        write_compose_auth(args.compose, os.environ, identities)
        return 0
    settings = localcluster.ClusterSettings()
    if action == "provision":
        identities = DeviceIdentities.model_validate_json(_read_identities(args.identities))
        merged = localcluster.provision(settings, identities)
        print(f"provisioned: {len(merged.devices)} devices, {len(merged.gateways)} gateways")
        return 0
    if action == "up":
        endpoints = localcluster.up(settings)
        print(f"MQTT      {endpoints.mqtt_host}:{endpoints.mqtt_port}")
        print(f"Kafka     {endpoints.kafka_bootstrap}")
        print(f"Postgres  {endpoints.database_url}")
    elif action == "down":
        localcluster.down(settings)
    elif action == "env":
        from wattstream.launcher import service_environment  # noqa: PLC0415

        secrets = localcluster.ensure_secrets(settings.secrets_path)
        for key, value in service_environment(localcluster.endpoints(settings), secrets).items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    elif action == "test-tools":
        localcluster.ensure_test_tools()
        return 0
    statuses = localcluster.status(settings)
    if action in {"up", "down", "status"}:
        for name, state in statuses.items():
            running = "running" if state.running else "stopped"
            print(f"{name:<10} {running:<8} {state.detail}")
    return 0


if __name__ == "__main__":
    main()
