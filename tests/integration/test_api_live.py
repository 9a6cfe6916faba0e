"""The live websocket feed against a real Kafka: the API runs in uvicorn on a real socket, the
test produces real messages to its namespaced topics and reads them with real websocket clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import jwt
import pytest
import uvicorn
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from api.app import create_app
from api.settings import ApiSettings, DeviceKey
from schema.connections import DatabaseConnection, KafkaConnection, MqttConnection
from schema.device_messages import DeviceStatus, Presence
from schema.results import Alert
from schema.topics import KafkaTopics
from schema.wire import Energy, Power, Reading
from tests.fixtures.waiting import wait_until_async

if TYPE_CHECKING:
    from tests.conftest import Services

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
KEY = "a-test-key-that-is-long-enough"
READ_KEY = "a-read-key-that-is-long-enough"
JWT_SECRET = "a-jwt-secret-that-is-32-bytes-or-more"


def reading(device_id: str, seq: int) -> bytes:
    return Reading(
        device_id=device_id,
        seq=seq,
        ts=T0 + timedelta(minutes=seq),
        tz="UTC",
        interval_s=60,
        energy=Energy(value=0.01 * seq),
        power=Power(value=0.6),
    ).to_json()


def status(device_id: str, presence: Presence) -> bytes:
    return DeviceStatus(device_id=device_id, status=presence, ts=T0).model_dump_json().encode()


def alert(device_id: str) -> bytes:
    return (
        Alert(
            alert_id=f"{device_id}.residual.0",
            device_id=device_id,
            hour_start=T0,
            last_hour_start=T0,
            hours=1,
            severity="critical",
            residual_kwh=2.5,
            sigma=0.4,
            z=6.2,
            message="energy far above forecast",
            raised_at=T0 + timedelta(hours=1),
            updated_at=T0 + timedelta(hours=1),
            resolved_hour=None,
            resolved_at=None,
        )
        .model_dump_json()
        .encode()
    )


@asynccontextmanager
async def api_server(
    database: str,
    services: Services,
    namespace: str,
    *,
    sndbuf: int | None = None,
    bootstrap: str | None = None,
    **overrides: Any,
) -> AsyncIterator[str]:
    """The app in uvicorn on a real loopback socket, its live feed positioned on every topic
    (of Kafka at ``bootstrap``: by default the session's).

    ``sndbuf`` caps the kernel send buffer of every accepted connection (Linux copies it from
    the listening socket), so a client that stops reading blocks the server's sends after
    kilobytes instead of the megabytes loopback autotuning allows.
    """
    settings = ApiSettings(
        database=DatabaseConnection(url=SecretStr(database)),
        kafka=KafkaConnection(bootstrap=bootstrap or services.kafka_bootstrap),
        # The whole block: the API's own broker user, as the launcher gives it.
        mqtt=MqttConnection.model_validate(
            {"host": services.mqtt_host, "port": services.mqtt_port, **services.mqtt_auth("api")}
        ),
        topic_namespace=namespace,
        **overrides,
    )
    sock = socket.socket()
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.bind(("127.0.0.1", 0))
    base = f"127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with httpx.AsyncClient(base_url=f"http://{base}") as http:

            async def assigned() -> bool:
                assert not task.done(), "the API exited during start-up"
                if not server.started:
                    return False
                ready = await http.get("/ready")
                return ready.status_code == 200 and bool(ready.json()["live_feed"]["assigned"])

            await wait_until_async("the live feed assigned", assigned, 30)
        yield base
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        sock.close()


def stalled_socket(base: str) -> socket.socket:
    """A connection with a tiny receive window for a client that stops reading: with
    ``max_queue=1`` and no compression (which would shrink the frames tenfold), a few dozen
    frames fill every buffer between it and the server."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", int(base.rsplit(":", 1)[1])))
    return sock


class Producer:
    def __init__(self, producer: AIOKafkaProducer, topics: KafkaTopics) -> None:
        self._producer, self.topics = producer, topics

    async def send(self, topic: str, device_id: str, value: bytes) -> None:
        await self._producer.send_and_wait(topic, value, key=device_id.encode())

    async def send_all(self, topic: str, messages: list[tuple[str, bytes]]) -> None:
        """(device id, value) pairs, batched by the producer; returns when Kafka has them."""
        for device_id, value in messages:
            await self._producer.send(topic, value, key=device_id.encode())
        await self._producer.flush()


