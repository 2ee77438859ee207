"""Hypothesis: a threaded pipeline gives what the plain sequential composition gives.

Random pipelines of 1-6 stages from a library of stage kinds, random threads (1-4) and buffers
(1-16, or auto with budgets and item sizes that make them resize), random inputs (0-2,000
items): the outputs equal the sequential composition of the same generators, as a multiset,
and as a sequence when every stage runs on one thread. Stages whose output depends on the
order of their input (batching, take-first-n, running sums) run on one thread, and only where
everything before them keeps the order; elsewhere they become maps. The pipelines run with
per-item type checks on, so every item is also checked against its stage's declared type.
``--hypothesis-profile=stress`` runs 5,000 examples.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline_executor import AutoBuffer, Pipeline

from .stages import batch

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
        yield from [x] * ((x + k) % 4)  # 1 -> 0..3


def batch_unbatch(xs: Iterable[int], k: int) -> Iterator[int]:
    """Stands for the pair batch(k + 1) then unbatch, composed sequentially."""
    yield from xs


def unbatch(chunks: Iterable[list[int]]) -> Iterator[int]:
    for chunk in chunks:
        yield from chunk


def take(xs: Iterable[int], k: int) -> Iterator[int]:
    for i, x in enumerate(xs):
        if i == k * 7:
            return
        yield x


def running_sum(xs: Iterable[int], k: int) -> Iterator[int]:
    total = k
    for x in xs:
        total += x
        yield total


PER_ITEM = [mapped, filtered, flat, batch_unbatch]
ORDERED = [take, running_sum]


def size_of_item(item: object) -> int:
    """Item sizes that swing (1 B to 10 kB), so that auto buffers keep resizing."""
    return abs(item) * 10 + 1 if isinstance(item, int) else 100 * len(item)  # type: ignore[arg-type]


# Auto buffers with budgets of 1 to 20 items of the largest size: every resize rule runs.
auto_buffers = st.builds(
    AutoBuffer, max_bytes=st.integers(1, 200_000), sizeof=st.just(size_of_item)
)

specs = st.lists(
    st.tuples(
        st.sampled_from(PER_ITEM + ORDERED),
        st.integers(0, 5),  # k
        st.integers(1, 4),  # threads
        st.one_of(st.integers(1, 16), auto_buffers),  # buffer
    ),
    min_size=1,
    max_size=6,
)


# At least 200 examples; more under a profile that asks for more (--hypothesis-profile=stress).
@settings(max_examples=max(200, settings().max_examples), deadline=None)
@given(items=st.lists(st.integers(-1000, 1000), max_size=2000), stages=specs)
def test_threaded_pipeline_equals_sequential_composition(
    items: list[int],
    stages: list[tuple[Callable[..., Iterator[int]], int, int, int | AutoBuffer]],
) -> None:
    """Same multiset of outputs; the same sequence when every stage runs on one thread."""
    want: list[int] = items
    pipeline = Pipeline.from_iterable(items, buffer=16).with_item_checks()  # every item typed
    ordered = True
    for fn, k, threads, buffer in stages:
        if fn in ORDERED and not ordered:
            fn = mapped  # its output would depend on an order nobody promised
        if fn in ORDERED:
            threads = 1
        ordered = ordered and threads == 1
        if isinstance(buffer, int):
            buffer = max(buffer, threads)
        want = list(fn(want, k))
        if fn is batch_unbatch:  # two real stages, each on its own threads
            pipeline = pipeline.then(batch, threads=threads, buffer=buffer, size=k + 1).then(
                unbatch, threads=threads, buffer=buffer
            )
        else:
            stage: Stage = functools.partial(fn, k=k)
            pipeline = pipeline.then(stage, threads=threads, buffer=buffer)
    got = list(pipeline)
    if ordered:
        assert got == want
    else:
        assert Counter(got) == Counter(want)


process_specs = st.lists(
    st.tuples(
        st.sampled_from([mapped, filtered, flat, *ORDERED]),
        st.integers(0, 5),  # k
        st.integers(1, 2),  # instances
        st.integers(1, 16),  # buffer
        st.booleans(),  # in worker processes
    ),
    min_size=1,
    max_size=3,
)


# Fewer examples than the threaded oracle: each starts worker processes (fork, ~10 ms).
@settings(max_examples=max(30, settings().max_examples // 10), deadline=None)
@given(items=st.lists(st.integers(-1000, 1000), max_size=2000), stages=process_specs)
def test_pipeline_with_process_stages_equals_sequential_composition(
    items: list[int], stages: list[tuple[Callable[..., Iterator[int]], int, int, int, bool]]
) -> None:
    """With process stages mixed in, the outputs are still the sequential composition's."""
    want: list[int] = items
    pipeline = Pipeline.from_iterable(items, buffer=16).with_item_checks()
    ordered = True
    for fn, k, instances, buffer, in_processes in stages:
        if fn in ORDERED and not ordered:
            fn = mapped
        if fn in ORDERED:
            instances = 1
        ordered = ordered and instances == 1
        buffer = max(buffer, instances)
        want = list(fn(want, k))
        stage: Stage = functools.partial(fn, k=k)
        if in_processes:
            pipeline = pipeline.then(stage, processes=instances, buffer=buffer)
        else:
            pipeline = pipeline.then(stage, threads=instances, buffer=buffer)
    got = list(pipeline.iter(start_method="fork"))
    if ordered:
        assert got == want
    else:
        assert Counter(got) == Counter(want)


