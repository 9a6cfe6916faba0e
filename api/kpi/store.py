"""The tariff book in force: read from a file at start-up, replaced by the admin endpoint.

The file is TOML or JSON (:func:`api.kpi.tariffs.load_book`); without one, the reference book
(the issue's two-rate tariff and 0.45 kg CO2e/kWh). A replacement is validated before it is
used, then written back when the file is JSON (atomically: a temporary file renamed over it); a
TOML file, which people edit by hand with comments, is left alone and the new book lasts until
the next restart (the answer says where, if anywhere, it was saved).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path

from api.kpi.tariffs import TariffBook, load_book


class TariffStore:
    def __init__(self, book: TariffBook, path: Path | None = None) -> None:
        self._book = book
        self._path = path
        self._lock = asyncio.Lock()

    @classmethod
    def open(cls, path: Path | None) -> TariffStore:
        """The book in ``path`` (``BookError`` if it is missing or invalid), else the reference."""
        return cls(load_book(path) if path is not None else TariffBook(), path)

    @property
    def book(self) -> TariffBook:
        return self._book

    @property
    def writes_back(self) -> bool:
        return self._path is not None and self._path.suffix == ".json"

    async def replace(self, book: TariffBook) -> Path | None:
        """Use ``book`` from now on; the file it was saved to, if any."""
        async with self._lock:
            saved = None
            if self.writes_back:
                assert self._path is not None
                await asyncio.to_thread(_write_atomically, self._path, book)
                saved = self._path
            self._book = book
            return saved


def _write_atomically(path: Path, book: TariffBook) -> None:
    text = json.dumps(book.model_dump(mode="json", exclude_defaults=False), indent=2)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text + "\n")
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
