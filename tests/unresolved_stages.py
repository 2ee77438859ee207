"""Stages whose annotations name a type imported only for the type checkers.

mypy and pyright accept them; at run time ``Decimal`` is not defined in this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from decimal import Decimal


def to_decimal(xs: Iterable[int]) -> Iterator[Decimal]:
    import decimal

    for x in xs:
        yield decimal.Decimal(x)


def scale_by(xs: Iterable[int], factor: Decimal, offset: int = 0) -> Iterator[Decimal]:
    for x in xs:
        yield x * factor + offset
