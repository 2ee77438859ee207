"""Constants are checked cheaply: isinstance for plain classes, typeguard by sample for large
collections (README, "Types")."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Optional, Protocol, TypedDict, Union

import pytest

from pipeline_executor import Pipeline, PipelineTypeError
from pipeline_executor._fits import SAMPLE_ABOVE, mismatch
from tests.fresh import run_fresh

from .stages import numbers

untyped: Any = Pipeline.source(numbers, n=2)


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


def test_plain_class_constants_are_checked_without_importing_typeguard() -> None:
    """int, str | None, Optional[float], a user class: built and run, typeguard never imported."""
    out = run_fresh(
        """
        import sys
        from collections.abc import Iterable, Iterator
        from pathlib import Path
        from typing import Optional
        from pipeline_executor import Pipeline

        def numbers(n: int, start: int = 0) -> Iterator[int]:
            yield from range(start, start + n)

        def label(xs: Iterable[int], prefix: str | None, scale: Optional[float], where: Path
                  ) -> Iterator[str]:
            for x in xs:
                yield f"{prefix}{x * (scale or 1)}{where.name}"

        items = list(Pipeline.source(numbers, n=2, start=1).then(
            label, prefix=None, scale=2, where=Path("/tmp/x")))
        print(items, "typeguard" in sys.modules)
        """
    )
    assert out == "['None2x', 'None4x'] False"


def test_a_first_run_imports_no_optional_or_heavy_module() -> None:
    """Import, build and run with int and Iterator[int] annotations: none of typeguard,
    typing_inspect, asyncio, logging or rich is imported (each costs start-up time)."""
    out = run_fresh(
        """
        import sys
        from collections.abc import Iterable, Iterator
        from pipeline_executor import Pipeline

        def numbers(n: int) -> Iterator[int]:
            yield from range(n)

        def add(xs: Iterable[int], k: int) -> Iterator[int]:
            for x in xs:
                yield x + k

        assert Pipeline.source(numbers, n=3).then(add, k=1).sink(sum).run() == 6
        heavy = {"typeguard", "typing_inspect", "typing_extensions", "asyncio", "logging", "rich"}
        print(sorted(heavy & set(sys.modules)))
        """
    )
    assert out == "[]"


def test_a_generic_annotation_still_goes_to_typeguard() -> None:
    """list[int] needs typeguard: it is imported then, and the check happens."""
    out = run_fresh(
        """
        import sys
        from collections.abc import Iterator
        from pipeline_executor import Pipeline

        def listed(values: list[int]) -> Iterator[int]:
            yield from values

        Pipeline.source(listed, values=[1, 2])
        print("typeguard" in sys.modules)
        """
    )
    assert out == "True"


@pytest.mark.parametrize(
    ("value", "annotation"),
    [
        (1, int),
        (True, int),
        (1, float),
        (1, complex),
        (1.5, complex),
        (bytearray(b"x"), bytes),
        (memoryview(b"x"), bytes),
        (None, None),
        (None, Optional[int]),  # noqa: UP045  # the typing spelling, on purpose
        ("a", Union[int, str]),  # noqa: UP007  # the typing spelling, on purpose
        (3, int | None),
        ("anything", Any),
        (Path("/"), Path),
        (object(), object),
    ],
)
def test_plain_annotations_accept_what_typeguard_accepts(value: object, annotation: object) -> None:
    """isinstance with typeguard's promotions: int is a float, bytearray is bytes."""
    assert mismatch(value, annotation) is None


@pytest.mark.parametrize(
    ("value", "annotation", "reason"),
    [
        ("2", int, "str is not an instance of int"),
        ("2", float, "str is neither float or int"),
        (1.5, int, "float is not an instance of int"),
        ("x", bytes, "str is not bytes-like"),
        (1, None, "int is not None"),
    ],
)
def test_a_plain_mismatch_is_explained_in_typeguards_words(
    value: object, annotation: object, reason: str
) -> None:
    """A value that fails isinstance is handed to typeguard, so the reason reads the same."""
    assert str(mismatch(value, annotation)) == reason


def test_a_plain_constant_mismatch_names_the_stage_and_the_reason() -> None:
    """The builder's message for a plain-class constant, end to end."""

    def scaled(xs: Iterable[int], factor: float | None) -> Iterator[float]:
        for x in xs:
            yield x * (factor or 1)

    message = (
        "stage 2 'scaled' (then) expects its constant 'factor' to be float | None, but got "
        "'2' (str): str did not match any element in the union:\n"
        "  float: is neither float or int\n  NoneType: is not an instance of NoneType"
    )
    with pytest.raises(PipelineTypeError, match=exact(message)):
        untyped.then(scaled, factor="2")


class Named(Protocol):
    name: str


class Point(TypedDict):
    x: int


class Thing:
    name = "thing"


def test_protocols_and_typeddicts_are_left_to_typeguard() -> None:
    """isinstance is not exact (or refuses) for these: typeguard checks them structurally."""
    assert mismatch(Thing(), Named) is None
    assert mismatch(object(), Named) is not None
    assert mismatch({"x": 1}, Point) is None
    assert mismatch({"x": "1"}, Point) is not None


class CountingList(list[object]):
    """A list that counts how many of its items were read by iteration."""

    read = 0

    def __iter__(self) -> Iterator[object]:
        for item in super().__iter__():
            CountingList.read += 1
            yield item


def test_a_collection_up_to_the_sample_limit_is_checked_in_full() -> None:
    """At most SAMPLE_ABOVE elements: a bad last element is found."""
    values: list[object] = [*range(SAMPLE_ABOVE - 1), "x"]
    assert "item 999 of list is not an instance of int" in str(mismatch(values, list[int]))


def test_a_larger_collection_is_checked_by_its_first_item() -> None:
    """Past SAMPLE_ABOVE elements, only the first is read: a bad last element goes unseen."""
    CountingList.read = 0
    values = CountingList([*range(SAMPLE_ABOVE), "x"])
    assert mismatch(values, list[int]) is None
    assert CountingList.read <= 1
    assert mismatch(CountingList(["x", *range(SAMPLE_ABOVE)]), list[int]) is not None


def test_nested_collections_count_towards_the_sample_limit() -> None:
    """Ten lists of 200 are 2,000 elements: sampled, though each list is small."""
    nested: list[list[object]] = [list(range(200)) for _ in range(10)]
    nested[-1][-1] = "x"
    assert mismatch(nested, list[list[int]]) is None
    small: list[list[object]] = [list(range(90)) for _ in range(10)]
    small[-1][-1] = "x"
    assert mismatch(small, list[list[int]]) is not None


def test_a_dict_counts_its_entries_and_what_they_hold() -> None:
    """A dict of SAMPLE_ABOVE entries is sampled; so is a small dict of large lists."""
    table: dict[object, object] = {i: i for i in range(SAMPLE_ABOVE)}
    table["x"] = 1
    assert mismatch(table, dict[int, int]) is None
    table = {i: i for i in range(SAMPLE_ABOVE - 1)}
    table["x"] = 1
    assert mismatch(table, dict[int, int]) is not None
    lists: dict[str, list[object]] = {"a": [0], "b": [*range(SAMPLE_ABOVE), "x"]}
    assert mismatch(lists, dict[str, list[int]]) is None
