"""Publish rate of the simulator with 10,000 devices, against ``mosquitto_pub`` in the same run.

For each connection mode (``--modes``, default ``pooled:8`` and ``per-device``), the real
simulator (``simulator.app.Simulator``: device models, pydantic readings, paho in the asyncio
loop, QoS 1) publishes as fast as the broker acknowledges for ``--duration-s``; the rate is
the PUBACKed readings per second after a short warm-up. The baseline is ``mosquitto_pub -l -q 1
-M <max-inflight>`` (libmosquitto, C) in as many processes as the pooled mode has connections,
fed the same reading payloads (one JSON line each) for the same time.

Both run against a private Mosquitto on a free port (the same Debian ``mosquitto`` as the local
cluster, without persistence), so the load does not disturb the shared broker and the broker's
own ``$SYS`` count of received PUBLISH packets measures both sides the same way (mosquitto_pub
does not wait for its queue at the end of its input, so what it reads is not what it sends).
Nobody subscribes: this measures what the publishers get accepted. CPU seconds of the
publisher(s) and of the broker over the window are reported too.

Prints the rates and their ratio; writes bench/results/simulator_publish.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from schema.connections import MqttConnection
from schema.topics import MqttTopics
from simulator.app import Simulator, ensure_file_descriptors, make_plan
from simulator.devices import tick_time
from simulator.fleet import build_fleet
from simulator.settings import SimulatorSettings

from benchkit.cluster import free_port

RESULTS = Path(__file__).parent / "results"
START = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
WARMUP_S = 3.0
MAX_AHEAD_PER_PUBLISHER = 20_000
"""Lines a mosquitto_pub may hold beyond what the broker has counted (bounds its memory)."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def private_broker() -> Iterator[tuple[int, int]]:
    """A throw-away Mosquitto on a free port: (port, pid)."""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="wattstream-bench-") as tmp:
        config = Path(tmp) / "mosquitto.conf"
        config.write_text(
            f"user {pwd.getpwuid(os.geteuid()).pw_name}\n"
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous true\npersistence false\nsys_interval 1\n"
            "log_dest stderr\nlog_type error\nlog_type warning\nconnection_messages false\n"
        )
        broker = subprocess.Popen([mosquitto, "-c", str(config)], stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 10
            while True:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if time.monotonic() > deadline or broker.poll() is not None:
                    raise RuntimeError("the private mosquitto did not start")
                time.sleep(0.05)
            yield port, broker.pid
        finally:
            broker.terminate()
            broker.wait(timeout=10)


class BrokerCounter:
    """The broker's own count of PUBLISH packets received (``$SYS``, once a second): what the
    publishers really got across, whatever they claim."""

    TOPIC = "$SYS/broker/publish/messages/received"

    def __init__(self, port: int) -> None:
        self.samples: list[tuple[float, int]] = []
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-sys-counter"
        )
        self._client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(self.TOPIC)
        self._client.on_message = lambda _c, _u, m: self.samples.append(
            (time.monotonic(), int(m.payload))
        )
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()

    @property
    def latest(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def wait_next(self) -> tuple[float, int]:
        """The next sample after now."""
        count = len(self.samples)
        deadline = time.monotonic() + 10
        while len(self.samples) == count:
            if time.monotonic() > deadline:
                raise RuntimeError("the broker publishes no $SYS counters")
            time.sleep(0.01)
        return self.samples[-1]


def payload_lines(devices: int, ticks: int) -> bytes:
    """The readings the fleet publishes first, one JSON document per line."""
    fleet = build_fleet(devices, seed=1)
    return b"".join(
        model.reading(k, tick_time(START, k, 60), 60).to_json() + b"\n"
        for k in range(ticks)
        for model in fleet
    )


def run_mosquitto_pub(
    port: int, broker_pid: int, *, processes: int, duration_s: float, inflight: int
) -> dict[str, float]:
    """``processes`` mosquitto_pub -l, fed the payloads round and round.

    mosquitto_pub reads its input as fast as it can and queues what it has not sent yet
    (without bound), and at the end of its input it disconnects without sending that queue: so
    it is fed only a little ahead of what the broker has counted, and the rate is the broker's
    count over the window, with the publishers still running.
    """
    lines = payload_lines(2000, 1)
    chunk_lines = lines.count(b"\n")
    topics = MqttTopics("bench")
    counter = BrokerCounter(port)
    children = [
        subprocess.Popen(
            [
                "mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-q", "1", "-l",
                "-M", str(inflight), "-t", topics.readings(f"dev-{p:05d}"), "-i", f"bench-pub-{p}",
            ],
            stdin=subprocess.PIPE,
        )
        for p in range(processes)
    ]  # fmt: skip
    fed = [0] * processes
    stop = threading.Event()
    base = counter.wait_next()[1]

    def feed(p: int) -> None:
        stdin = children[p].stdin
        assert stdin is not None
        with contextlib.suppress(BrokenPipeError):
            while not stop.is_set():
                if sum(fed) - (counter.latest - base) > MAX_AHEAD_PER_PUBLISHER * processes:
                    time.sleep(0.005)
                    continue
                stdin.write(lines)
                stdin.flush()
                fed[p] += chunk_lines

    feeders = [threading.Thread(target=feed, args=(p,), daemon=True) for p in range(processes)]
    for feeder in feeders:
        feeder.start()
    try:
        time.sleep(WARMUP_S)
        t0, c0 = counter.wait_next()
        cpu0 = sum(cpu_seconds(c.pid) for c in children), cpu_seconds(broker_pid)
        time.sleep(duration_s)
        t1, c1 = counter.wait_next()
        cpu1 = sum(cpu_seconds(c.pid) for c in children), cpu_seconds(broker_pid)
    finally:
        stop.set()
        for child in children:
            child.kill()
            child.wait()
        for feeder in feeders:
            feeder.join()
        counter.close()
    return {
        "messages": c1 - c0,
        "seconds": round(t1 - t0, 2),
        "per_s": round((c1 - c0) / (t1 - t0)),
        "publisher_cpu_s": round(cpu1[0] - cpu0[0], 1),
        "broker_cpu_s": round(cpu1[1] - cpu0[1], 1),
        "connections": processes,
    }


async def run_simulator(
    port: int, broker_pid: int, *, devices: int, mode: str, duration_s: float, inflight: int
) -> dict[str, float]:
    settings = SimulatorSettings(
        mqtt=MqttConnection(port=port),
        topic_namespace="bench",
        client_id_prefix=f"bench-{mode.replace(':', '')}",
        devices=devices,
        interval_s=60,
        start=START,
        speed=1e9,  # every reading is due at once: publish as fast as PUBACKs allow
        connections=mode,
        max_inflight=inflight,
        progress_s=0,
    )
    plan = make_plan(settings)
    ensure_file_descriptors(settings.connection_mode.connections_for(devices))
    sim = Simulator(settings, plan)
    counter = BrokerCounter(port)
    connect_began = time.monotonic()
    try:
        async with sim.transport:
            connect_s = time.monotonic() - connect_began
            sim.clock.restart()
            publisher = asyncio.create_task(sim.publish_loop(), name="publish")
            await asyncio.sleep(WARMUP_S)
            t0, c0 = await asyncio.to_thread(counter.wait_next)
            acked0, cpu0 = sim.transport.backlog.acked, time.process_time()
            broker_cpu0 = cpu_seconds(broker_pid)
            await asyncio.sleep(duration_s)
            t1, c1 = await asyncio.to_thread(counter.wait_next)
            acked = sim.transport.backlog.acked - acked0
            cpu = time.process_time() - cpu0
            broker_cpu = cpu_seconds(broker_pid) - broker_cpu0
            publisher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await publisher
    finally:
        counter.close()
    return {
        "messages": c1 - c0,
        "seconds": round(t1 - t0, 2),
        "per_s": round((c1 - c0) / (t1 - t0)),
        "acked_per_s": round(acked / (t1 - t0)),
        "publisher_cpu_s": round(cpu, 1),
        "broker_cpu_s": round(broker_cpu, 1),
        "connections": settings.connection_mode.connections_for(devices),
        "connect_s": round(connect_s, 1),
        "readings_per_device": round(sim.transport.published / devices, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--duration-s", type=float, default=60.0)
    parser.add_argument("--modes", default="pooled:8,per-device")
    parser.add_argument("--max-inflight", type=int, default=100)
    args = parser.parse_args()
    modes = args.modes.split(",")
    pooled = next((m for m in modes if m.startswith("pooled:")), "pooled:8")
    processes = int(pooled.split(":")[1])

    with private_broker() as (port, broker_pid):
        print(f"broker 127.0.0.1:{port}, {args.devices} devices, {args.duration_s:g} s each")
        baseline = run_mosquitto_pub(
            port,
            broker_pid,
            processes=processes,
            duration_s=args.duration_s,
            inflight=args.max_inflight,
        )
        print(
            f"mosquitto_pub x{processes:<5} {baseline['per_s']:>9,} msg/s  "
            f"(publishers {baseline['publisher_cpu_s']} CPU s, broker {baseline['broker_cpu_s']})"
        )
        runs = {}
        for mode in modes:
            result = asyncio.run(
                run_simulator(
                    port,
                    broker_pid,
                    devices=args.devices,
                    mode=mode,
                    duration_s=args.duration_s,
                    inflight=args.max_inflight,
                )
            )
            result["ratio_to_mosquitto_pub"] = round(result["per_s"] / baseline["per_s"], 3)
            runs[mode] = result
            print(
                f"simulator {mode:<13} {result['per_s']:>9,} msg/s  "
                f"(PUBACKed {result['acked_per_s']:,}/s) "
                f"({result['ratio_to_mosquitto_pub']:.2f}x mosquitto_pub; "
                f"simulator {result['publisher_cpu_s']} CPU s, broker {result['broker_cpu_s']}; "
                f"{result['connections']} connections up in {result['connect_s']} s)"
            )

    result_doc = {
        "benchmark": "simulator_publish",
        "devices": args.devices,
        "duration_s": args.duration_s,
        "qos": 1,
        "max_inflight": args.max_inflight,
        "broker": "private mosquitto (Debian), no persistence, no subscribers",
        "rate_source": "the broker's $SYS/broker/publish/messages/received over the window",
        "mosquitto_pub": baseline,
        "simulator": runs,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "at": datetime.now(UTC).isoformat(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "simulator_publish.json").write_text(json.dumps(result_doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
