"""The local cluster's Mosquitto refuses anonymous and wrong credentials and enforces the ACL:
a device publishes only under its own topics and reads only its own commands; only the API
user publishes commands. Over a real broker, with MQTT 5 reason codes."""

from __future__ import annotations

import asyncio
import ssl
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from schema.credentials import BrokerAuth, DeviceIdentities
from schema.topics import MqttTopics
from wattstream.localcluster import ClusterSettings

from ..conftest import Services, provision
from ..fixtures.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

WAIT_S = 10.0


@pytest.fixture(autouse=True)
def _local_only(services: Services) -> None:
    if services.source != "local":
        pytest.skip("the testcontainers broker is anonymous (no generated password file/ACL)")


class Client:
    """A paho MQTT 5 client in its own thread, recording what the broker answers."""

    def __init__(self, services: Services, auth: dict[str, str], **tls: Any) -> None:
        self.connack = threading.Event()
        self.reason: str | None = None
        self.pubacks: dict[int, str] = {}
        self.subacks: list[str] = []
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"sec-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        if auth:
            self.client.username_pw_set(auth["username"], auth["password"])
        if "ca_file" in tls:
            self.client.tls_set(ca_certs=str(tls["ca_file"]), cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = lambda _c, _u, _mid, codes, _p: self.subacks.extend(
            str(code) for code in codes
        )
        self.client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        self.client.connect(services.mqtt_host, tls.get("port", services.mqtt_port))
        self.client.loop_start()
        assert self.connack.wait(WAIT_S), "no CONNACK"

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.reason = str(reason)
        self.connack.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        with self._lock:
            self.pubacks[mid] = str(reason)

    @property
    def accepted(self) -> bool:
        return self.reason == "Success"

    def publish(self, topic: str, payload: bytes = b"{}") -> str:
        """Publish at QoS 1; the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(WAIT_S)
        wait_until("the PUBACK", lambda: info.mid in self.pubacks, WAIT_S)
        return self.pubacks[info.mid]

    def subscribe(self, topic: str) -> None:
        before = len(self.subacks)
        self.client.subscribe(topic, options=SubscribeOptions(qos=1))
        wait_until("the SUBACK", lambda: len(self.subacks) != before, WAIT_S)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def clients(services: Services) -> Iterator[list[Client]]:
    opened: list[Client] = []
    yield opened
    for client in opened:
        client.close()


@pytest.fixture
def devices(services: Services, namespace: str) -> tuple[str, str]:
    a, b = f"sec-a-{namespace}", f"sec-b-{namespace}"
    provision(services, DeviceIdentities(devices=(a, b)))
    return a, b


def connect(clients: list[Client], services: Services, user: str | None, **tls: Any) -> Client:
    client = Client(services, services.mqtt_auth(user) if user else {}, **tls)
    clients.append(client)
    return client


def test_anonymous_and_wrong_passwords_are_refused(
    services: Services, clients: list[Client], devices: tuple[str, str]
) -> None:
    assert not connect(clients, services, None).accepted
    wrong = Client(services, {"username": devices[0], "password": "not-its-password"})
    clients.append(wrong)
    assert wrong.reason == "Not authorized"
    # Another device's password does not work either: each is derived from its own identity.
    other = services.mqtt_auth(devices[1])
    borrowed = Client(services, {"username": devices[0], "password": other["password"]})
    clients.append(borrowed)
    assert not borrowed.accepted
    unknown = Client(services, services.mqtt_auth(f"never-provisioned-{uuid.uuid4().hex[:6]}"))
    clients.append(unknown)
    assert not unknown.accepted
    assert connect(clients, services, devices[0]).accepted


def test_a_device_cannot_publish_under_another_devices_topic(
    services: Services, clients: list[Client], devices: tuple[str, str], namespace: str
) -> None:
    a, b = devices
    topics = MqttTopics(namespace)
    bridge = connect(clients, services, "bridge")
    bridge.subscribe(f"{topics.root}/#")
    assert bridge.subacks == ["Granted QoS 1"]
    device_a = connect(clients, services, a)

    assert device_a.publish(topics.readings(b), b"forged") == "Not authorized"
    assert device_a.publish(topics.status(b), b"forged") == "Not authorized"
    assert device_a.publish(topics.birth(b), b"forged") == "Not authorized"
    assert device_a.publish(topics.commands(b), b"forged") == "Not authorized"
    assert device_a.publish(topics.readings(a), b"own") == "Success"

    wait_until("a message for the bridge", lambda: bridge.received, WAIT_S)
    # The bridge got the device's own reading and none of the forged ones.
    assert bridge.received == [(topics.readings(a), b"own")]


def test_commands_only_from_the_api_and_only_to_their_device(
    services: Services, clients: list[Client], devices: tuple[str, str], namespace: str
) -> None:
    a, b = devices
    topics = MqttTopics(namespace)
    device_a = connect(clients, services, a)
    device_b = connect(clients, services, b)
    device_a.subscribe(topics.commands(b))  # granted by Mosquitto 2.0, but delivers nothing
    device_a.subscribe(topics.commands(a))
    device_b.subscribe(topics.commands(b))
    bridge = connect(clients, services, "bridge")
    api = connect(clients, services, "api")

    assert bridge.publish(topics.commands(b), b"from-bridge") == "Not authorized"
    assert device_b.publish(topics.commands(b), b"from-itself") == "Not authorized"
    assert api.publish(topics.commands(b), b"from-api") == "Success"
    assert api.publish(topics.readings(b), b"api-forged") == "Not authorized"

    wait_until("a command for device B", lambda: device_b.received, WAIT_S)
    assert device_b.received == [(topics.commands(b), b"from-api")]
    # The API's command went out after A subscribed to B's commands: A never got it.
    assert device_a.received == []


def test_a_gateway_publishes_for_its_devices_only(
    services: Services, clients: list[Client], namespace: str
) -> None:
    gateway = f"sec-gw-{namespace}"
    mine, other = f"sec-m-{namespace}", f"sec-o-{namespace}"
    provision(services, DeviceIdentities(gateways={gateway: (mine,)}))
    topics = MqttTopics(namespace)
    client = connect(clients, services, gateway)
    assert client.publish(topics.readings(mine)) in {"Success", "No matching subscribers"}
    assert client.publish(topics.gateway_status(gateway)) in {"Success", "No matching subscribers"}
    assert client.publish(topics.readings(other)) == "Not authorized"
    assert client.publish(topics.gateway_status("another-gateway")) == "Not authorized"


def test_mqtt_over_tls_with_the_generated_ca(
    services: Services, clients: list[Client], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A separate broker of the local cluster with ``mqtt_tls``: the bridge user over TLS."""
    from wattstream.localcluster import mosquitto  # noqa: PLC0415

    from ..conftest import free_port  # noqa: PLC0415

    session = ClusterSettings()
    settings = ClusterSettings(
        home=tmp_path_factory.mktemp("tls") / "home",
        mqtt_port=free_port(),
        mqtt_tls=True,
        mqtt_tls_port=free_port(),
        secrets_dir=session.secrets_path,  # the session's credentials
    )
    mosquitto.start(settings)
    try:
        mosquitto.wait_ready(settings)
        ca_file = settings.home / "mosquitto" / "tls" / "ca.crt"
        secure = connect(clients, services, "bridge", ca_file=ca_file, port=settings.tls_port)
        assert secure.accepted
        assert secure.client.socket() is not None
        assert isinstance(secure.client.socket(), ssl.SSLSocket)
    finally:
        mosquitto.stop(settings)


async def test_the_bridge_source_over_tls_receives_in_order_and_is_refused_a_wrong_password(
    services: Services, clients: list[Client], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The bridge's MQTT source (paho driven by the event loop) against the TLS listener with
    the generated CA: the handshake, CONNACK and SUBACK go through; messages arrive in order
    through TLS records holding several packets and are acknowledged; a wrong password is
    refused, by name."""
    from stream.bridge.errors import MqttUnavailable  # noqa: PLC0415
    from stream.bridge.mqtt_source import MqttSource  # noqa: PLC0415
    from wattstream.localcluster import mosquitto  # noqa: PLC0415

    from ..conftest import free_port  # noqa: PLC0415

    settings = ClusterSettings(
        home=tmp_path_factory.mktemp("bridge-tls") / "home",
        mqtt_port=free_port(),
        mqtt_tls=True,
        mqtt_tls_port=free_port(),
        secrets_dir=ClusterSettings().secrets_path,  # the session's credentials
    )
    await asyncio.to_thread(mosquitto.start, settings)
    try:
        await asyncio.to_thread(mosquitto.wait_ready, settings)
        assert settings.tls_port is not None
        ca_file = settings.home / "mosquitto" / "tls" / "ca.crt"
        bridge = services.mqtt_auth("bridge")
        labels = MqttTopics(f"tls{uuid.uuid4().hex[:8]}").labels

        def source(password: str) -> MqttSource:
            auth = BrokerAuth(
                username=bridge["username"], password=password, tls=True, ca_file=ca_file
            )
            return MqttSource(
                services.mqtt_host,
                settings.tls_port or 0,
                f"sec-{uuid.uuid4().hex[:8]}",
                [labels],
                receive_maximum=50,
                session_expiry_s=0,
                auth=auth,
            )

        sent = [f"label-{n:04d}".encode() for n in range(500)]
        async with source(bridge["password"]) as subscribed:
            assert subscribed.subscribed
            assert subscribed.session_present is False
            operator = await asyncio.to_thread(
                Client, services, services.mqtt_auth("operator"), port=settings.mqtt_port
            )
            clients.append(operator)
            for payload in sent:
                operator.client.publish(labels, payload, qos=1)
            received: list[bytes] = []
            async with asyncio.timeout(WAIT_S * 3):
                async for message in subscribed.messages():
                    received.append(message.payload)
                    subscribed.ack(message)  # the next ones come only once these are acked
                    if len(received) == len(sent):
                        break
            assert received == sent
        with pytest.raises(MqttUnavailable, match="Not authorized"):
            async with source("wrong"):
                pass
    finally:
        await asyncio.to_thread(mosquitto.stop, settings)


def test_only_the_operator_publishes_labels(
    services: Services, clients: list[Client], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A broker of its own (its own secrets and ACL, so no other session's provisioning can
    change the rules under the test): a device's credential cannot publish ground-truth labels,
    on the plain root or under a namespace; the operator can, and the bridge reads them."""
    from wattstream.localcluster import mosquitto  # noqa: PLC0415

    from ..conftest import free_port, private_mqtt_auth  # noqa: PLC0415

    settings = ClusterSettings(
        home=tmp_path_factory.mktemp("labels") / "home", mqtt_port=free_port()
    )
    device = "sec-labels-device"
    mosquitto.start(settings)
    try:
        mosquitto.wait_ready(settings)
        mosquitto.provision(settings, DeviceIdentities(devices=(device,)))

        def login(user: str) -> Client:
            client = Client(services, private_mqtt_auth(settings, user), port=settings.mqtt_port)
            clients.append(client)
            assert client.accepted, user
            return client

        bridge = login("bridge")
        for topics in (MqttTopics(), MqttTopics("ns")):
            bridge.subscribe(topics.labels)
        forger, operator = login(device), login("operator")
        for topics in (MqttTopics(), MqttTopics("ns")):
            assert forger.publish(topics.labels, b"forged") == "Not authorized"
            assert operator.publish(topics.labels, b"truth") == "Success"
            # The operator publishes nothing but labels.
            assert operator.publish(topics.readings(device), b"x") == "Not authorized"
        wait_until("both labels at the bridge", lambda: len(bridge.received) == 2, WAIT_S)
        assert [payload for _topic, payload in bridge.received] == [b"truth", b"truth"]
    finally:
        mosquitto.stop(settings)
