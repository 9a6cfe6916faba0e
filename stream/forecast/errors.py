"""Errors of the forecaster.

Exceptions::

    Exception
     └── ForecastError
          ├── ForecasterLoadError     poison at start-up: the artifact is missing, corrupt or
          │    │                      cannot be rebuilt; refuse to serve rather than guess
          │    └── ChecksumMismatch   a file does not match the sha256 in its model card
          ├── HistoryError            the hourly history cannot train a model (bad line, too
          │                           short, the simulator export failed)
          └── UnsupportedInput        a forecast input the model cannot serve (unknown device
                                      kind, too little history, non-finite value, naive time);
                                      also a ValueError, raised before any model call

None of them is retriable: each one names something to fix.
"""

from __future__ import annotations


class ForecastError(Exception):
    """Base of the forecaster's errors."""


class ForecasterLoadError(ForecastError):
    """The artifact cannot be served."""


class ChecksumMismatch(ForecasterLoadError):
    """A file of the artifact is not the file its model card describes."""


class HistoryError(ForecastError):
    """The hourly history cannot be used for training or evaluation."""


class UnsupportedInput(ForecastError, ValueError):
    """A forecast input the model cannot serve."""
