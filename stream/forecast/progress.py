"""Progress of a training run as events, and ``--progress``: one JSON object per line on stdout.

What reads them (the API's training endpoint, a script) gets, in order::

    {"event": "started", "plan": {...}}
    {"event": "stage", "stage": "history" | "training" | "scoring" | "writing" | "registering", ...}
    {"event": "epoch", "epoch": 1, "epochs": 15, "loss": ..., "val_loss": ...,
     "validation_skill": ..., "validation_coverage": ...}           (once per epoch)
    {"event": "done", "model_id": ..., "registered": true, "active": false, "summary": {...}}
or  {"event": "failed", "error": "..."}                              (and a non-zero exit)

``validation_skill`` is the hourly trajectory's P50 against the better of seasonal-naive and
persistence on (a sample of) the validation windows, in scaled units; logging stays on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

Report = Callable[[dict[str, Any]], None]


def silent(event: dict[str, Any]) -> None:
    """No progress wanted."""
    del event


def json_lines(out: TextIO | None = None) -> Report:
    """Each event as one line of JSON on ``out`` (stdout), flushed at once."""

    def report(event: dict[str, Any]) -> None:
        stream = out or sys.stdout
        stream.write(json.dumps(event, default=str) + "\n")
        stream.flush()

    return report
