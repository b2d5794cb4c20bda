"""A tiny name -> constructor registry, one per concept (datasets, models, attacks, methods)."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import CleadError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; unknown names raise a `CleadError` that lists the valid ones."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise CleadError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
