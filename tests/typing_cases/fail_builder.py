"""One misuse per line that the type checkers must reject (checked by tests/test_typing.py).

Each line carries the error code that mypy must report there; under warn_unused_ignores an
error that vanished fails the check. pyright reads the pyright comments the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pipeline_executor import Pipeline


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def upper(xs: Iterable[str]) -> Iterator[str]:
    for x in xs:
        yield x.upper()


def parse(xs: Iterable[int], encoding: str) -> Iterator[str]:
    for x in xs:
        yield str(x) + encoding


def not_iterable(xs: Iterable[int]) -> int:
    return sum(xs)


source = Pipeline.source(numbers, n=3)

source.then(upper)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
source.then(not_iterable)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
source.then(parse, encoding=1)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
source.then(parse)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
source.then(parse, encodng="utf-8")  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
source.then(parse, threads="2", encoding="utf-8")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
Pipeline.source(numbers, m=3)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
Pipeline.source(numbers, n="3")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
source.sink(upper)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
x: str = source.sink(not_iterable).run()  # type: ignore[assignment]  # pyright: ignore[reportAssignmentType]
Pipeline.from_iterable([1, 2], 4)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]


def shout(x: str) -> str:
    return x.upper()


def odd(x: int) -> str:
    return "yes" if x % 2 else ""


def expand(x: int) -> int:
    return x


def on_text_error(item: str, exc: Exception) -> None:
    pass


def scale(x: int, factor: int) -> int:
    return x * factor


source.map(shout)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
source.map(scale, factor="2")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
source.map(scale, fator=2)  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
source.map(expand, on_error=on_text_error)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
source.filter(odd)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
source.flat_map(expand)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
source.batch("3")  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
source.unbatch()  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
source.take(2.5)  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