@pytest.fixture
async def produce(services: Services, kafka_topics: KafkaTopics) -> AsyncIterator[Producer]:
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka_bootstrap, linger_ms=5)
    await producer.start()
    try:
        yield Producer(producer, kafka_topics)
    finally:
        await producer.stop()


async def frames_until(
    ws: ClientConnection,
    done: Callable[[list[dict[str, Any]]], bool],
    within_s: float = 20,
    got: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Event frames until ``done(frames)`` holds (heartbeats are skipped), appended to
    ``got`` as they come."""
    got = [] if got is None else got
    async with asyncio.timeout(within_s):
        while not done(got):
            frame = json.loads(await ws.recv())
            if frame["type"] == "event":
                got.append(frame)
    return got


async def quiet_frames(ws: ClientConnection, quiet_s: float = 1.0) -> list[dict[str, Any]]:
    """Every event frame that arrives until none has for ``quiet_s``.

    Not a wait for a state but the check that nothing more comes: a filtered client must not
    get another client's share, and "no frame for a while" is the only evidence of absence."""
    got: list[dict[str, Any]] = []
    while True:
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), quiet_s))
        except TimeoutError:
            return got
        if frame["type"] == "event":
            got.append(frame)


async def live_counters(base: str) -> list[str]:
    """The hub's counters (coalesced? kicked?), for a failure message."""
    async with httpx.AsyncClient(base_url=f"http://{base}") as http:
        metrics = (await http.get("/metrics")).text
    return [m for m in metrics.splitlines() if m.startswith("wattstream_api_live")]


async def hello(ws: ClientConnection) -> dict[str, Any]:
    frame: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert frame["type"] == "hello", frame
    return frame


async def test_clients_get_only_what_they_subscribed_to(
    database: str, services: Services, namespace: str, produce: Producer
) -> None:
    topics = produce.topics
    async with api_server(database, services, namespace) as base:
        url = f"ws://{base}/api/v1/ws/live"
        async with (
            connect(f"{url}?kinds=readings&devices=dev-a") as readings_of_a,
            connect(f"{url}?kinds=alerts,status") as alerts_and_status,
            connect(url) as everything,
        ):
            first = await hello(readings_of_a)
            assert (first["kinds"], first["devices"]) == (["readings"], ["dev-a"])
            await hello(alerts_and_status)
            await hello(everything)
            await produce.send(topics.readings, "dev-a", reading("dev-a", 1))
            await produce.send(topics.readings, "dev-b", reading("dev-b", 1))
            await produce.send(topics.alerts, "dev-b", alert("dev-b"))
            await produce.send(topics.device_status, "dev-a", status("dev-a", Presence.OFFLINE))
            await produce.send(topics.readings, "dev-a", reading("dev-a", 2))
            await produce.send(topics.readings, "dev-b", b'{"not": "a reading"}')

            all_events = await frames_until(everything, lambda got: len(got) >= 5)
            assert sorted((e["kind"], e["device_id"]) for e in all_events) == [
                ("alerts", "dev-b"),
                ("readings", "dev-a"),
                ("readings", "dev-a"),
                ("readings", "dev-b"),
                ("status", "dev-a"),
            ]
            # Every client's share was queued when `everything` got its last one.
            mine = await quiet_frames(readings_of_a)
            assert [(e["kind"], e["device_id"], e["data"]["seq"]) for e in mine] == [
                ("readings", "dev-a", 1),
                ("readings", "dev-a", 2),
            ]
            theirs = await quiet_frames(alerts_and_status)
            assert sorted((e["kind"], e["device_id"]) for e in theirs) == [
                ("alerts", "dev-b"),
                ("status", "dev-a"),
            ]
            alert_frame = next(e for e in theirs if e["kind"] == "alerts")
            assert alert_frame["data"]["severity"] == "critical"
            assert alert_frame["data"]["hour_start"] == "2026-03-29T00:00:00Z"

            # Changing the subscription on the same connection.
            await alerts_and_status.send(json.dumps({"type": "subscribe", "kinds": ["readings"]}))
            ack = json.loads(await asyncio.wait_for(alerts_and_status.recv(), 10))
            assert ack == {"type": "subscribed", "kinds": ["readings"], "devices": None}
            await produce.send(topics.readings, "dev-b", reading("dev-b", 3))
            (event,) = await frames_until(alerts_and_status, lambda got: len(got) >= 1)
            assert (event["kind"], event["data"]["seq"]) == ("readings", 3)

        async with httpx.AsyncClient(base_url=f"http://{base}") as http:
            metrics = (await http.get("/metrics")).text
        assert "wattstream_api_live_kafka_invalid_total 1.0" in metrics


