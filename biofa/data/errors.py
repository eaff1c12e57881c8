"""The data package's own error types (both are also ``ValueError``s, so the CLI prints them on
one line)."""

from __future__ import annotations

__all__ = ["DataNotFoundError", "MissingExtraError"]


class DataNotFoundError(FileNotFoundError, ValueError):
    """A named data set is neither on disk nor downloadable; the message says where to put it."""


class MissingExtraError(ImportError, ValueError):
    """A data set needs an optional dependency; the message names the extra to install."""
