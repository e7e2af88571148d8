"""Errors of object storage and data preparation, each a reason a user can act on."""

from __future__ import annotations

from app.errors import TraindeckError


class StorageError(TraindeckError):
    """An object-storage operation failed: missing bucket or key, access denied,
    endpoint unreachable, disk full. The message names the location at fault."""


class DataError(TraindeckError):
    """A version's data cannot be prepared; the message is the version's failure reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransferCancelled(TraindeckError):
    """A transfer was abandoned because the version was asked to stop."""
