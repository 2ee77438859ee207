"""Types the type-check tables are written in; shared by the runtime checks and mypy."""

from __future__ import annotations

from collections import Counter
from collections.abc import (
    Callable,
    Generator,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from collections.abc import Set as AbstractSet
from typing import (
    Annotated,
    Any,
    Generic,
    Literal,
    NamedTuple,
    NewType,
    Optional,
    Protocol,
    TypeVar,
    Union,
    runtime_checkable,
)

__all__ = [
    "AbstractSet",
    "Animal",
    "Annotated",
    "Any",
    "Box",
    "Callable",
    "Cell",
    "Closer",
    "Counter",
    "Dog",
    "Generator",
    "HasName",
    "IntList",
    "Iterable",
    "Iterator",
    "Literal",
    "Mapping",
    "Named",
    "Optional",
    "OrderId",
    "Point",
    "Sequence",
    "Sink",
    "SupportsClose",
    "Union",
    "UserId",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)

UserId = NewType("UserId", int)
OrderId = NewType("OrderId", int)


class Animal:
    """A base class."""


class Dog(Animal):
    """A subclass."""


class Box(Generic[T_co]):
    """A covariant user generic."""

    def get(self) -> T_co:
        raise NotImplementedError


class Cell(Generic[T]):
    """An invariant user generic."""

    def __init__(self, value: T) -> None:
        self.value = value


class Sink(Generic[T_contra]):
    """A contravariant user generic."""

    def put(self, value: T_contra) -> None:
        raise NotImplementedError


class IntList(list[int]):
    """A subclass of a parametrized builtin."""


class Point(NamedTuple):
    """A NamedTuple of two ints."""

    x: int
    y: int


@runtime_checkable
class SupportsClose(Protocol):
    """A runtime-checkable protocol."""

    def close(self) -> None: ...


class HasName(Protocol):
    """A plain protocol: not decidable at run time."""

    name: str


class Closer:
    """Satisfies SupportsClose."""

    def close(self) -> None:
        pass


class Named:
    """Satisfies HasName."""

    name: str = "n"
