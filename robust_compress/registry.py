"""One registry type for every extension point (in the style of timm).

Each extension point (attacks, importance criteria, prune methods, quantizer backends, stages,
datasets, models) has one :class:`Registry`. An :class:`Entry` holds everything about one item:
the object that builds or runs it, its config class (a pydantic model whose fields carry the
defaults), its description, and facts its extension point needs (``meta``). The recipe schema,
``robust-compress list``, ``robust-compress schema`` and docs/recipes.md read the registries.

A registry fills itself lazily: its built-in items are registered by the module named in
``builtins`` the first time it is asked, so registering stays cheap and free of import cycles.
A builder may be given as ``"package.module:attribute"``; :meth:`Entry.load` imports it only
when it is used, so heavy libraries stay out of ``import robust_compress``.

Third-party packages add their own items through the entry-point group
``robust_compress.plugins``: each entry names a module (imported; it registers its items with
the registries) or a callable (called once with no arguments). Plugins load the first time any
registry is asked for a name, so ``robust-compress validate`` and ``run`` accept their names like
built-in ones. In ``pyproject.toml``::

    [project.entry-points."robust_compress.plugins"]
    my_data = "my_package.robust_compress_plugin"
"""

from __future__ import annotations

import importlib
import inspect
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from robust_compress.errors import UserError, first_line, suggest

_LOADING = threading.RLock()  # re-entrant: a builtins module asks its own registry again

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


def import_target(target: str) -> Any:
    """Import ``"package.module:attribute"`` and return the attribute."""
    module, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module)
    for part in attribute.split(".") if attribute else []:
        value = getattr(value, part)
    return value


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered item.

    Attributes:
        name: The name recipes and the API use.
        item: What builds or runs the item, or ``"module:attribute"`` naming it.
        config: The pydantic config class of the item (its fields carry the defaults), or None.
        description: One line for ``robust-compress list`` and the docs.
        meta: Facts the extension point needs about the item (e.g. an attack's label).
    """

    name: str
    item: T | str
    config: type | None = None
    description: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> T:
        """The item itself (importing it when it was registered as ``"module:attribute"``)."""
        return import_target(self.item) if isinstance(self.item, str) else self.item

    def defaults(self) -> dict[str, Any]:
        """The config's default values (fields without a default are left out)."""
        if self.config is None:
            return {}
        fields = getattr(self.config, "model_fields", {})
        return {
            name: info.get_default(call_default_factory=True)
            for name, info in fields.items()
            if not info.is_required()
        }


def _describe(item: Any, config: type | None) -> str:
    for source in (item, config):
        doc = inspect.getdoc(source) if source is not None and not isinstance(source, str) else ""
        if doc:
            return doc.strip().splitlines()[0]
    return ""


class Registry(Generic[T]):
    """Maps names to :class:`Entry` objects; unknown names raise a :class:`UserError`.

    Args:
        kind: What the registry holds, used in messages ("model", "attack", ...).
        error: The :class:`UserError` subclass raised for unknown names.
        builtins: A module that registers the built-in items when imported (imported on
            first use), or None.
    """

    def __init__(self, kind: str, error: type[UserError] = UserError, builtins: str | None = None):
        self.kind = kind
        self.error = error
        self.builtins = builtins
        self._loaded = builtins is None
        self._entries: dict[str, Entry[T]] = {}

    def _ready(self) -> None:
        if not self._loaded:  # another thread may be importing the builtins: wait for it
            with _LOADING:
                if self.builtins is not None:
                    module, self.builtins = self.builtins, None
                    importlib.import_module(module)
                    self._loaded = True
        load_plugins()

    def add(
        self,
        name: str,
        item: T | str,
        *,
        config: type | None = None,
        description: str | None = None,
        **meta: Any,
    ) -> Entry[T]:
        """Register ``item`` as ``name``; return its entry.

        Raises:
            ValueError: ``name`` is registered already.
        """
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        text = description if description is not None else _describe(item, config)
        entry = Entry(name, item, config, text, dict(meta))
        self._entries[name] = entry
        return entry

    def register(
        self,
        name: str,
        *,
        config: type | None = None,
        description: str | None = None,
        **meta: Any,
    ) -> Callable[[T], T]:
        """Return a decorator that registers its argument under ``name`` (see :meth:`add`)."""

        def decorator(item: T) -> T:
            self.add(name, item, config=config, description=description, **meta)
            return item

        return decorator

    def remove(self, name: str) -> None:
        """Forget ``name`` (for tests and plugins that replace an item)."""
        self._entries.pop(name, None)

    def entry(self, name: str) -> Entry[T]:
        """Return the entry registered as ``name``.

        Raises:
            UserError: ``name`` is unknown; the message lists close matches.
        """
        self._ready()
        if name not in self._entries:
            raise self.error(f"unknown {self.kind} {name!r}." + suggest(name, self._entries))
        return self._entries[name]

    def get(self, name: str) -> T:
        """Return the item registered as ``name`` (imported if it was given as a string)."""
        return self.entry(name).load()

    def entries(self) -> list[Entry[T]]:
        """Every entry, in registration order."""
        self._ready()
        return list(self._entries.values())

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        self._ready()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._ready()
        return name in self._entries


# One registry per extension point. Each fills itself from its ``builtins`` module on first use,
# so defining them here imports nothing and every layer can reach them without import cycles.
# Datasets and models keep theirs beside their loaders (robust_compress.data, .models).
STAGES: Registry = Registry("stage kind", builtins="robust_compress.stages.builtin")
ATTACKS: Registry = Registry("attack", builtins="robust_compress.attacks.builtin")
PRUNE_METHODS: Registry = Registry("prune method", builtins="robust_compress.pruning.builtin")
IMPORTANCE: Registry = Registry("importance criterion", builtins="robust_compress.pruning.builtin")
QUANTIZERS: Registry = Registry(
    "quantizer backend", builtins="robust_compress.quantization.builtin"
)
TRACKERS: Registry = Registry("tracker", builtins="robust_compress.tracking.builtin")
