"""Build time: options and constants are validated, with messages naming the stage."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from pipeline_executor import Pipeline, PipelineDefinitionError, PipelineError

from .stages import add_one, double, numbers, total


def lines(n: int) -> Iterator[str]:
    for i in range(n):
        yield str(i)


def parse(lines: Iterable[str], encoding: str, strict: bool = False) -> Iterator[str]:
    for line in lines:
        yield line + encoding + str(strict)


def scale(xs: Iterable[int], threads: int) -> Iterator[int]:
    for x in xs:
        yield x * threads


def positional_only(xs: Iterable[int], factor: int, /) -> Iterator[int]:
    for x in xs:
        yield x * factor


def no_input() -> Iterator[int]:
    yield 1


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


# Untyped aliases, to make the mistakes mypy would catch reach the runtime checks.
untyped_source: Any = Pipeline.source
untyped: Any = Pipeline.source(numbers, n=3)


def test_definition_errors_are_value_errors_and_pipeline_errors() -> None:
    """PipelineDefinitionError can be caught as ValueError or PipelineError."""
    assert issubclass(PipelineDefinitionError, ValueError)
    assert issubclass(PipelineDefinitionError, PipelineError)


@pytest.mark.parametrize(
    ("threads", "message"),
    [
        ("2", "stage 2 'add_one' (then): threads must be an int, got '2' (str)"),
        (True, "stage 2 'add_one' (then): threads must be an int, got True (bool)"),
        (0, "stage 2 'add_one' (then): threads must be >= 1, got 0"),
        (1.5, "stage 2 'add_one' (then): threads must be an int, got 1.5 (float)"),
    ],
)
def test_bad_threads_are_rejected(threads: object, message: str) -> None:
    """threads must be an int >= 1."""
    with pytest.raises(PipelineDefinitionError, match=exact(message)):
        untyped.then(add_one, threads=threads)


@pytest.mark.parametrize(
    ("buffer", "message"),
    [
        (0, "stage 2 'add_one' (then): buffer must be >= 1, got 0"),
        ("8", "stage 2 'add_one' (then): buffer must be an int, got '8' (str)"),
        (
            2,
            "stage 2 'add_one' (then): buffer=2 is smaller than threads=3: each thread "
            "needs a slot for the item it is producing; use buffer >= threads",
        ),
    ],
)
def test_bad_buffers_are_rejected(buffer: object, message: str) -> None:
    """buffer must be an int >= 1 and >= threads."""
    with pytest.raises(PipelineDefinitionError, match=exact(message)):
        untyped.then(add_one, threads=3, buffer=buffer)


def test_the_default_buffer_is_8192_or_the_thread_count() -> None:
    """Without buffer=, a stage's buffer is max(8192, threads)."""
    assert "threads=3, buffer=8192)" in repr(Pipeline.source(numbers, n=3).then(add_one, threads=3))
    many = Pipeline.source(numbers, n=3).then(add_one, threads=9000)
    assert "threads=9000, buffer=9000" in repr(many)


def test_a_source_buffer_is_validated() -> None:
    """The source's buffer is checked like any other."""
    with pytest.raises(
        PipelineDefinitionError,
        match=exact("stage 1 'numbers' (source): buffer must be >= 1, got -1"),
    ):
        Pipeline.source(numbers, -1, n=3)


def test_a_missing_constant_is_named() -> None:
    """A required parameter with no constant is a build error."""
    with pytest.raises(
        PipelineDefinitionError,
        match=exact("stage 2 'parse' (then): missing constant(s) 'encoding'"),
    ):
        untyped_source(numbers, n=3).then(parse)


def test_an_unknown_constant_is_named_with_a_suggestion() -> None:
    """A misspelt constant names the stage, the key, the accepted keys and the likely one."""
    message = (
        "stage 2 'parse' (then): unknown constant 'encodng' (its constants are: "
        "encoding, strict); did you mean 'encoding'?"
    )
    with pytest.raises(PipelineDefinitionError, match=exact(message)):
        untyped.then(parse, encodng="utf-8")


def test_a_source_missing_its_constants_is_rejected() -> None:
    """The source's constants are checked too."""
    with pytest.raises(
        PipelineDefinitionError,
        match=exact("stage 1 'numbers' (source): missing constant(s) 'n'"),
    ):
        untyped_source(numbers)


def test_too_many_positional_constants_are_rejected() -> None:
    """Positional constants beyond the parameters are a build error."""
    with pytest.raises(
        PipelineDefinitionError,
        match=exact("stage 1 'numbers' (source): takes 1 positional constant(s) but 2 were given"),
    ):
        untyped_source(numbers, None, 1, 2)


def test_a_constant_given_twice_is_rejected() -> None:
    """Positionally and by keyword at once: a build error."""
    with pytest.raises(
        PipelineDefinitionError,
        match=exact(
            "stage 1 'numbers' (source): constant 'n' is given both positionally and by keyword"
        ),
    ):
        untyped_source(numbers, None, 1, n=2)


def test_a_positional_only_parameter_cannot_be_a_keyword_constant() -> None:
    """A positional-only parameter passed by keyword names the parameter and the fix."""
    message = (
        "stage 2 'positional_only' (then): parameter 'factor' is positional-only, so it "
        "cannot be given as a constant by keyword; pass it positionally or bind it with "
        "functools.partial"
    )
    with pytest.raises(PipelineDefinitionError, match=exact(message)):
        untyped.then(positional_only, factor=2)


