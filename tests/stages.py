"""Small stage functions the tests build pipelines from."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

X = TypeVar("X")


class Boom(Exception):
    """The exception test stages raise."""


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def endless() -> Iterator[int]:
    n = 0
    while True:
        yield n
        n += 1


def add_one(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield x + 1


def double(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield x * 2


def batch(xs: Iterable[X], size: int) -> Iterator[list[X]]:
    """Lists of `size` items (the last may be shorter)."""
    chunk: list[X] = []
    for x in xs:
        chunk.append(x)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def collect(xs: Iterable[int]) -> list[int]:
    return list(xs)


def total(xs: Iterable[int]) -> int:
    return sum(xs)


def take(xs: Iterable[int], n: int) -> Iterator[int]:
    """Stops after n items, before its input is exhausted."""
    for i, x in enumerate(xs):
        if i == n:
            return
        yield x


class Recorder:
    """Records, thread-safely, which stages started and whose ``finally`` ran."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started: list[str] = []
        self.finalized: list[str] = []

    def start(self, name: str) -> None:
        with self._lock:
            self.started.append(name)

    def finish(self, name: str) -> None:
        with self._lock:
            self.finalized.append(name)
