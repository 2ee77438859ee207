"""Build-time type checks: annotations, generic stages, constants, traps, item checks."""

from __future__ import annotations

import decimal
import functools
import re
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator, Sequence
from numbers import Number
from pathlib import PurePosixPath
from typing import Any, Literal, TypeVar, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline_executor import (
    Pipeline,
    PipelineTask,
    PipelineTypeError,
    PipelineTypeWarning,
    execute,
)
from pipeline_executor._subtype import NOT_ITERABLE, describe, is_subtype, item_type
from pipeline_executor._typecheck import check_stage

from .stages import batch
from .typecheck_types import Animal, Box, Cell, Dog, UserId
from .unresolved_stages import scale_by, to_decimal

X = TypeVar("X")
N = TypeVar("N", bound=Number)
S = TypeVar("S", str, bytes)

untyped: Any = Pipeline  # reaches the runtime checks with what mypy would reject


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def words(n: int) -> Iterator[str]:
    for i in range(n):
        yield f"w{i}"


def parse_ints(xs: Iterable[int]) -> Iterator[int]:
    yield from xs


def total(xs: Iterable[int]) -> int:
    return sum(xs)


# -- compatibility between stages ---------------------------------------------------------


def test_the_message_names_both_stages_and_both_types() -> None:
    """The README's example ("Types"), exactly: both stages and both types named."""
    pipeline = untyped.source(words, n=4).then(batch, size=2)
    with pytest.raises(
        PipelineTypeError,
        match=exact(
            "stage 3 'parse_ints' (then) expects items of type int, but stage 2 'batch' (then) "
            "yields list[str]"
        ),
    ) as info:
        pipeline.then(parse_ints)
    assert info.value.stage == "stage 3 'parse_ints' (then)"
    assert isinstance(info.value, TypeError)


def test_a_generic_stage_binds_its_type_variable_from_upstream() -> None:
    """batch(Iterable[X]) after a str source yields list[str], and a list[str] stage fits."""

    def join(xs: Iterable[list[str]]) -> Iterator[str]:
        for x in xs:
            yield "".join(x)

    assert list(Pipeline.source(words, n=3).then(batch, size=2).then(join)) == ["w0w1", "w2"]


def test_a_type_variable_bound_is_enforced() -> None:
    """A stage generic in N (bound=Number) rejects str items."""

    def doubled(xs: Iterable[N]) -> Iterator[N]:
        yield from xs

    with pytest.raises(
        PipelineTypeError,
        match=exact(
            "stage 2 'doubled' (then) expects items of type N, where N must be Number, but "
            "stage 1 'words' (source) yields str"
        ),
    ):
        Pipeline.source(words, n=1).then(doubled)  # type: ignore[arg-type]


def test_type_variable_constraints_are_enforced_and_chosen() -> None:
    """A constrained TypeVar takes the constraint the items fit; others are rejected."""

    def same(xs: Iterable[S]) -> Iterator[S]:
        yield from xs

    def wants_str(xs: Iterable[str]) -> Iterator[str]:
        yield from xs

    assert list(Pipeline.source(words, n=2).then(same).then(wants_str)) == ["w0", "w1"]
    with pytest.raises(PipelineTypeError, match=r"where S must be str \| bytes, but"):
        Pipeline.source(numbers, n=1).then(same)  # type: ignore[arg-type]


def test_an_unannotated_stage_is_any_in_the_fluent_api() -> None:
    """No annotations: nothing to check, and what it yields fits anything."""

    def loose(xs):  # type: ignore[no-untyped-def]  # pyright: ignore[reportMissingParameterType]
        yield from xs  # pyright: ignore[reportUnknownArgumentType]

    pipeline = untyped.source(numbers, n=3).then(loose).then(parse_ints)
    assert pipeline.sink(total).run() == 3


def test_the_first_parameter_must_take_an_iterator() -> None:
    """Annotated Sequence[int], the stage could not be given an iterator."""

    def wants_sequence(xs: Sequence[int]) -> Iterator[int]:
        yield from xs

    with pytest.raises(
        PipelineTypeError,
        match=exact(
            "stage 2 'wants_sequence' (then) takes its items as Sequence[int], but it is given "
            "an iterator: annotate its first parameter 'xs' as Iterable[...] or Iterator[...]"
        ),
    ):
        untyped.source(numbers, n=1).then(wants_sequence)


def test_object_as_the_first_parameter_accepts_anything() -> None:
    """A supertype of Iterator is fine."""

    def counts(xs: object) -> Iterator[int]:
        yield len(list(xs))  # type: ignore[call-overload]

    assert list(Pipeline.source(words, n=3).then(counts)) == [3]


