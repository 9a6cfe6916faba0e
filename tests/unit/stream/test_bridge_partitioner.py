"""The bridge's partitioner puts every key where Kafka's default partitioner does."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from stream.bridge.partitioner import CachedPartitioner

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("count", [1, 6, 7, 64])
def test_the_same_partition_as_the_default_every_time(count: int) -> None:
    partitions = list(range(count))
    cached, default = CachedPartitioner(), DefaultPartitioner()
    keys = [f"dev-{n:05d}".encode() for n in range(200)] + [b"", "é/ü".encode()]
    for _ in range(2):  # hashed, then remembered
        for key in keys:
            assert cached(key, partitions, partitions) == default(key, partitions, partitions)


def test_no_key_goes_to_an_available_partition() -> None:
    assert CachedPartitioner()(None, [0, 1, 2], [2]) == 2
