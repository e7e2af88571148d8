"""Errors the core raises for the user to read.

Every error carries a one-line message that names the field, file or object at fault,
so the CLI and the TUI can show it as it is.
"""

from __future__ import annotations


class TraindeckError(Exception):
    """Base class of every error meant for the user."""


class NotFoundError(TraindeckError):
    """A job, version, dataset, template or other object does not exist."""


class ConflictError(TraindeckError):
    """The request contradicts the current state (a name taken, a status that forbids it)."""


class ConfigError(TraindeckError):
    """The configuration file or environment is invalid."""


class DatabaseError(TraindeckError):
    """The database cannot be opened, read or written."""


class FieldError(TraindeckError):
    """One invalid field of a job spec (or other input), with its dotted path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


class SpecError(TraindeckError):
    """A job spec broke one or more rules; `errors` lists each field at fault."""

    def __init__(self, errors: list[FieldError], source: str | None = None) -> None:
        self.errors = errors
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__(prefix + "; ".join(str(e) for e in errors))

    def lines(self) -> list[str]:
        """One line per invalid field, each naming the file (if any) and the field."""
        prefix = f"{self.source}: " if self.source else ""
        return [prefix + str(e) for e in self.errors]
