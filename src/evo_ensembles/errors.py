"""Errors a user can cause. The CLI turns them into one clear line and exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input (flags, files, data); never a bug in the library."""


class DataNotFoundError(UserError):
    """A data set's files are missing; the message says where to put them."""


class UnknownNameError(UserError):
    """An unknown model, data set or other registry name."""


class CheckpointError(UserError):
    """A checkpoint is missing, unreadable, or does not fit the model."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none), for the
    one-line errors a library's multi-line messages are turned into."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
