"""The ``robust-compress audit`` command (filled in by the audit work)."""

from __future__ import annotations


def register(app) -> None:
    """Add the ``audit`` command to ``app``."""
