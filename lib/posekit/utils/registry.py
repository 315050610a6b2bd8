"""A name -> object table that families fill at import time (config families, model builders, tools)."""
from typing import Dict, Generic, Iterator, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects by unique name; ``get`` fails with one line naming the config key and the known names."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: Dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add ``item`` as ``name`` (a name may be registered once) and return it."""
        if name in self._items:
            raise ValueError(f"{self.what} '{name}' is registered twice")
        self._items[name] = item
        return item

    def get(self, name: str, key: str) -> T:
        """The item called ``name``; ``key`` is the config key that named it, for the error message."""
        if name not in self._items:
            raise ConfigError(f"{key}: unknown {self.what} '{name}'; known: {', '.join(sorted(self._items)) or 'none'}")
        return self._items[name]

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())
