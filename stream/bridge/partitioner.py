"""Which partition a record's key goes to: Kafka's default (murmur2), each key hashed once.

aiokafka's ``DefaultPartitioner`` hashes the key in pure Python on every send; the bridge sends
the same few thousand device ids over and over, so the hash is remembered per key. The
partition is the one the Java client and aiokafka choose (``murmur2(key) & 0x7fffffff`` modulo
the partition count), so a device's records stay where they always went.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.partitioner import DefaultPartitioner, murmur2

MAX_KEYS = 200_000
"""Remembered keys at most (dead letters are keyed by whatever topic they came on); past it the
memory starts over."""


class CachedPartitioner:
    """A drop-in ``partitioner`` for :class:`aiokafka.AIOKafkaProducer`."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._hashes: dict[bytes, int] = {}
        self._max_keys = max_keys

    def __call__(
        self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]
    ) -> int:
        if key is None:  # no key: a random partition, as by default
            return int(DefaultPartitioner()(key, list(all_partitions), list(available)))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._max_keys:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]
