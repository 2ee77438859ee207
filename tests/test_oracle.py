"""Hypothesis: a threaded pipeline gives what the plain sequential composition gives."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline_executor import Pipeline

Stage = Callable[[Iterable[int]], Iterator[int]]


def mapped(xs: Iterable[int], k: int) -> Iterator[int]:
    for x in xs:
        yield x * k + 1


def filtered(xs: Iterable[int], k: int) -> Iterator[int]:
    for x in xs:
        if x % (k + 2):
            yield x


def flat(xs: Iterable[int], k: int) -> Iterator[int]:
    for x in xs:
        yield from [x] * (x % (k + 1) % 4)


def tail(xs: Iterable[int], k: int) -> Iterator[int]:
    yield from xs
    yield from range(k)


STAGES = [mapped, filtered, flat, tail]

stage_specs = st.lists(
    st.tuples(st.sampled_from(STAGES), st.integers(0, 5), st.integers(1, 4), st.integers(1, 16)),
    max_size=5,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(st.integers(-1000, 1000), max_size=300), specs=stage_specs)
def test_threaded_pipeline_equals_sequential_composition(
    items: list[int], specs: list[tuple[Callable[..., Iterator[int]], int, int, int]]
) -> None:
    """Same multiset of outputs; the same sequence when every stage runs on one thread."""
    want: list[int] = items
    pipeline = Pipeline.from_iterable(items)
    for fn, k, threads, buffer in specs:
        want = sequential(fn, want, k, threads)
        stage: Stage = functools.partial(fn, k=k)
        pipeline = pipeline.then(stage, threads=threads, buffer=max(buffer, threads))
    got = list(pipeline)
    if all(threads == 1 for _, _, threads, _ in specs):
        assert got == want
    else:
        assert Counter(got) == Counter(want)


def sequential(fn: Callable[..., Iterator[int]], xs: list[int], k: int, threads: int) -> list[int]:
    """What a stage on `threads` instances yields, as a multiset, computed in one thread."""
    if fn is tail:  # every instance appends its own tail after its share of the input
        return [*xs, *list(range(k)) * threads]
    return list(fn(xs, k))  # stateless per item: how items are shared does not matter