def test_a_stage_that_does_not_return_an_iterable_is_rejected() -> None:
    """-> int for then() is a build error."""
    with pytest.raises(
        PipelineTypeError,
        match=exact(
            "stage 2 'total' (then) returns int, which is not iterable; a then() stage must "
            "return Iterable[...], Iterator[...] or Generator[...]"
        ),
    ):
        untyped.source(numbers, n=1).then(total)


def test_generator_and_list_returns_give_their_item_type() -> None:
    """-> Generator[int, None, None] and -> list[str] yield int and str."""

    def gen(n: int) -> Generator[int, None, None]:
        yield from range(n)

    def listed(xs: Iterable[int]) -> list[str]:
        return [str(x) for x in xs]

    source = Pipeline.source(gen, n=2).then(listed)
    with pytest.raises(PipelineTypeError, match=r"yields str$"):
        untyped.then(source, parse_ints)  # Pipeline.then(source, ...) is source.then(...)
    assert list(source) == ["0", "1"]


def test_user_generic_classes_are_compared_by_variance() -> None:
    """Box is covariant, Cell invariant: Box[Dog] fits Box[Animal], Cell[Dog] not Cell[Animal]."""

    def boxes() -> Iterator[Box[Dog]]:
        yield from ()

    def cells() -> Iterator[Cell[Dog]]:
        yield from ()

    def takes_boxes(xs: Iterable[Box[Animal]]) -> Iterator[int]:
        yield from ()

    def takes_cells(xs: Iterable[Cell[Animal]]) -> Iterator[int]:
        yield from ()

    Pipeline.source(boxes).then(takes_boxes)
    with pytest.raises(PipelineTypeError, match=r"yields Cell\[Dog\]$"):
        untyped.source(cells).then(takes_cells)


def test_newtypes_fit_their_supertype_only() -> None:
    """A UserId source fits an int stage; an int source does not fit a UserId stage."""

    def ids() -> Iterator[UserId]:
        yield UserId(1)

    def takes_ids(xs: Iterable[UserId]) -> Iterator[UserId]:
        yield from xs

    assert list(Pipeline.source(ids).then(parse_ints)) == [1]
    with pytest.raises(
        PipelineTypeError, match=r"expects items of type UserId, but .* yields int$"
    ):
        untyped.source(numbers, n=1).then(takes_ids)


def test_the_sink_is_checked_too() -> None:
    """A sink's input is checked like a stage's."""
    with pytest.raises(PipelineTypeError, match=r"^stage 2 'total' \(sink\) expects items of type"):
        untyped.source(words, n=1).sink(total)


def test_string_annotations_are_resolved() -> None:
    """This module uses `from __future__ import annotations`: its strings resolve."""
    assert Pipeline.source(words, n=1).then(batch, size=1).then(len_of_lists).sink(total).run() == 1


def len_of_lists(xs: Iterable[list[str]]) -> Iterator[int]:
    for x in xs:
        yield len(x)


UNRESOLVED = (
    "{label} has annotations that cannot be resolved at run time, so they count as Any: "
    "{which} (a name imported under 'if TYPE_CHECKING:' or a class local to a function?)"
)


def test_an_annotation_imported_for_type_checking_only_counts_as_any() -> None:
    """A TYPE_CHECKING-only name: one warning naming the stage and the name; the stage runs."""
    message = UNRESOLVED.format(label="stage 2 'to_decimal' (then)", which="the return ('Decimal')")
    with pytest.warns(PipelineTypeWarning, match=exact(message)) as records:
        pipeline = Pipeline.source(numbers, n=3).then(to_decimal)
    assert len(records) == 1
    assert [str(x) for x in pipeline] == ["0", "1", "2"]


def test_an_unresolved_parameter_annotation_leaves_its_constant_unchecked() -> None:
    """The constant of an unresolved parameter is accepted as Any; the others are still checked."""
    message = UNRESOLVED.format(
        label="stage 2 'scale_by' (then)", which="'factor' ('Decimal'), the return ('Decimal')"
    )
    with pytest.warns(PipelineTypeWarning, match=exact(message)):
        pipeline = Pipeline.source(numbers, n=2).then(scale_by, factor=decimal.Decimal(2))
    assert [str(x) for x in pipeline] == ["0", "2"]
    with (
        pytest.warns(PipelineTypeWarning),
        pytest.raises(PipelineTypeError, match=r"expects its constant 'offset' to be int"),
    ):
        untyped.source(numbers, n=2).then(scale_by, factor=decimal.Decimal(2), offset="1")


