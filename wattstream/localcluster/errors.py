"""Errors of the local cluster.

::

    LocalClusterError            anything the local cluster could not do
    ├── InstallError             a Debian package or the Kafka jars could not be installed
    └── ServiceError             a service could not be started, reached or stopped
        └── ServiceStartError    it exited or stayed unhealthy; carries the tail of its logs

None of them is retriable by calling again at once: each message says what to fix first.
"""

from __future__ import annotations


class LocalClusterError(Exception):
    """Base of the local cluster's errors."""


class InstallError(LocalClusterError):
    """A package or the Kafka jars could not be installed."""


class ServiceError(LocalClusterError):
    """A service could not be started, reached or stopped."""


class ServiceStartError(ServiceError):
    """A service exited during start-up or did not become healthy in time."""

    def __init__(self, service: str, reason: str, log_tail: str) -> None:
        super().__init__(f"{service}: {reason}\n--- last lines of its logs ---\n{log_tail}")
        self.service = service
        self.reason = reason
        self.log_tail = log_tail
