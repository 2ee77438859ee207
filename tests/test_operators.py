"""The per-item operators: what each yields, its error policy, its checks, its statistics."""

from __future__ import annotations

import pickle
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from pipeline_executor import (
    Monitor,
    Pipeline,
    PipelineDefinitionError,
    PipelineTypeError,
)
from pipeline_executor._ops import (
    BatchBody,
    FilterBody,
    FlatMapBody,
    MapBody,
    TakeBody,
    UnbatchBody,
)

from .stages import Boom, numbers

WAIT = 10.0  # seconds any wait of a test may take before the test fails


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def scale(x: int, factor: int) -> int:
    return x * factor


def even(x: int) -> bool:
    return x % 2 == 0


def repeat(x: int) -> list[int]:
    return [x] * (x % 3)


def parse(text: str) -> int:
    return int(text)


def words(n: int) -> Iterator[str]:
    for i in range(n):
        yield "x" if i == 2 else str(i)


untyped: Any = Pipeline.source(numbers, n=3)


def test_map_applies_the_function_with_its_constants() -> None:
    """map yields fn(item, **constants) for each item, in input order."""
    assert list(Pipeline.source(numbers, n=5).map(scale, factor=3)) == [0, 3, 6, 9, 12]


def test_map_on_several_threads_keeps_input_order() -> None:
    """An item that finishes after its successor still comes out first."""
    second_done = threading.Event()

    def late_first(x: int) -> int:
        if x == 0:
            assert second_done.wait(WAIT)
        elif x == 1:
            second_done.set()
        return x

    assert list(Pipeline.source(numbers, n=20).map(late_first, threads=4)) == list(range(20))


def test_unordered_map_lets_a_ready_item_overtake() -> None:
    """With ordered=False item 1 comes out while item 0 is still being worked on."""
    first_out = threading.Event()

    def held_until_one_is_out(x: int) -> int:
        if x == 0:
            assert first_out.wait(WAIT)
        return x

    got: list[int] = []
    for x in Pipeline.source(numbers, n=2).map(held_until_one_is_out, threads=2, ordered=False):
        got.append(x)
        first_out.set()
    assert got == [1, 0]


def test_filter_keeps_the_items_its_predicate_accepts() -> None:
    """filter yields, in order, the items for which pred is true."""
    assert list(Pipeline.source(numbers, n=10).filter(even, threads=3)) == [0, 2, 4, 6, 8]


def test_flat_map_yields_every_output_of_every_item_in_order() -> None:
    """flat_map concatenates fn(item) over the items, in input order on several threads."""
    want = [y for x in range(30) for y in repeat(x)]
    assert list(Pipeline.source(numbers, n=30).flat_map(repeat, threads=3)) == want


def test_batch_makes_lists_of_size_and_a_shorter_last_one() -> None:
    """batch(2) over five items gives two pairs and a single."""
    assert list(Pipeline.source(numbers, n=5).batch(2)) == [[0, 1], [2, 3], [4]]


def test_batch_with_a_timeout_passes_on_a_partial_batch_when_the_source_goes_quiet() -> None:
    """A source that waits for its first batch to be seen gets it, partial, after timeout."""
    seen = threading.Event()

    def quiet_after_two() -> Iterator[int]:
        yield 1
        yield 2
        assert seen.wait(WAIT)  # goes quiet until the partial batch came out
        yield 3

    got: list[list[int]] = []
    for chunk in Pipeline.source(quiet_after_two).batch(10, timeout=0.01):
        got.append(chunk)
        seen.set()
    assert got == [[1, 2], [3]]


def test_unbatch_flattens_lists() -> None:
    """unbatch after batch gives back the items."""
    assert list(Pipeline.source(numbers, n=7).batch(3).unbatch()) == list(range(7))


def test_take_stops_the_upstream_and_closes_its_generator() -> None:
    """take(3) on an endless source yields three items and runs the source's finally."""
    closed = threading.Event()

    def endless() -> Iterator[int]:
        n = 0
        try:
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    assert list(Pipeline.source(endless, buffer=4).map(scale, factor=2).take(3)) == [0, 2, 4]
    assert closed.is_set()


def test_take_zero_yields_nothing() -> None:
    """take(0) is an empty pipeline."""
    assert list(Pipeline.source(numbers, n=5).take(0)) == []