async def test_a_slow_client_gets_the_latest_per_device_while_a_fast_one_gets_all(
    database: str, services: Services, namespace: str, produce: Producer
) -> None:
    # "Fast" has to mean "never QUEUE_SIZE events behind": the API coalesces a client's frames
    # once that many wait for it. The readings therefore go out in rounds smaller than the queue,
    # each once the fast client has every earlier one, so its queue never fills, whatever the
    # scheduling. (Producing all 1,200 at once made the test a race: the live feed hands the hub
    # up to 64 records between two yields to the event loop, as many as the queue holds, and the
    # fast client's sender - in the same loop as everything else, behind an 8 KB send buffer -
    # had to drain them all in one turn; when it did not, its frames coalesced and it never saw
    # all 1,200. Seen twice on a fresh CI clone.)
    devices, per_device, queue_size, seqs_per_round = 4, 300, 64, 12
    assert devices * seqs_per_round < queue_size
    total = devices * per_device
    async with api_server(
        database,
        services,
        namespace,
        sndbuf=8192,
        ws_queue_size=queue_size,
        ws_max_behind_s=100,  # the slow client stays connected, behind, for the whole test
    ) as base:
        url = f"ws://{base}/api/v1/ws/live?kinds=readings"
        async with (
            connect(url, sock=stalled_socket(base), max_queue=1, compression=None) as slow,
            connect(url, max_queue=None) as fast,
        ):
            await hello(slow)
            await hello(fast)
            got_fast: list[dict[str, Any]] = []
            for first in range(0, per_device, seqs_per_round):
                seqs = range(first, min(first + seqs_per_round, per_device))
                await produce.send_all(
                    produce.topics.readings,
                    [
                        (f"dev-{d}", reading(f"dev-{d}", seq))
                        for seq in seqs
                        for d in range(devices)
                    ],
                )
                wanted = devices * len(seqs)
                try:
                    got_fast += await frames_until(fast, lambda got, n=wanted: len(got) == n)
                except TimeoutError:
                    counters = await live_counters(base)
                    pytest.fail(f"the fast client stopped at {len(got_fast)} frames: {counters}")
            assert len(got_fast) == total
            assert not any("coalesced" in e for e in got_fast)

            # Events go out in order, so once every device's last reading is there, so is
            # every event that could still come.
            def every_latest(got: list[dict[str, Any]]) -> bool:
                latest = {(e["device_id"], e["data"]["seq"]) for e in got}
                return all((f"dev-{d}", per_device - 1) in latest for d in range(devices))

            got_slow = await frames_until(slow, every_latest)
        replaced = sum(e.get("coalesced", 0) for e in got_slow)
        assert replaced > 0, "the slow client was never behind"
        assert len(got_slow) < total
        # Nothing is lost without a trace: each event was delivered or counted as replaced...
        assert len(got_slow) + replaced == total
        # ...and the latest value of every device arrived.
        last = {}
        for event in got_slow:
            last[event["device_id"]] = event["data"]["seq"]
        assert last == {f"dev-{d}": per_device - 1 for d in range(devices)}
        ids = [int(e["id"].rsplit("-", 1)[1]) for e in got_slow]
        assert ids == sorted(ids)


