"""Which Kafka partition a key's records go to: the default partitioner of the Java client and
aiokafka (``murmur2(key) & 0x7fffffff`` modulo the partition count), each key hashed once.

One place for everything that must agree on a device's partition: the bridge producing the
device topics (:mod:`stream.bridge.partitioner`), the worker writing a device's table entries
beside its events (:func:`stream.worker.statestore.entry_partition`) and the delivery audit
(:func:`stream.audit.hours.partition_of`). aiokafka hashes in pure Python on every call; a
fleet sends the same few thousand device ids over and over, so the hash is remembered.
"""

from __future__ import annotations

from functools import lru_cache

from aiokafka.partitioner import murmur2

REMEMBERED_KEYS = 200_000
"""Hashes kept at most (least recently used go first)."""


@lru_cache(maxsize=REMEMBERED_KEYS)
def key_hash(key: bytes) -> int:
    """The default partitioner's non-negative hash of ``key``."""
    return int(murmur2(key)) & 0x7FFFFFFF


def key_partition(key: bytes, partitions: int) -> int:
    """The partition of ``key`` among ``partitions`` (numbered from 0)."""
    return key_hash(key) % partitions
