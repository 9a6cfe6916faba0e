"""The delivery journal writer: every reading the broker acknowledged, as compact seq ranges.

The transport reports each reading's PUBACK (:meth:`JournalWriter.acked`); every
``flush_every_s`` (and at the end) the readings acknowledged since the last flush are appended
as :class:`schema.journal.JournalRange` lines and the file is flushed, so a killed simulator
loses at most the last interval's records (reported by the audit as extra readings, never as
missing ones). The format is :mod:`schema.journal`'s contract.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

from schema.journal import compact
from schema.wire import Reading


class JournalWriter:
    def __init__(self, sink: IO[str]) -> None:
        self._sink = sink
        self._pending: defaultdict[tuple[str, str, int], list[tuple[int, datetime]]] = defaultdict(
            list
        )
        self.ranges_written = 0
        self.readings_written = 0

    @classmethod
    @contextlib.contextmanager
    def open(cls, path: Path | None) -> Iterator[JournalWriter | None]:
        """Append to ``path`` (None: no journal); whatever is pending is written at exit."""
        if path is None:
            yield None
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as sink:
            writer = cls(sink)
            try:
                yield writer
            finally:
                writer.flush()

    def acked(self, reading: Reading) -> None:
        key = (reading.device_id, reading.tz, reading.interval_s)
        self._pending[key].append((reading.seq, reading.ts_utc))

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, defaultdict(list)
        lines = []
        for (device_id, tz, interval_s), acked in pending.items():
            for journal_range in compact(device_id, tz, interval_s, acked):
                lines.append(journal_range.model_dump_json())
                self.readings_written += journal_range.count
        self._sink.write("".join(line + "\n" for line in lines))
        self._sink.flush()
        self.ranges_written += len(lines)

    async def flush_loop(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            self.flush()