def test_a_class_local_to_a_function_counts_as_any() -> None:
    """Under postponed annotations a local class cannot be resolved: Any, with the warning."""

    class Local:
        pass

    def make(xs: Iterable[int]) -> Iterator[Local]:
        for _ in xs:
            yield Local()

    def count(items: Iterable[Local]) -> int:
        return sum(1 for _ in items)

    with pytest.warns(PipelineTypeWarning) as records:
        runnable = Pipeline.source(numbers, n=4).then(make).sink(count)
    assert [str(r.message) for r in records] == [
        UNRESOLVED.format(label="stage 2 'make' (then)", which="the return ('Local')"),
        UNRESOLVED.format(label="stage 3 'count' (sink)", which="'items' ('Local')"),
    ]
    assert runnable.run() == 4


def test_an_unresolved_annotation_under_execute_warns_at_the_callers_line() -> None:
    """execute() accepts it too, with the warning pointing at the execute() call."""
    tasks = [PipelineTask(numbers, constants={"n": 2}), PipelineTask(to_decimal)]
    line = sys._getframe().f_lineno + 2  # pyright: ignore[reportPrivateUsage]
    with pytest.warns(PipelineTypeWarning, match=r"^stage 2 'to_decimal' \(then\) has") as records:
        execute(tasks)
    (record,) = records
    assert (record.filename, record.lineno) == (__file__, line)


# -- traps mypy lets through ----------------------------------------------------------------


@pytest.mark.parametrize(("returns", "what"), [(str, "1-character strings"), (bytes, "ints")])
def test_a_stage_returning_str_or_bytes_is_rejected(returns: type, what: str) -> None:
    """A str is an iterable of str: each character would be an item."""

    def text(n: int) -> Any:
        return "x" * n

    text.__annotations__ = {"n": int, "return": returns}
    name = returns.__name__
    with pytest.raises(
        PipelineTypeError,
        match=exact(
            f"stage 1 'text' (source) returns {name}, which is an iterable of {what}: each "
            f"would become an item; yield whole values and annotate it '-> Iterator[{name}]'"
        ),
    ):
        Pipeline.source(text, n=3)


def test_async_stages_are_rejected() -> None:
    """async def generators and coroutine functions: not supported (yet)."""

    async def agen(xs: Iterable[int]) -> AsyncIterator[int]:
        for x in xs:
            yield x

    async def coro(n: int) -> list[int]:
        return list(range(n))

    message = (
        "is an async function: async stages are not supported (yet); write a plain generator, "
        "and run any coroutine inside it with asyncio.run()"
    )
    with pytest.raises(PipelineTypeError, match=exact(f"stage 2 'agen' (then) {message}")):
        untyped.source(numbers, n=1).then(agen)
    with pytest.raises(PipelineTypeError, match=exact(f"stage 1 'coro' (source) {message}")):
        untyped.source(coro, n=1)


def test_a_callable_object_uses_its_call_signature() -> None:
    """__call__'s annotations are the stage's."""

    class Scale:
        def __init__(self, factor: int) -> None:
            self.factor = factor

        def __call__(self, xs: Iterable[int], offset: int) -> Iterator[int]:
            for x in xs:
                yield x * self.factor + offset

    assert list(Pipeline.source(numbers, n=3).then(Scale(10), offset=1)) == [1, 11, 21]
    with pytest.raises(PipelineTypeError, match=r"^stage 2 'Scale' \(then\) expects items of"):
        untyped.source(words, n=1).then(Scale(10), offset=1)


def test_a_class_as_a_source_yields_what_its_iter_says() -> None:
    """A class whose instances are iterable: its __iter__ gives the item type."""

    class Lines:
        def __init__(self, n: int) -> None:
            self.n = n

        def __iter__(self) -> Iterator[str]:
            return (str(i) for i in range(self.n))

    assert list(Pipeline.source(Lines, n=2)) == ["0", "1"]
    with pytest.raises(PipelineTypeError, match=r"yields str$"):
        untyped.source(Lines, n=2).then(parse_ints)


# -- constants ------------------------------------------------------------------------------


def scaled(xs: Iterable[int], factor: int, labels: list[str]) -> Iterator[str]:
    for x in xs:
        yield f"{labels[0]}{x * factor}"


def test_a_constant_of_the_wrong_type_is_rejected() -> None:
    """typeguard checks each constant against its annotation."""
    with pytest.raises(
        PipelineTypeError,
        match=exact(
            "stage 2 'scaled' (then) expects its constant 'factor' to be int, but got '2' (str): "
            "str is not an instance of int"
        ),
    ):
        untyped.source(numbers, n=1).then(scaled, factor="2", labels=["a"])