def test_on_error_gets_the_item_and_its_exception_and_the_item_is_dropped() -> None:
    """A failing item goes to on_error(item, exc) and is left out; the rest go through."""
    failures: list[tuple[str, str]] = []

    def record(item: str, exc: Exception) -> None:
        failures.append((item, type(exc).__name__))

    monitor = Monitor()
    got = list(Pipeline.source(words, n=5).map(parse, on_error=record).iter(monitor=monitor))
    assert got == [0, 1, 3, 4]
    assert failures == [("x", "ValueError")]
    assert monitor.stats().stages[1].failed == 1


def test_without_on_error_a_failing_item_stops_the_pipeline_with_its_own_exception() -> None:
    """The default policy is fail fast: the item's exception, with the operator named."""
    with pytest.raises(ValueError, match=r"^invalid literal for int\(\) with base 10: 'x'\n") as e:
        list(Pipeline.source(words, n=5).map(parse))
    notes: list[str] = getattr(e.value, "__notes__", [])
    assert "pipeline_executor: raised by stage 2 'parse' (map) in thread pipeline-parse-0" in notes


def test_an_on_error_that_raises_stops_the_pipeline_with_that() -> None:
    """on_error may decide that a failure is fatal by raising."""

    def refuse(item: str, exc: Exception) -> None:
        raise Boom(f"gave up on {item!r}") from exc

    with pytest.raises(Boom, match=r"^gave up on 'x'\n"):
        list(Pipeline.source(words, n=5).filter(lambda s: bool(parse(s)), on_error=refuse))


def test_the_report_names_failed_items_and_the_reorder_window() -> None:
    """The report has a line for a stage with failures or a reorder window."""
    monitor = Monitor()
    list(Pipeline.source(words, n=5).map(parse, on_error=lambda i, e: None).iter(monitor=monitor))
    assert "stage 2 'parse' (map): 1 failed (handled by on_error)" in str(monitor.stats())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: untyped.batch(0), "stage 2 'batch' (batch): size must be >= 1, got 0"),
        (
            lambda: untyped.batch(2, timeout=-1),
            "stage 2 'batch' (batch): timeout must be a number of seconds > 0 and <= "
            f"{threading.TIMEOUT_MAX:g} (threading.TIMEOUT_MAX), got -1",
        ),
        (lambda: untyped.take(-1), "stage 2 'take' (take): n must be >= 0, got -1"),
        (
            lambda: untyped.map(str, timeout=float("nan")),
            "stage 2 'str' (map): timeout must be a number of seconds > 0 and <= "
            f"{threading.TIMEOUT_MAX:g} (threading.TIMEOUT_MAX), got nan",
        ),
        (
            lambda: untyped.map(str, on_error=3),
            "stage 2 'str' (map): on_error must be a function (item, exc) or None, got 3",
        ),
        (
            lambda: untyped.filter(str, ordered="yes"),
            "stage 2 'str' (filter): ordered must be a bool, got 'yes' (str)",
        ),
        (
            lambda: untyped.map(3),
            "stage 2 (map): expected a callable, got 3 (int)",
        ),
    ],
)
def test_bad_operator_options_are_build_errors(build: Any, message: str) -> None:
    """Each bad option is a PipelineDefinitionError naming the stage and the value."""
    with pytest.raises(PipelineDefinitionError, match=exact(message)):
        build()


def test_an_operator_function_with_a_parameter_named_timeout_is_rejected() -> None:
    """timeout is an option of map, so a constant cannot be passed by that name."""

    def wait(x: int, timeout: float) -> int:
        return x

    with pytest.raises(PipelineDefinitionError, match=r"parameter named 'timeout'"):
        untyped.map(wait, timeout=1.0)


def test_then_still_takes_a_constant_named_timeout() -> None:
    """on_error and timeout are options of the operators only; then() leaves them alone."""

    def wait(xs: Iterable[int], timeout: float) -> Iterator[float]:
        for x in xs:
            yield x + timeout

    assert list(Pipeline.source(numbers, n=2).then(wait, timeout=0.5)) == [0.5, 1.5]