def test_positional_constants_follow_the_options() -> None:
    """Constants may be given positionally after threads and buffer."""
    pipeline = Pipeline.source(numbers, None, 3).then(positional_only, 1, None, 10)
    assert list(pipeline) == [0, 10, 20]


def test_a_parameter_named_like_an_option_is_rejected_with_the_partial_fix() -> None:
    """A stage parameter called threads cannot get a constant; the message suggests partial."""
    message = (
        "stage 2 'scale' (then): has a parameter named 'threads', which is also the name of a "
        "stage option, so it cannot be passed as a constant; bind it first with "
        "functools.partial(scale, threads=...)"
    )
    with pytest.raises(PipelineDefinitionError, match=exact(message)):
        untyped.then(scale)


def test_a_parameter_named_like_an_option_works_through_partial() -> None:
    """Bound with functools.partial, the same stage is accepted and runs."""
    pipeline = Pipeline.source(numbers, n=3).then(functools.partial(scale, threads=10), threads=2)
    assert sorted(pipeline) == [0, 10, 20]


def test_a_stage_without_an_input_parameter_is_rejected() -> None:
    """then() needs a first parameter for the items."""
    message = (
        "stage 2 'no_input' (then): takes no positional parameter to receive the previous "
        "stage's items; its first parameter must take them, e.g. def f(items: Iterable[X], ...)"
    )
    with pytest.raises(PipelineDefinitionError, match=exact(message)):
        untyped.then(no_input)


def test_a_non_callable_stage_is_rejected() -> None:
    """A stage must be callable."""
    with pytest.raises(
        PipelineDefinitionError,
        match=exact("stage 2 (then): expected a callable, got 42 (int)"),
    ):
        untyped.then(42)


def test_a_generator_sink_is_rejected() -> None:
    """A sink that is a generator function would consume nothing."""
    message = (
        "stage 2 'add_one' (sink): is a generator function, so calling it would consume "
        "nothing; a sink must consume its items and return (use then() for a stage that yields)"
    )
    with pytest.raises(PipelineDefinitionError, match=exact(message)):
        untyped.sink(add_one)


def test_a_multithreaded_sink_must_return_none() -> None:
    """A sink on several threads has no single result, so it must be annotated -> None."""
    message = (
        "stage 2 'total' (sink): runs on 2 threads, so it has no single return value: "
        "annotate it '-> None' (found '-> int')"
    )
    with pytest.raises(PipelineDefinitionError, match=exact(message)):
        untyped.sink(total, threads=2)


def test_a_multithreaded_sink_without_annotation_is_rejected() -> None:
    """No annotation is not '-> None'."""

    def unannotated(xs):  # type: ignore[no-untyped-def]  # pyright: ignore[reportMissingParameterType]
        del xs

    with pytest.raises(PipelineDefinitionError, match=r"\(found no return annotation\)$"):
        untyped.sink(unannotated, threads=2)


def test_a_multithreaded_sink_annotated_none_is_accepted() -> None:
    """-> None on several threads is fine, and run() returns None."""
    seen: list[int] = []
    lock = threading.Lock()

    def store(xs: Iterable[int]) -> None:
        for x in xs:
            with lock:
                seen.append(x)

    assert Pipeline.source(numbers, n=50).sink(store, threads=3).run() is None
    assert sorted(seen) == list(range(50))


def test_building_starts_no_thread() -> None:
    """source/then/sink only describe the pipeline."""
    before = threading.active_count()
    runnable = Pipeline.source(numbers, n=3).then(add_one, threads=4).sink(total, threads=1)
    iterator = iter(Pipeline.source(numbers, n=3))
    assert threading.active_count() == before
    del iterator
    assert runnable.run() == 6


def test_the_builder_is_immutable() -> None:
    """A partial pipeline can be extended in two ways independently."""
    base = Pipeline.source(numbers, n=4)
    added = base.then(add_one)
    doubled = base.then(double)
    assert list(base) == [0, 1, 2, 3]
    assert list(added) == [1, 2, 3, 4]
    assert list(doubled) == [0, 2, 4, 6]


def test_reprs_read_like_the_code_that_built_them() -> None:
    """Every builder object has a useful repr."""
    pipeline = Pipeline.source(lines, 8, n=3).then(parse, threads=2, encoding="utf-8")
    assert repr(pipeline) == (
        "Pipeline.source(lines, buffer=8, n=3)"
        ".then(parse, threads=2, buffer=8192, encoding='utf-8')"
    )
    assert repr(Pipeline.source(numbers, 4, n=3).sink(total)) == (
        "Pipeline.source(numbers, buffer=4, n=3).sink(total, threads=1)"
    )
    assert repr(Pipeline.from_iterable([1], buffer=2)) == (
        "Pipeline.source(from_iterable, buffer=2, args=([1],))"
    )


@pytest.mark.parametrize("timeout", [0, -1.0, "1", True, float("nan"), float("inf")])
def test_a_bad_inactivity_timeout_is_rejected(timeout: Any) -> None:
    """inactivity_timeout must be a positive number."""
    with pytest.raises(PipelineDefinitionError, match=r"^pipeline: inactivity_timeout must be"):
        Pipeline.source(numbers, n=1).sink(total).run(inactivity_timeout=timeout)
    with pytest.raises(PipelineDefinitionError, match=r"^pipeline: inactivity_timeout must be"):
        Pipeline.source(numbers, n=1).iter(inactivity_timeout=timeout)