def times(x: int, k: int) -> int:
    return x * k + 1


def kept(x: int, k: int) -> bool:
    return bool(x % (k + 2))


def copies(x: int, k: int) -> list[int]:
    return [x] * ((x + k) % 4)


OPERATORS = ["map", "filter", "flat_map", "batch", "unbatch", "take", "then"]

operator_specs = st.lists(
    st.tuples(
        st.sampled_from(OPERATORS),
        st.integers(0, 5),  # k
        st.integers(1, 4),  # threads
        st.integers(1, 16),  # buffer
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=max(200, settings().max_examples), deadline=None)
@given(items=st.lists(st.integers(-1000, 1000), max_size=2000), stages=operator_specs)
def test_ordered_operators_equal_sequential_composition_exactly(
    items: list[int], stages: list[tuple[str, int, int, int]]
) -> None:
    """Any chain of ordered operators on 1-4 threads gives exactly the sequential result."""
    want: list[Any] = list(items)
    pipeline: Pipeline[Any] = Pipeline.from_iterable(items, buffer=16)
    batched = False  # whether the items are lists now (from batch, until unbatch)
    for name, k, threads, buffer in stages:
        buffer = max(buffer, threads)
        if name == "batch" or (batched and name != "unbatch"):
            if batched:  # undo the batch first, so that every operator sees ints
                want = [x for chunk in want for x in chunk]
                pipeline = pipeline.unbatch(buffer=buffer)
            want = [want[i : i + k + 1] for i in range(0, len(want), k + 1)]
            pipeline = pipeline.batch(k + 1, buffer=buffer)
            batched = True
            if name == "batch":
                continue
        if name == "unbatch":
            if batched:
                want = [x for chunk in want for x in chunk]
                pipeline = pipeline.unbatch(buffer=buffer)
                batched = False
            continue
        if batched:
            want = [x for chunk in want for x in chunk]
            pipeline = pipeline.unbatch(buffer=buffer)
            batched = False
        if name == "map":
            want = [times(x, k) for x in want]
            pipeline = pipeline.map(times, threads=threads, buffer=buffer, k=k)
        elif name == "filter":
            want = [x for x in want if kept(x, k)]
            pipeline = pipeline.filter(kept, threads=threads, buffer=buffer, k=k)
        elif name == "flat_map":
            want = [y for x in want for y in copies(x, k)]
            pipeline = pipeline.flat_map(copies, threads=threads, buffer=buffer, k=k)
        elif name == "take":
            want = want[: k * 7]
            pipeline = pipeline.take(k * 7, buffer=buffer)
        else:
            want = list(filtered(want, k))
            stage: Stage = functools.partial(filtered, k=k)
            pipeline = pipeline.then(stage, threads=threads, buffer=buffer, ordered=True)
    assert list(pipeline) == want