async def test_a_client_that_stays_behind_is_dropped_without_holding_up_another(
    database: str, services: Services, namespace: str, produce: Producer
) -> None:
    async with api_server(
        database, services, namespace, sndbuf=8192, ws_queue_size=128, ws_max_behind_s=1.0
    ) as base:
        # A client that completes the handshake and then never reads a byte.
        loop = asyncio.get_running_loop()
        stuck = stalled_socket(base)
        stuck.setblocking(False)
        await loop.sock_sendall(
            stuck,
            b"GET /api/v1/ws/live?kinds=readings HTTP/1.1\r\nHost: test\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += await asyncio.wait_for(loop.sock_recv(stuck, 1), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        # A client that reads, beside it: it gets every round while the other is stuck.
        url = f"ws://{base}/api/v1/ws/live?kinds=readings"
        async with connect(url, compression=None) as reader:
            await hello(reader)
            read: list[dict[str, Any]] = []
            reading = asyncio.create_task(
                frames_until(reader, lambda _got: False, within_s=120, got=read), name="reader"
            )
            try:
                with stuck:
                    sent = await stuck_client_dropped(base, produce, loop, stuck)
                # Then one more round: the reader gets it as well, and had every round before.
                await produce.send_all(
                    produce.topics.readings,
                    [(f"dev-{d}", reading_of(d, sent)) for d in range(100)],
                )

                def last_round_read() -> bool:
                    assert not reading.done(), reading
                    return sum(1 for e in read if e["data"]["seq"] == sent) == 100

                await wait_until_async("the reader has the last round", last_round_read, 30)
            finally:
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
        coalesced = sum(e.get("coalesced", 0) for e in read)
        assert len(read) + coalesced == 100 * (sent + 1)


def reading_of(device: int, seq: int) -> bytes:
    return reading(f"dev-{device}", seq)


async def stuck_client_dropped(
    base: str, produce: Producer, loop: asyncio.AbstractEventLoop, stuck: socket.socket
) -> int:
    """Rounds of 100 readings until the hub drops ``stuck``, which then reads its close frame;
    how many rounds were sent."""
    async with httpx.AsyncClient(base_url=f"http://{base}") as http:
        rounds = itertools.count()

        async def kicked_after_one_more_round() -> bool:
            metrics = (await http.get("/metrics")).text
            if "wattstream_api_live_clients_kicked_total 1.0" in metrics:
                return True
            # 100 devices: coalescing cannot shrink the backlog below 100 frames. The
            # interval paces these rounds: the client is behind for longer and longer.
            seq = next(rounds)
            await produce.send_all(
                produce.topics.readings, [(f"dev-{d}", reading_of(d, seq)) for d in range(100)]
            )
            return False

        await wait_until_async(
            "the stuck client dropped", kicked_after_one_more_round, 30, interval_s=0.2
        )
        # Only the stuck one: the reading client is still there.
        assert "wattstream_api_live_clients 1.0" in (await http.get("/metrics")).text
    # Reading now drains what was buffered, ending with a close frame that says why:
    # 0x88 (FIN + close), payload length, code 4008, reason.
    received = b""
    async with asyncio.timeout(30):
        while b"\x0f\xa8behind for more than 1s" not in received:
            chunk = await loop.sock_recv(stuck, 65536)
            assert chunk, "closed without a close frame"
            received += chunk
    return next(rounds)


async def test_resume_after_reconnect_replays_what_was_missed(
    database: str, services: Services, namespace: str, produce: Producer
) -> None:
    topics = produce.topics
    async with api_server(database, services, namespace) as base:
        url = f"ws://{base}/api/v1/ws/live?kinds=readings&devices=dev-r"
        async with connect(f"ws://{base}/api/v1/ws/live") as everything:
            await hello(everything)
            async with connect(url) as ws:
                await hello(ws)
                for seq in range(3):
                    await produce.send(topics.readings, "dev-r", reading("dev-r", seq))
                before = await frames_until(ws, lambda got: len(got) >= 3)
            last_id = before[-1]["id"]
            # These happen while the client is away (and one of another device).
            for seq in range(3, 6):
                await produce.send(topics.readings, "dev-r", reading("dev-r", seq))
            await produce.send(topics.readings, "dev-x", reading("dev-x", 0))
            await frames_until(everything, lambda got: len(got) >= 7)  # the hub has them all

        async with connect(f"{url}&last_event_id={last_id}") as ws:
            greeting = await hello(ws)
            assert greeting["resume"]["status"] == "resumed"
            assert greeting["resume"]["replayed"] == 3
            missed = await frames_until(ws, lambda got: len(got) >= 3)
            assert [e["data"]["seq"] for e in missed] == [3, 4, 5]
            await produce.send(topics.readings, "dev-r", reading("dev-r", 6))
            (live,) = await frames_until(ws, lambda got: len(got) >= 1)
            assert live["data"]["seq"] == 6

        async with connect(f"{url}&last_event_id=0000dead-1") as ws:
            greeting = await hello(ws)
            assert greeting["resume"]["status"] == "gap"
            assert "another stream" in greeting["resume"]["reason"]


async def refused(ws: ClientConnection, code: int = 1008) -> str:
    """The error frame, then a close with ``code``; the frame's detail."""
    error = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert error["type"] == "error"
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code
    detail: str = error["detail"]
    return detail


async def test_heartbeats_key_and_bad_filters(
    database: str, services: Services, namespace: str, kafka_topics: KafkaTopics
) -> None:
    """Where reads need a key the feed takes one of any scope in the ``X-API-Key`` header or
    as the first message within the deadline, and never from the URL."""
    async with api_server(
        database,
        services,
        namespace,
        ws_heartbeat_s=0.3,
        require_read_key=True,
        ws_auth_timeout_s=1.0,
        read_api_keys=(SecretStr(READ_KEY),),
        api_keys=(SecretStr(KEY),),
        jwt_secret=SecretStr(JWT_SECRET),
    ) as base:
        url = f"ws://{base}/api/v1/ws/live"
        async with connect(url) as ws:  # says nothing: the deadline passes
            assert "API key" in await refused(ws)
        async with connect(url, additional_headers={"X-API-Key": "wrong"}) as ws:
            await refused(ws)
        async with connect(f"{url}?api_key={READ_KEY}") as ws:  # not taken from the URL
            assert "first message" in await refused(ws)
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "auth", "api_key": "wrong-key-0123456789"}))
            await refused(ws)
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "subscribe", "kinds": ["readings"]}))
            await refused(ws)
        async with connect(url, additional_headers={"X-API-Key": KEY}) as ws:  # write: also read
            await hello(ws)
        token = jwt.encode(
            {"scope": "read", "exp": datetime.now(UTC) + timedelta(minutes=1)}, JWT_SECRET
        )
        async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            await hello(ws)
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token}))
            await hello(ws)
        expired = jwt.encode(
            {"scope": "read", "exp": datetime.now(UTC) - timedelta(hours=1)}, JWT_SECRET
        )
        async with connect(url) as ws:
            await ws.send(json.dumps({"type": "auth", "token": expired}))
            await refused(ws)
        async with connect(f"{url}?kinds=readings") as ws:
            await ws.send(json.dumps({"type": "auth", "api_key": READ_KEY}))
            assert (await hello(ws))["kinds"] == ["readings"]
            beat = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert beat["type"] == "heartbeat"
            assert datetime.fromisoformat(beat["ts"]).tzinfo is not None
        headers = {"X-API-Key": READ_KEY}
        async with connect(f"{url}?kinds=readings,gossip", additional_headers=headers) as ws:
            error = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert "unknown kinds ['gossip']" in error["detail"]
        with pytest.raises(InvalidStatus):
            await connect(f"ws://{base}/api/v1/ws/nothing-here")


