"""A small name -> factory registry filled by a decorator (in the style of timm).

Third-party packages add their own items through the entry-point group
``robust_compress.plugins``: each entry names a module (imported; it registers its items with
the registries' decorators) or a callable (called once with no arguments). Plugins load the
first time any registry is asked for a name, so ``robust-compress validate`` and ``run`` accept
their names like built-in ones. In ``pyproject.toml``::

    [project.entry-points."robust_compress.plugins"]
    my_data = "my_package.robust_compress_plugin"
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Generic, TypeVar

from robust_compress.errors import UserError, first_line, suggest

T = TypeVar("T")
PLUGIN_GROUP = "robust_compress.plugins"
_plugins = {"loaded": False}


def load_plugins() -> None:
    """Load every plugin of the entry-point group :data:`PLUGIN_GROUP`, once per process.

    Raises:
        UserError: A plugin fails to import or to run; the message names it.
    """
    if _plugins["loaded"]:
        return
    _plugins["loaded"] = True
    from importlib.metadata import entry_points

    for entry in entry_points(group=PLUGIN_GROUP):
        try:
            loaded = entry.load()
            if callable(loaded) and not inspect.ismodule(loaded):
                loaded()
        except Exception as exc:  # noqa: BLE001 - a plugin may raise anything
            first = first_line(exc)
            raise UserError(
                f"plugin {entry.name!r} ({entry.value}) of {PLUGIN_GROUP} failed to load: {first}"
            ) from None


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
        load_plugins()
        if name not in self._items:
            raise self.error(f"unknown {self.kind} {name!r}." + suggest(name, self._items))
        return self._items[name]

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        load_plugins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._items
