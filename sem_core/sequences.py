"""A read-only sequence whose items are made when they are read (no I/O, no Hydra).

A sweep hands Hydra and its launchers sequences with an item per row (each job's overrides,
each job's return); made when read, a 10,000-row sweep does not hold 10,000 of them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar, overload

T = TypeVar("T")


class MadeWhenRead(Sequence[T]):
    """A subclass gives ``__len__`` and ``_item(i)`` for ``0 <= i < len(self)``; reading by a
    negative index or a slice works as on a list (a slice is a list of the items)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def _item(self, i: int) -> T:
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> T: ...

    @overload
    def __getitem__(self, i: slice) -> list[T]: ...

    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self._item(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(i)
        return self._item(i)