def test_every_item_of_a_collection_constant_is_checked() -> None:
    """[1, 'a'] is not a list[str]: the all-items strategy finds the bad item."""
    with pytest.raises(
        PipelineTypeError, match=r"^stage 2 'scaled' \(then\) expects its constant 'labels'"
    ) as info:
        untyped.source(numbers, n=1).then(scaled, factor=2, labels=["a", "b", 3])
    assert "item 2 of list is not an instance of str" in str(info.value)
    assert info.value.__cause__ is not None  # chained from typeguard's TypeCheckError


def test_constants_bound_by_partial_are_checked() -> None:
    """Values inside a functools.partial are checked like constants."""
    bad = functools.partial(scaled, factor=2.5, labels=["a"])  # type: ignore[arg-type]  # pyright: ignore[reportArgumentType]
    with pytest.raises(PipelineTypeError, match=r"expects its constant 'factor' to be int"):
        Pipeline.source(numbers, n=1).then(bad)
    good = functools.partial(scaled, factor=2, labels=["n"])
    assert list(Pipeline.source(numbers, n=2).then(good)) == ["n0", "n2"]


def test_a_constant_checked_against_a_bound_type_variable() -> None:
    """A constant typed X is checked against what X was bound to."""

    def pad(xs: Iterable[X], filler: X) -> Iterator[X]:
        yield from xs
        yield filler

    assert list(Pipeline.source(numbers, n=1).then(pad, filler=9)) == [0, 9]
    with pytest.raises(PipelineTypeError, match=r"expects its constant 'filler' to be X"):
        untyped.source(numbers, n=1).then(pad, filler="nine")


def test_execute_warns_about_constants_instead_of_raising() -> None:
    """The seed API promised not to check constants: a mismatch is a PipelineTypeWarning."""
    seen: list[str] = []

    def read(path: str) -> Iterator[str]:
        yield str(path)

    def keep(xs: Iterable[str]) -> None:
        seen.extend(xs)

    with pytest.warns(
        PipelineTypeWarning,
        match=r"^stage 1 'read' \(source\) expects its constant 'path' to be str, but got "
        r"PurePosixPath\('/tmp/x'\) \(PurePosixPath\)",
    ):
        execute(
            [PipelineTask(read, constants={"path": PurePosixPath("/tmp/x")}), PipelineTask(keep)]
        )
    assert seen == ["/tmp/x"]
    assert issubclass(PipelineTypeWarning, UserWarning)


def test_execute_keeps_the_seeds_strictness_about_annotations() -> None:
    """Under execute(), every parameter and the return must be annotated."""

    def unannotated_return(xs: Iterable[int]):  # type: ignore[no-untyped-def]  # pyright: ignore[reportUnknownParameterType]
        yield from xs  # pyright: ignore[reportUnknownVariableType]

    with pytest.raises(
        PipelineTypeError,
        match=exact(
            "stage 2 'unannotated_return' (then) has no return annotation; execute() needs "
            "one, e.g. '-> Iterable[...]'"
        ),
    ):
        execute([PipelineTask(numbers, constants={"n": 1}), PipelineTask(unannotated_return)])

    def unannotated_param(xs, factor: int) -> Iterator[int]:  # type: ignore[no-untyped-def]  # pyright: ignore[reportMissingParameterType]
        yield from xs  # pyright: ignore[reportUnknownArgumentType]

    with pytest.raises(
        PipelineTypeError,
        match=exact(
            "stage 2 'unannotated_param' (then) has no annotation on parameter(s) 'xs'; "
            "execute() needs them all"
        ),
    ):
        execute(
            [
                PipelineTask(numbers, constants={"n": 1}),
                PipelineTask(unannotated_param, constants={"factor": 1}),  # pyright: ignore[reportUnknownArgumentType]
            ]
        )


def test_execute_checks_types_between_tasks() -> None:
    """execute() checks adjacent tasks like the builder."""

    def keep(xs: Iterable[str]) -> None:
        del xs

    with pytest.raises(PipelineTypeError, match=r"^stage 2 'keep' \(sink\) expects items of type"):
        execute([PipelineTask(numbers, constants={"n": 1}), PipelineTask(keep)])


# -- per-item checks ------------------------------------------------------------------------


def liar(n: int) -> Iterator[int]:
    """Declares int, yields a str at item 3."""
    for i in range(n):
        yield "three" if i == 3 else i  # type: ignore[misc]


