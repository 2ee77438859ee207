"""Build time: options and constants are validated, with messages naming the stage."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from pipeline_executor import AutoBuffer, Pipeline, PipelineDefinitionError, PipelineError

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


def test_the_default_buffer_is_auto() -> None:
    """Without buffer=, a stage's buffer is AutoBuffer(), which the repr leaves out."""
    pipeline = Pipeline.source(numbers, n=3).then(add_one, threads=3)
    assert repr(pipeline) == "Pipeline.source(numbers, n=3).then(add_one, threads=3)"
    sized = Pipeline.source(numbers, n=3, buffer=AutoBuffer(max_bytes="1MiB"))
    assert repr(sized) == "Pipeline.source(numbers, buffer=AutoBuffer(max_bytes=1048576), n=3)"


def test_an_auto_buffer_with_bad_fields_is_a_definition_error() -> None:
    """AutoBuffer's fields are checked when the stage is added, naming the stage."""
    with pytest.raises(
        PipelineDefinitionError,
        match=exact(
            "stage 2 'add_one' (then): AutoBuffer(max_items=...) must be an int >= threads "
            "(3), got 2"
        ),
    ):
        Pipeline.source(numbers, n=3).then(add_one, threads=3, buffer=AutoBuffer(max_items=2))
    with pytest.raises(PipelineDefinitionError, match=r"max_bytes=\.\.\.\) must be a number"):
        Pipeline.source(numbers, n=3, buffer=AutoBuffer(max_bytes="lots"))


def test_a_source_buffer_is_validated() -> None:
    """The source's buffer is checked like any other."""
    with pytest.raises(
        PipelineDefinitionError,
        match=exact("stage 1 'numbers' (source): buffer must be >= 1, got -1"),
    ):
        Pipeline.source(numbers, buffer=-1, n=3)


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


POSITIONAL = (
    "got {n} positional argument(s) after the function ({shown}); pass options and constants "
    "by keyword, e.g. threads=2, size=224 (a positional-only parameter's constant goes "
    "through functools.partial)"
)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: untyped_source(numbers, 10),
            "stage 1 'numbers' (source): " + POSITIONAL.format(n=1, shown="10"),
        ),
        (
            lambda: untyped.then(add_one, 224),
            "stage 2 'add_one' (then): " + POSITIONAL.format(n=1, shown="224"),
        ),
        (
            lambda: untyped.then(add_one, 2, 8),
            "stage 2 'add_one' (then): " + POSITIONAL.format(n=2, shown="2, 8"),
        ),
        (
            lambda: untyped.sink(total, 1),
            "stage 2 'total' (sink): " + POSITIONAL.format(n=1, shown="1"),
        ),
        (lambda: untyped.then(42, 1), "stage 2 (then): " + POSITIONAL.format(n=1, shown="1")),
        (
            lambda: Pipeline.from_iterable([1], 4),  # type: ignore[call-arg]  # pyright: ignore[reportCallIssue]
            "stage 1 'from_iterable' (source): " + POSITIONAL.format(n=1, shown="4"),
        ),
    ],
    ids=["source", "then", "then-two", "sink", "not-callable", "from_iterable"],
)
def test_a_positional_argument_after_the_function_is_rejected(
    build: Callable[[], object], message: str
) -> None:
    """Options and constants go by keyword: a positional one is a build error, never an option."""
    with pytest.raises(PipelineDefinitionError, match=exact(message)):
        build()


def test_a_long_positional_argument_is_abbreviated_in_the_message() -> None:
    """The message shows a positional argument through reprlib, not in full."""
    with pytest.raises(PipelineDefinitionError, match=r"\(\[0, 1, 2, 3, 4, 5, \.\.\.\]\)"):
        untyped.then(add_one, list(range(100_000)))


def test_a_sink_takes_no_buffer() -> None:
    """A sink has no output buffer; buffer= on it is refused, not passed on as a constant."""
    message = (
        "stage 2 'total' (sink): a sink has no output, so it takes no buffer option, got buffer=4"
    )
    with pytest.raises(PipelineDefinitionError, match=exact(message)):
        untyped.sink(total, buffer=4)


