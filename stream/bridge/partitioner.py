"""The bridge producer's ``partitioner``: Kafka's default partitions (:mod:`stream.partitioning`),
so a device's records stay where they always went, each key hashed once."""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.partitioner import DefaultPartitioner

from stream.partitioning import key_hash


class CachedPartitioner:
    """A drop-in ``partitioner`` for :class:`aiokafka.AIOKafkaProducer`."""

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:  # no key: a random partition, as by default
            return int(DefaultPartitioner()(key, list(all_partitions), list(available)))
        return all_partitions[key_hash(key) % len(all_partitions)]
