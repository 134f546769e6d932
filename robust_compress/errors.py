"""Exception types of robust-compress.

Every error a user can fix derives from :class:`UserError`; the CLI prints its
message on one line and exits with code 2, without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class RobustCompressError(Exception):
    """Base class of all errors raised by robust-compress."""


class UserError(RobustCompressError):
    """Bad input the user can fix: a spec, a file, a recipe, an option."""

    exit_code = 2


class DataNotFoundError(UserError):
    """A dataset's files could not be found."""


class ModelSpecError(UserError):
    """A model spec could not be resolved or its weights could not be loaded."""


class CheckpointError(UserError):
    """A checkpoint is missing, corrupt, unsafe or does not fit the model."""


class RecipeError(UserError):
    """A recipe failed validation; ``messages`` holds one line per problem."""

    def __init__(self, messages: list[str]):
        self.messages = list(messages)
        super().__init__("\n".join(self.messages))


class RunError(RobustCompressError):
    """A failure at run time (exit code 1), such as a NaN loss."""

    exit_code = 1


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return a ' Did you mean ...?' hint for an unknown name, or ''.

    Args:
        name: The name the user typed.
        choices: The names that exist.

    Returns:
        A sentence fragment naming close matches, or the full list if none is close.
    """
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if close:
        return " Did you mean: " + ", ".join(close) + "?"
    return " Known: " + ", ".join(choices) + "."


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when the message is empty).

    Foreign libraries raise multi-line messages; a :class:`UserError` quotes one line of them.
    """
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