def test_a_positional_only_parameter_of_a_stage_cannot_be_a_constant() -> None:
    """A positional-only parameter after the items names the parameter and the fix."""
    message = (
        "stage 2 'positional_only' (then): parameter 'factor' is positional-only, so it "
        "cannot be given as a constant (constants go by keyword); wrap the function in one "
        "that takes it by keyword (functools.partial cannot bind a parameter that follows "
        "the items)"
    )
    with pytest.raises(PipelineDefinitionError, match=exact(message)):
        untyped.then(positional_only, factor=2)


def numbers_from(start: int, /, n: int) -> Iterator[int]:
    yield from range(start, start + n)


def test_a_positional_only_parameter_of_a_source_points_at_partial() -> None:
    """A source's positional-only parameter is bound with functools.partial, as it says."""
    message = (
        "stage 1 'numbers_from' (source): parameter 'start' is positional-only, so it cannot "
        "be given as a constant (constants go by keyword); bind it with "
        "functools.partial(numbers_from, ...)"
    )
    with pytest.raises(PipelineDefinitionError, match=exact(message)):
        untyped_source(numbers_from, n=2)
    assert list(Pipeline.source(functools.partial(numbers_from, 10), n=2)) == [10, 11]


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
    pipeline = Pipeline.source(lines, buffer=8, n=3).then(parse, threads=2, encoding="utf-8")
    assert repr(pipeline) == (
        "Pipeline.source(lines, buffer=8, n=3).then(parse, threads=2, encoding='utf-8')"
    )
    assert repr(Pipeline.source(numbers, buffer=4, n=3).sink(total)) == (
        "Pipeline.source(numbers, buffer=4, n=3).sink(total, threads=1)"
    )
    assert repr(Pipeline.from_iterable([1], buffer=2)) == "Pipeline.from_iterable([1], buffer=2)"


def test_reprs_abbreviate_large_constants() -> None:
    """A 100,000-item constant shows as a few items, and the whole repr stays short."""
    many = list(range(100_000))
    text = "x" * 10_000

    def prefixed(xs: Iterable[int], prefix: str, table: list[int]) -> Iterator[str]:
        for x in xs:
            yield prefix + str(table[x])

    pipeline = Pipeline.from_iterable(many).then(prefixed, prefix=text, table=many)
    assert repr(pipeline) == (
        "Pipeline.from_iterable([0, 1, 2, 3, 4, 5, ...])"
        ".then(prefixed, threads=1, "
        "prefix='xxxxxxxxxxxxxxxxx...xxxxxxxxxxxxxxxxxx', table=[0, 1, 2, 3, 4, 5, ...])"
    )


@pytest.mark.parametrize(
    "timeout", [0, -1.0, "1", True, float("nan"), float("inf"), 1e300, threading.TIMEOUT_MAX * 2]
)
def test_a_bad_inactivity_timeout_is_rejected(timeout: Any) -> None:
    """inactivity_timeout must be a number > 0 and <= threading.TIMEOUT_MAX, checked at once."""
    message = exact(
        "pipeline: inactivity_timeout must be a number of seconds > 0 and <= "
        f"{threading.TIMEOUT_MAX:g} (threading.TIMEOUT_MAX), got {timeout!r}"
    )
    with pytest.raises(PipelineDefinitionError, match=message):
        Pipeline.source(numbers, n=1).sink(total).run(inactivity_timeout=timeout)
    with pytest.raises(PipelineDefinitionError, match=message):
        Pipeline.source(numbers, n=1).iter(inactivity_timeout=timeout)


def test_the_longest_inactivity_timeout_is_accepted() -> None:
    """threading.TIMEOUT_MAX itself is a valid timeout, and the run uses it without overflow."""
    pipeline = Pipeline.source(numbers, n=3).sink(total)
    assert pipeline.run(inactivity_timeout=threading.TIMEOUT_MAX) == 3
