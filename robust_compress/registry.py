"""A small name -> factory registry filled by a decorator (in the style of timm)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from robust_compress.errors import UserError, suggest

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories; unknown names raise a :class:`UserError` with close matches.

    Args:
        kind: What the registry holds, used in error messages ("model", "attack", ...).
        error: The :class:`UserError` subclass raised for unknown names.
    """

    def __init__(self, kind: str, error: type[UserError] = UserError):
        self.kind = kind
        self.error = error
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Return a decorator that registers its argument under ``name``."""

        def decorator(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return decorator

    def get(self, name: str) -> T:
        """Return the item registered as ``name``.

        Raises:
            UserError: ``name`` is unknown; the message lists close matches.
        """
        if name not in self._items:
            raise self.error(f"unknown {self.kind} {name!r}." + suggest(name, self._items))
        return self._items[name]

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
