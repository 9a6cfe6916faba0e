"""Creates the pipeline's Kafka topics (``schema.topics``) that do not exist yet.

Every service that reads or writes Kafka calls :func:`ensure_topics` at start, before it
consumes or produces, so that no start order leaves a consumer without its topics or a producer
sending to a topic that does not exist; the broker's auto-creation is never relied on
(compose and the local cluster turn it off). Idempotent: an existing topic is left as it is
(a partition count different from its spec is logged), and a topic another service created in
the meantime counts as created. Returns once every created partition has a leader.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from schema.topics import KafkaTopicSpec

log = logging.getLogger(__name__)

_ADMIN_TIMEOUT_MS = 5000
_TOPIC_ALREADY_EXISTS = 36
_LEADER_WAIT_S = 30.0


class TopicProvisionError(RuntimeError):
    """Kafka refused to create a topic, or gave it no leader in time (not retriable here)."""


async def ensure_topics(
    bootstrap: str, specs: Sequence[KafkaTopicSpec], *, client_id: str = "wattstream-topics"
) -> list[str]:
    """Create the topics of ``specs`` that do not exist yet; return the names created."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id=client_id, request_timeout_ms=_ADMIN_TIMEOUT_MS
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in existing]
        _warn_partition_mismatch(
            specs, await admin.describe_topics([s.name for s in specs if s.name in existing])
        )
        if not missing:
            return []
        response = await admin.create_topics(
            [
                NewTopic(spec.name, spec.partitions, spec.replication, topic_configs=spec.configs())
                for spec in missing
            ],
            timeout_ms=_ADMIN_TIMEOUT_MS * 2,
        )
        for topic, code, message, *_ in response.topic_errors:
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise TopicProvisionError(f"kafka: creating topic {topic} failed: {code} {message}")
        names = [spec.name for spec in missing]
        log.info("kafka: created topics %s", ", ".join(names))
        await _wait_for_leaders(admin, names)
        return names
    finally:
        await admin.close()


def _warn_partition_mismatch(
    specs: Sequence[KafkaTopicSpec], described: Sequence[dict[str, object]]
) -> None:
    wanted = {spec.name: spec.partitions for spec in specs}
    for topic in described:
        partitions = topic.get("partitions") or []
        assert isinstance(partitions, list)
        name = str(topic["topic"])
        if name in wanted and len(partitions) != wanted[name]:
            log.warning(
                "kafka: topic %s has %d partitions, its spec says %d",
                name,
                len(partitions),
                wanted[name],
            )


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str]) -> None:
    """Return once every partition of ``topics`` has a leader: clients that start right after
    creation then find their partitions instead of NotLeaderForPartition errors and resets."""
    deadline = asyncio.get_running_loop().time() + _LEADER_WAIT_S
    while True:
        described = await admin.describe_topics(topics)
        if all(
            t.get("error_code", 0) == 0
            and t["partitions"]
            and all(
                p.get("leader", -1) >= 0 and p.get("error_code", 0) == 0 for p in t["partitions"]
            )
            for t in described
        ):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TopicProvisionError(
                f"kafka: no leaders for {topics} after {_LEADER_WAIT_S:.0f} s"
            )
        await asyncio.sleep(0.2)


async def ensure_topics_retrying(
    bootstrap: str,
    specs: Sequence[KafkaTopicSpec],
    *,
    client_id: str = "wattstream-topics",
    within_s: float = 120.0,
) -> list[str]:
    """:func:`ensure_topics`, retried while Kafka is unreachable (a service starting beside
    its broker), for at most ``within_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    wait = 0.5
    while True:
        try:
            return await ensure_topics(bootstrap, specs, client_id=client_id)
        except (KafkaError, OSError) as exc:
            if loop.time() + wait > deadline:
                raise
            log.warning("kafka: cannot create topics yet (%r); retrying in %.1f s", exc, wait)
            await asyncio.sleep(wait)
            wait = min(wait * 2, 5.0)