SITE_KEY = "a-site-key-that-is-long-enough"


async def test_a_device_key_sees_its_devices_and_each_key_has_a_connection_limit(
    database: str, services: Services, namespace: str, produce: Producer
) -> None:
    topics = produce.topics
    async with api_server(
        database,
        services,
        namespace,
        require_read_key=True,
        read_api_keys=(SecretStr(READ_KEY),),
        device_keys=(DeviceKey(key=SecretStr(SITE_KEY), devices=("dev-a",), prefixes=("site-",)),),
        ws_max_clients_per_key=2,
    ) as base:
        url = f"ws://{base}/api/v1/ws/live?kinds=readings"
        site = {"X-API-Key": SITE_KEY}
        async with connect(f"{url}&devices=dev-a,dev-b", additional_headers=site) as ws:
            assert "outside this key's: ['dev-b']" in await refused(ws)
        async with (
            connect(url, additional_headers=site) as limited,
            connect(url) as also_limited,
            connect(url, additional_headers={"X-API-Key": READ_KEY}) as everything,
        ):
            await hello(limited)
            await also_limited.send(json.dumps({"type": "auth", "api_key": SITE_KEY}))
            await hello(also_limited)
            await hello(everything)
            async with connect(url, additional_headers=site) as third:  # the key's limit
                assert "this key has 2 live clients" in await refused(third, 1013)
            for device in ("dev-a", "dev-b", "site-1", "sitex"):
                await produce.send(topics.readings, device, reading(device, 1))
            await frames_until(everything, lambda got: len(got) >= 4)
            mine = await quiet_frames(limited)
            assert sorted(e["device_id"] for e in mine) == ["dev-a", "site-1"]
            # Subscribing to another device is refused on the open connection too.
            await limited.send(json.dumps({"type": "subscribe", "devices": ["dev-b"]}))
            error = json.loads(await asyncio.wait_for(limited.recv(), 10))
            assert (error["type"], "dev-b" in error["detail"]) == ("error", True)

        async def admitted() -> bool:
            async with connect(url, additional_headers=site) as again:
                frame = json.loads(await asyncio.wait_for(again.recv(), 10))
                return bool(frame["type"] == "hello")

        # Once its clients have left, the key may connect again.
        await wait_until_async("a site client admitted again", admitted, 10, interval_s=0.2)
