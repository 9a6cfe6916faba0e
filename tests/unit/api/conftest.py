"""Every API unit test sees only the settings' defaults and what it sets itself."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _no_api_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test session may have exported the local cluster's keys (WATTSTREAM_API_*)."""
    for name in list(os.environ):
        if name.startswith("WATTSTREAM_API_"):
            monkeypatch.delenv(name)
