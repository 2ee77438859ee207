"""One set of promises, kept by every engine: threads, worker processes and Ray actors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from pipeline_executor import Pipeline, RayEngine, RunnablePipeline
from tests import conformance_stages as cs

N = 400


@dataclass(frozen=True)
class Engine:
    """How a test runs its pipelines: the stage option that makes k instances, and the
    engine passed to ``run``/``iter``."""

    kind: str
    engine: RayEngine | None

    def workers(self, k: int) -> dict[str, Any]:
        return {"processes": k} if self.kind == "processes" else {"threads": k}

    def run(self, pipeline: RunnablePipeline[Any]) -> object:
        return pipeline.run(engine=self.engine)

    def iter(self, pipeline: Pipeline[Any]) -> Iterator[Any]:
        return pipeline.iter(engine=self.engine)


@pytest.fixture(params=["threads", "processes", "ray"])
def under(request: pytest.FixtureRequest) -> Engine:
    """Each engine in turn (Ray on the session's cluster)."""
    if request.param == "ray":
        request.getfixturevalue("ray_cluster")
        return Engine("ray", RayEngine(chunk=16))
    return Engine(str(request.param), None)


def test_results_are_those_of_the_plain_composition(under: Engine) -> None:
    """Two instances of the middle stage give the sum the plain functions give."""
    pipeline = Pipeline.source(cs.numbers, n=N).then(cs.square, **under.workers(2)).sink(cs.total)
    assert under.run(pipeline) == sum(x * x for x in range(N))


def test_one_worker_keeps_the_order(under: Engine) -> None:
    """With one instance per stage, items arrive in the order the source made them."""
    pipeline = Pipeline.source(cs.numbers, n=N).then(cs.square, **under.workers(1))
    assert list(under.iter(pipeline)) == [x * x for x in range(N)]


def test_the_prologue_runs_once_per_worker(under: Engine) -> None:
    """A generator's setup runs once per instance, however many items it handles."""
    pipeline = Pipeline.source(cs.numbers, n=N).then(cs.tagged, **under.workers(2))
    items = list(under.iter(pipeline))
    assert sorted(x for _, x in items) == list(range(N))
    assert 1 <= len({token for token, _ in items}) <= 2


def test_a_stage_that_ends_early_stops_its_upstream(under: Engine) -> None:
    """A stage that returns after 5 items ends an endless source, and the run returns."""
    pipeline = Pipeline.source(cs.forever).then(cs.first, n=5, **under.workers(1))
    assert list(under.iter(pipeline)) == [0, 1, 2, 3, 4]


def test_break_stops_everything_and_a_fresh_run_works(under: Engine) -> None:
    """Leaving the loop over an endless pipeline returns; the next run is whole."""
    for x in under.iter(Pipeline.source(cs.forever).then(cs.square, **under.workers(1))):
        if x >= 9:
            break
    pipeline = Pipeline.source(cs.numbers, n=N).then(cs.square, **under.workers(1))
    assert under.run(pipeline.sink(cs.total)) == sum(x * x for x in range(N))


def test_close_stops_everything(under: Engine) -> None:
    """close() on the iterator of an endless pipeline stops it and returns."""
    items = under.iter(Pipeline.source(cs.forever).then(cs.square, **under.workers(2)))
    assert next(items) >= 0
    close = getattr(items, "close")  # noqa: B009 - a PipelineIterator
    close()
    with pytest.raises(StopIteration):
        next(items)


def test_a_stage_error_arrives_as_itself_with_the_stage_named(under: Engine) -> None:
    """The stage's exception type, message and attributes reach the caller, with a note."""
    pipeline = Pipeline.source(cs.numbers, n=N).then(cs.fail_at, at=7, **under.workers(1))
    with pytest.raises(cs.StageError, match=r"^bad 7\n") as caught:
        under.run(pipeline.sink(cs.total))
    assert (str(caught.value), caught.value.code) == ("bad 7", 7)
    notes = getattr(caught.value, "__notes__", [])
    assert notes[0].startswith("pipeline_executor: raised by stage 2 'fail_at' (then) in ")


def test_a_failing_prologue_arrives_as_itself(under: Engine) -> None:
    """An exception raised before the generator's first item reaches the caller as itself."""
    pipeline = Pipeline.source(cs.numbers, n=N).then(cs.fail_in_prologue, **under.workers(2))
    with pytest.raises(cs.StageError, match=r"^no model\n") as caught:
        under.run(pipeline.sink(cs.total))
    assert caught.value.code == -1


def test_a_fresh_run_after_a_failed_one_is_whole(under: Engine) -> None:
    """A failure leaves nothing behind that spoils the next run."""
    failing = Pipeline.source(cs.numbers, n=N).then(cs.fail_at, at=3, **under.workers(2))
    with pytest.raises(cs.StageError):
        under.run(failing.sink(cs.total))
    pipeline = Pipeline.source(cs.numbers, n=N).then(cs.square, **under.workers(2))
    assert under.run(pipeline.sink(cs.total)) == sum(x * x for x in range(N))
