"""Device states as a hot entry every batch and a cold entry when it changed: the cold part is
written before the hot entry that names it, to the slot the current hot entry does not name, so
a crash between the two leaves a whole, older state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka.partitioner import DefaultPartitioner

from stream.core.hourclose import DeviceState
from stream.core.windowing import DeviceWindows
from stream.worker.statestore import (
    StateCache,
    cold_key,
    device_of,
    entry_partition,
    is_cold_key,
)

pytestmark = pytest.mark.unit


class WriteLog(dict[str, bytes]):
    """A dict that records the keys written, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []

    def __setitem__(self, key: str, value: bytes) -> None:
        self.written.append(key)
        super().__setitem__(key, value)


def state(kind: str | None = None, offset: int = -1) -> DeviceState:
    windows = DeviceWindows(device_id="m-1", tz="Asia/Kathmandu", partition=4)
    windows.applied_offset = offset
    return DeviceState(windows=windows, kind=kind, last_arrival=datetime(2026, 6, 1, tzinfo=UTC))


def test_keys() -> None:
    assert cold_key("m-1", "a") == "m-1#a"
    assert is_cold_key("m-1#b") and not is_cold_key("m-1") and not is_cold_key("#next-offset:3")
    assert device_of("m-1#a") == "m-1" and device_of("m-1") == "m-1"


def test_a_devices_entries_share_the_partition_of_its_events() -> None:
    """The producer partitions the readings by device id (the Kafka default partitioner): the
    hot and both cold entries must land in that partition's changelog, or a worker restoring
    the partition gets a hot entry without its cold part."""
    partitions = list(range(6))
    for n in range(200):
        device = f"dev-{n:05d}".encode()
        events = DefaultPartitioner()(device, partitions, partitions)
        for key in (device, device + b"#a", device + b"#b"):
            assert entry_partition(key, 6) == events


def test_the_cold_part_is_written_only_when_it_changed_and_before_the_hot_entry() -> None:
    states = WriteLog()
    cache = StateCache(states)
    cache.put("m-1", state(), cold_changed=False)  # new: its cold part is written anyway
    assert states.written == ["m-1#a", "m-1"]
    cache.put("m-1", state(offset=7), cold_changed=False)
    assert states.written[2:] == ["m-1"]
    cache.put("m-1", state("fridge", offset=8), cold_changed=True)
    assert states.written[3:] == ["m-1#b", "m-1"]  # the other slot, then the entry naming it
    assert StateCache(dict(states)).get("m-1") == state("fridge", offset=8)


def test_a_crash_between_the_cold_and_the_hot_write_restores_the_older_whole_state() -> None:
    states = WriteLog()
    cache = StateCache(states)
    cache.put("m-1", state("fridge", offset=5))
    before = dict(states)
    cache.put("m-1", state("heat_pump", offset=9))
    torn = {**before, "m-1#b": states["m-1#b"]}  # the cold write made it, the hot one did not
    assert StateCache(torn).get("m-1") == state("fridge", offset=5)


def test_an_entry_written_whole_by_an_older_worker_still_reads() -> None:
    old = state("ev_charger", offset=3)
    states = {"m-1": old.model_dump_json().encode()}
    cache = StateCache(states)
    assert cache.get("m-1") == old
    cache.put("m-1", old, cold_changed=False)  # its first split write carries the cold part
    assert StateCache(dict(states)).get("m-1") == old
