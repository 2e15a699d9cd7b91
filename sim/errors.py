"""Errors that tell the user which file / field / value is wrong and what was expected.

Every error raised for bad input is a :class:`DataError` (or subclass): the CLI prints its one-line message
and exits with status 2 instead of a traceback.
"""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """Bad or missing input data. ``str(err)`` is a single line naming the file and what was expected."""

    def __init__(self, path: str | Path | None, problem: str, expected: str | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        self.expected = expected
        where = f"{self.path}: " if self.path is not None else ""
        tail = f" (expected {expected})" if expected else ""
        super().__init__(f"{where}{problem}{tail}")


class SchemaError(DataError):
    """A file exists but lacks a table / layer / column, or a value has the wrong type."""


class NotFoundError(DataError):
    """A file, map location, map version or scenario token does not exist."""
