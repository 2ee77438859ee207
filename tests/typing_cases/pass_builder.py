"""What the type checkers must accept and infer (checked by tests/test_typing.py)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator
from typing import TypeVar

from typing_extensions import assert_type

from pipeline_executor import (
    Pipeline,
    PipelineIterator,
    PipelineTask,
    RunnablePipeline,
    execute,
)

X = TypeVar("X")


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def to_str(xs: Iterable[int], prefix: str = "") -> Iterator[str]:
    for x in xs:
        yield prefix + str(x)


def batch(xs: Iterable[X], size: int) -> Iterator[list[X]]:
    chunk: list[X] = []
    for x in xs:
        chunk.append(x)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def total(xs: Iterable[int]) -> int:
    return sum(xs)


def store(xs: Iterable[object]) -> None:
    for _ in xs:
        pass


def lengths(xs: Iterator[str]) -> list[int]:
    return [len(x) for x in xs]


source = Pipeline.source(numbers, n=10)
assert_type(source, Pipeline[int])
assert_type(source.then(to_str), Pipeline[str])
assert_type(source.then(to_str, threads=2, prefix="#"), Pipeline[str])
assert_type(source.then(batch, size=3), Pipeline[list[int]])
assert_type(source.then(to_str).then(batch, size=2), Pipeline[list[str]])
assert_type(source.sink(total), RunnablePipeline[int])
assert_type(source.sink(total).run(), int)
assert_type(source.then(to_str).sink(lengths).run(inactivity_timeout=5.0), list[int])
assert_type(source.sink(store, threads=4).run(), None)
assert_type(Pipeline.from_iterable(["a", "b"]), Pipeline[str])
assert_type(Pipeline.source(functools.partial(numbers, 3)), Pipeline[int])
assert_type(Pipeline.source(numbers, buffer=16, n=10), Pipeline[int])
assert_type(Pipeline.from_iterable([1, 2], buffer=4), Pipeline[int])

for item in source.then(to_str):
    assert_type(item, str)
for chunk in source.iter(inactivity_timeout=1.0):
    assert_type(chunk, int)

# iter() and iter(pipeline) give an iterator with close() that is also a context manager.
assert_type(source.iter(), PipelineIterator[int])
assert_type(iter(source), PipelineIterator[int])
assert_type(next(source.iter()), int)
source.iter().close()
with source.iter() as items:
    assert_type(items, PipelineIterator[int])
    for number in items:
        assert_type(number, int)
with contextlib.closing(source.then(to_str).iter()) as strings:
    assert_type(strings, PipelineIterator[str])
    for word in strings:
        assert_type(word, str)
iterator: Iterator[int] = source.iter()

execute([PipelineTask(numbers, constants={"n": 3}), PipelineTask(store, num_threads=2)])


# The per-item operators.
def scale(x: int, factor: int = 2) -> float:
    return x * factor


def is_even(x: int) -> bool:
    return x % 2 == 0


def digits(x: int) -> list[str]:
    return list(str(x))


def first(pair: tuple[X, str]) -> X:
    return pair[0]


def on_failure(item: int, exc: Exception) -> None:
    print(item, exc)


assert_type(source.map(str), Pipeline[str])
assert_type(source.map(scale, factor=3), Pipeline[float])
assert_type(source.map(scale, threads=4, ordered=False, on_error=on_failure), Pipeline[float])
assert_type(source.map(scale, timeout=1.5), Pipeline[float])
assert_type(Pipeline.from_iterable([(1, "a")]).map(first), Pipeline[int])
assert_type(source.filter(is_even, threads=2), Pipeline[int])
assert_type(source.flat_map(digits), Pipeline[str])
assert_type(source.batch(3), Pipeline[list[int]])
assert_type(source.batch(3, timeout=0.5).unbatch(), Pipeline[int])
assert_type(source.flat_map(digits).take(5), Pipeline[str])
assert_type(source.then(to_str, threads=2, ordered=True), Pipeline[str])
assert_type(Pipeline.from_iterable([["a"], ["b"]]).unbatch(), Pipeline[str])