def test_item_checks_stop_the_pipeline_at_a_lying_stage() -> None:
    """with_item_checks(): a yielded item of the wrong type stops the run, stage named."""
    pipeline = Pipeline.source(liar, n=10).with_item_checks().then(parse_ints)
    assert "with_item_checks()" in repr(pipeline)
    with pytest.raises(PipelineTypeError) as info:
        pipeline.sink(total).run()
    assert str(info.value).startswith(
        "stage 1 'liar' (source) yielded an item of type str, but its items are declared as int"
    )
    assert "stage 1 'liar' (source)" in getattr(info.value, "__notes__", [""])[0]


def test_without_item_checks_a_lying_stage_is_not_noticed() -> None:
    """Item checks are off by default."""
    assert list(Pipeline.source(liar, n=5)) == [0, 1, 2, "three", 4]


def test_item_checks_pass_correct_items_through() -> None:
    """Checked stages yield the same items."""
    pipeline = Pipeline.source(words, n=5).with_item_checks().then(batch, size=2)
    assert list(pipeline) == [["w0", "w1"], ["w2", "w3"], ["w4"]]


# -- the checker never crashes ------------------------------------------------------------

leaf_types = st.sampled_from(
    [int, str, bool, float, bytes, type(None), Any, object, Dog, Animal, UserId]
)


def _of(generic: Any, *args: Any) -> Any:
    """generic[args], built at run time (what mypy cannot see through)."""
    return generic[args[0] if len(args) == 1 else args]


def _compose(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    pairs = st.tuples(children, children)
    return st.one_of(
        *(children.map(functools.partial(_of, g)) for g in (list, Sequence, Iterable, Box, Cell)),
        children.map(lambda t: _of(tuple, t, ...)),
        pairs.map(lambda ab: _of(dict, *ab)),
        pairs.map(lambda ab: _of(tuple, *ab)),
        pairs.map(lambda ab: _of(Union, *ab)),
        pairs.map(lambda ab: _of(Callable, [ab[0]], ab[1])),
    )


nested_types = st.recursive(leaf_types, _compose, max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(tp=nested_types)
def test_every_type_is_a_subtype_of_itself(tp: Any) -> None:
    """is_subtype(t, t) holds for any nested type."""
    assert is_subtype(tp, tp)


@settings(max_examples=300, deadline=None)
@given(out=nested_types, into=nested_types)
def test_the_check_raises_nothing_but_pipeline_type_error(out: Any, into: Any) -> None:
    """Whatever the types, the build-time check accepts or raises PipelineTypeError."""

    def source() -> Iterator[Any]:
        yield from ()

    def stage(xs: Iterable[Any]) -> Iterator[int]:
        yield from ()

    source.__annotations__ = {"return": Iterator[out]}
    stage.__annotations__ = {"xs": Iterable[into], "return": Iterator[int]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            Pipeline.source(source).then(stage)
        except PipelineTypeError:
            pass


def test_check_stage_returns_the_item_type() -> None:
    """The checked stage carries its item type: batch after words yields list[str]."""
    first: Any = Pipeline.source(words, n=1)  # its stages are private
    assert first.then(batch, size=1)._stages[-1].item_type == list[str]
    assert check_stage(None, first._stages[0]).item_type is str


@pytest.mark.parametrize(
    ("iterable", "item"),
    [
        (Iterator[int], int),
        (list[str], str),
        (str, str),
        (bytes, int),
        (dict[str, int], str),
        (tuple[int, ...], int),
        (tuple[int, str], int | str),
        (list[int] | set[str], int | str),
        (Generator[bytes, None, None], bytes),
        (range, int),
        (Any, Any),
    ],
)
def test_item_type_of_iterables(iterable: Any, item: Any) -> None:
    """What an iterable type yields."""
    assert item_type(iterable) == item


@pytest.mark.parametrize("not_iterable", [int, None, int | list[int], Callable[[], int]])
def test_item_type_of_non_iterables(not_iterable: Any) -> None:
    """Non-iterable types are told apart from Any."""
    assert item_type(not_iterable) is NOT_ITERABLE


@pytest.mark.parametrize(
    ("tp", "text"),
    [
        (list[int] | None, "list[int] | None"),
        (Callable[[int], str], "Callable[[int], str]"),
        (Callable[..., str], "Callable[..., str]"),
        (tuple[int, ...], "tuple[int, ...]"),
        (tuple[()], "tuple[()]"),
        (Literal["a", 1], "Literal['a', 1]"),
        (UserId, "UserId"),
        (X, "X"),
        (type[int], "type[int]"),
        (Any, "Any"),
        (Box[Dog], "Box[Dog]"),
    ],
)
def test_types_are_described_briefly(tp: Any, text: str) -> None:
    """Messages name types the way they are written."""
    assert describe(tp) == text