def test_map_checks_its_function_takes_the_items() -> None:
    """A function of str on a pipeline of int is a PipelineTypeError at build time."""
    message = (
        "stage 2 'parse' (map) expects items of type str, but stage 1 'numbers' (source) yields int"
    )
    with pytest.raises(PipelineTypeError, match=exact(message)):
        untyped.map(parse)


def test_map_infers_the_item_type_from_the_return_annotation() -> None:
    """The stage after map(parse) is checked against int, what parse returns."""
    message = (
        "stage 3 'parse' (map) expects items of type str, but stage 2 'parse' (map) yields int"
    )
    strings: Any = Pipeline.source(words, n=1).map(parse)
    with pytest.raises(PipelineTypeError, match=exact(message)):
        strings.map(parse)


def test_filter_needs_a_bool_predicate() -> None:
    """A predicate annotated to return int is refused."""

    def odd(x: int) -> int:
        return x % 2

    message = (
        "stage 2 'odd' (filter) returns int, but filter() keeps an item when its predicate "
        "returns True: annotate it '-> bool'"
    )
    with pytest.raises(PipelineTypeError, match=exact(message)):
        untyped.filter(odd)


def test_flat_map_refuses_a_function_returning_str() -> None:
    """A flat_map function annotated '-> str' would split each string into characters."""
    message = (
        "stage 2 'str' (flat_map) returns str: flat_map() would make each character an item; "
        "use map() for one value per item, or return a list of them"
    )

    def as_text(x: int) -> str:
        return str(x)

    as_text.__name__ = "str"
    with pytest.raises(PipelineTypeError, match=exact(message)):
        untyped.flat_map(as_text)


def test_unbatch_needs_iterable_items() -> None:
    """unbatch on a pipeline of int is refused, naming the stage before it."""
    message = (
        "stage 2 'unbatch' (unbatch) needs iterable items, but stage 1 'numbers' (source) "
        "yields int"
    )
    with pytest.raises(PipelineTypeError, match=exact(message)):
        untyped.unbatch()


def test_batch_infers_lists_of_the_items() -> None:
    """After batch, the items are lists of the items before it."""
    message = (
        "stage 3 'parse' (map) expects items of type str, but stage 2 'batch' (batch) "
        "yields list[str]"
    )
    strings: Any = Pipeline.source(words, n=1).batch(2)
    with pytest.raises(PipelineTypeError, match=exact(message)):
        strings.map(parse)


def test_operators_have_a_useful_repr() -> None:
    """repr shows each operator with its options."""
    pipeline = (
        Pipeline.source(words, n=3, buffer=4)
        .map(parse, threads=2, ordered=False, on_error=print, timeout=5)
        .batch(2, timeout=0.5)
        .unbatch()
        .take(2)
        .then(lambda xs: iter(xs), ordered=True)
    )
    assert repr(pipeline) == (
        "Pipeline.source(words, buffer=4, n=3)"
        ".map(parse, threads=2, ordered=False, on_error=print, timeout=5.0)"
        ".batch(size=2, timeout=0.5)"
        ".unbatch()"
        ".take(n=2)"
        ".then(<lambda>, threads=1, ordered=True)"
    )


def test_a_failing_flat_map_item_contributes_none_of_its_outputs() -> None:
    """With on_error, an item's outputs are collected first, so a failure drops them all."""

    def upto_then_fail(x: int) -> Iterator[int]:
        yield from range(x)
        if x == 2:
            raise Boom("two")

    dropped: list[int] = []
    got = list(
        Pipeline.source(numbers, n=4).flat_map(
            upto_then_fail, threads=2, on_error=lambda x, e: dropped.append(x)
        )
    )
    assert (got, dropped) == ([0, 0, 1, 2], [2])


def test_operator_bodies_survive_pickling() -> None:
    """Each operator's stage function pickles, so a worker process can host it."""
    bodies = [
        MapBody(str, None, 2.0, 1),
        FilterBody(bool, None, None, 2),
        FlatMapBody(list, None, None, 1),
        BatchBody(3, 0.5),
        UnbatchBody(),
        TakeBody(2),
    ]
    for body in bodies:
        copy = pickle.loads(pickle.dumps(body))
        assert type(copy) is type(body)
        assert repr(copy) == repr(body)
    assert list(pickle.loads(pickle.dumps(bodies[0]))(iter([1, 2]))) == ["1", "2"]
