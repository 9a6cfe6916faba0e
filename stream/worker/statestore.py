"""Device states in the worker's table: a small entry written every batch, the history only
when it changes.

A device's state is mostly history: the 48 closed hours restatements and forecasts need, the
scored hours health is computed over, its open alerts. Written whole on every batch that
touched the device, it was ~21 KB of JSON per device per batch on the table's changelog (at
five readings per device per batch, 4 KB per reading) and the worker's largest cost. So each
state is stored as two entries of the same table partition:

* **hot** under the device id: what every reading changes (the open hours, the last applied
  offset and event time, the last arrival) and the generation of the cold part that goes
  with it (its slot is the generation's parity);
* **cold** under ``{device_id}#a`` or ``{device_id}#b``: everything else, written only by a
  batch that changed it (an hour closed or restated, a forecast recorded, a birth or status).

A changed cold part goes to the slot the hot entry does *not* name, and the hot entry naming its
generation follows it on the same ordered changelog partition. A crash between the two leaves
the old hot entry naming the old, intact slot: the restored state is always one a batch left,
never a mix (shadow paging). An entry written whole by an older worker (no generation) still
reads as before.

:class:`StateCache` keeps the parsed state next to the hot bytes it was parsed from (or written
as) and reuses it only while the table still holds those very bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, MutableMapping
from typing import Any

from stream.core.hourclose import DeviceState
from stream.partitioning import key_partition

COLD_SEPARATOR = "#"
"""Between a device id and its cold slot (a device id never holds one; position keys start
with it)."""
SLOTS = ("a", "b")
_GENERATION_FIELD = "cold_generation"

_HOT_WINDOW_FIELDS = {"device_id", "tz", "partition", "applied_offset", "last_event_ts", "open"}
_HOT: Any = {"windows": _HOT_WINDOW_FIELDS, "last_arrival": True}
"""The hot part's fields: included in the hot entry, excluded from the cold one."""


def cold_key(device_id: str, slot: str) -> str:
    return f"{device_id}{COLD_SEPARATOR}{slot}"


def device_of(key: str) -> str:
    """The device a table key belongs to (its own id for a hot key)."""
    return key.split(COLD_SEPARATOR, 1)[0]


def is_cold_key(key: str) -> bool:
    return COLD_SEPARATOR in key[1:]


def entry_partition(key: bytes, partitions: int) -> int:
    """The changelog partition of a device's table entry, hot or cold: its events' partition
    (the Kafka default partitioner, murmur2, on the device id alone)."""
    return key_partition(key.split(COLD_SEPARATOR.encode(), 1)[0], partitions)


def slot_of(generation: int) -> str:
    return SLOTS[generation % 2]


def dump_hot(state: DeviceState, generation: int) -> bytes:
    body = state.model_dump_json(include=_HOT)
    return f'{{"{_GENERATION_FIELD}":{generation},{body[1:]}'.encode()


def dump_cold(state: DeviceState) -> bytes:
    return state.model_dump_json(exclude=_HOT).encode()


def parse(
    states: MutableMapping[str, bytes], device_id: str, hot: bytes
) -> tuple[DeviceState, int | None]:
    """The state ``hot`` stands for, with its cold part from ``states``, and its generation."""
    document = json.loads(hot)
    generation = document.pop(_GENERATION_FIELD, None)
    if generation is None:  # written whole
        return DeviceState.model_validate(document), None
    cold = json.loads(states[cold_key(device_id, slot_of(generation))])
    document["windows"] |= cold.pop("windows", {})
    return DeviceState.model_validate({**cold, **document}), generation


class StateCache:
    """Parsed device states, each with the hot table bytes it stands for and the generation of
    its cold part (a hot entry changes whenever its cold part does)."""

    def __init__(self, states: MutableMapping[str, bytes]) -> None:
        self._states = states
        self._parsed: dict[str, tuple[bytes, DeviceState, int | None]] = {}

    def __len__(self) -> int:
        return len(self._parsed)

    def get(self, device_id: str) -> DeviceState | None:
        raw = self._states.get(device_id)
        if raw is None:
            self._parsed.pop(device_id, None)
            return None
        cached = self._parsed.get(device_id)
        if cached is not None and (cached[0] is raw or cached[0] == raw):
            return cached[1]
        state, generation = parse(self._states, device_id, raw)
        self._parsed[device_id] = (raw, state, generation)
        return state

    def holds(self, device_id: str) -> bool:
        """Whether ``device_id``'s state was written to the table or read from it."""
        return device_id in self._parsed

    def put(self, device_id: str, state: DeviceState, *, cold_changed: bool = True) -> None:
        """Write ``state`` to the table (its changelog) and keep it parsed. Its cold part is
        written only if ``cold_changed`` (or never was): a batch that left it alone says so."""
        cached = self._parsed.get(device_id)
        generation = None if cached is None else cached[2]
        if cold_changed or generation is None:
            generation = 0 if generation is None else generation + 1
            self._states[cold_key(device_id, slot_of(generation))] = dump_cold(state)
        raw = dump_hot(state, generation)
        self._states[device_id] = raw
        self._parsed[device_id] = (raw, state, generation)

    def discard(self, device_ids: Iterable[str]) -> None:
        for device_id in device_ids:
            self._parsed.pop(device_id, None)

    def forget_partitions(self, partitions: Iterable[int]) -> None:
        """Drop the states of these partitions (revoked: another worker owns them now)."""
        gone = set(partitions)
        self.discard([d for d, (_, s, _) in self._parsed.items() if s.windows.partition in gone])
