"""One exception family, so the CLI can turn any expected failure into one line and a non-zero exit."""
from __future__ import annotations


class EmbedkitError(Exception):
    """Base of every error embedkit raises on purpose (bad input, missing files, offline hub ids)."""


class DataError(EmbedkitError):
    """Bad data: names the file and, where known, the line and the field."""

    def __init__(self, message: str, path: object = None, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = path, line, field
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f", line {line}"
            if field is not None:
                where += f", field {field!r}"
            where += ": "
        elif field is not None:
            where = f"field {field!r}: "
        super().__init__(where + message)


class ModelError(EmbedkitError):
    """A model that cannot be loaded (not a model folder, unknown hub id while offline, ...)."""


class ConfigError(EmbedkitError):
    """A recipe, suite or option with an unknown key or a bad value."""


class IndexError_(EmbedkitError):  # trailing underscore: do not shadow the builtin IndexError
    """A corrupt, truncated or mismatched index folder, or a bad index operation."""
