"""Help-desk adapters and their registry.

:data:`ADAPTERS` lists the adapters shipped with the connector, in one place. Outside packages
add help desks through the entry-point group ``care_connector.adapters`` (the entry point's
name is the adapter key, its value the adapter class); :func:`load_adapters` merges them in
and refuses a key that is already taken.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata
from typing import Any, Protocol

from adapters.base import HelpdeskAdapter
from adapters.errors import AdapterRegistryError
from adapters.freshdesk import FreshdeskAdapter
from adapters.helpscout import HelpScoutAdapter
from adapters.rt import RTAdapter
from adapters.zammad import ZammadAdapter
from adapters.zendesk import ZendeskAdapter

__all__ = ["ADAPTERS", "ENTRY_POINT_GROUP", "AdapterRegistryError", "load_adapters"]

#: Entry-point group where plugin adapters register.
ENTRY_POINT_GROUP = "care_connector.adapters"

#: The built-in adapters, by key.
ADAPTERS: dict[str, type[HelpdeskAdapter]] = {
    adapter.key: adapter
    for adapter in (ZendeskAdapter, HelpScoutAdapter, FreshdeskAdapter, ZammadAdapter, RTAdapter)
}


class EntryPointLike(Protocol):
    """What :func:`load_adapters` reads of an entry point."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    def load(self) -> Any: ...


def load_adapters(
    entry_points: Iterable[EntryPointLike] | None = None,
) -> dict[str, type[HelpdeskAdapter]]:
    """The built-in adapters plus those registered under :data:`ENTRY_POINT_GROUP`.

    :param entry_points: the entry points to read (default: the installed ones).
    :raises AdapterRegistryError: a key already taken (by a built-in adapter or another
        plugin), a plugin that does not import, or one that is not a
        :class:`~adapters.base.HelpdeskAdapter` whose ``key`` is the entry point's name.
    """
    found = metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
    registry: dict[str, type[HelpdeskAdapter]] = dict(ADAPTERS)
    origin = {key: f"{cls.__module__}.{cls.__qualname__}" for key, cls in registry.items()}
    for entry in found:
        if entry.name in registry:
            raise AdapterRegistryError(
                f"adapter key {entry.name!r} from entry point {entry.value!r} is already "
                f"registered by {origin[entry.name]}; rename one of them"
            )
        try:
            loaded = entry.load()
        except Exception as err:  # a plugin's import error must name the plugin
            raise AdapterRegistryError(
                f"adapter {entry.name!r} ({entry.value}) failed to load: {err}"
            ) from err
        if not (isinstance(loaded, type) and issubclass(loaded, HelpdeskAdapter)):
            raise AdapterRegistryError(
                f"adapter {entry.name!r} ({entry.value}) is not a HelpdeskAdapter subclass"
            )
        if getattr(loaded, "key", None) != entry.name:
            raise AdapterRegistryError(
                f"adapter {entry.name!r} ({entry.value}) has key "
                f"{getattr(loaded, 'key', None)!r}; the entry point name must be its key"
            )
        registry[entry.name] = loaded
        origin[entry.name] = entry.value
    return registry
