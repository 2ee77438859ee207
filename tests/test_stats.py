"""Statistics, the bottleneck verdict, progress callbacks and the live display."""

from __future__ import annotations

import hashlib
import io
import sys
import threading
import time
from collections.abc import Iterable, Iterator

import pytest

from pipeline_executor import (
    BufferStatistics,
    Monitor,
    Pipeline,
    PipelineDefinitionError,
    PipelineError,
    PipelineStats,
    StageState,
    StageStats,
)

from .stages import Boom, add_one, numbers, total

WAIT = 10.0


def stage(
    position: int,
    role: str,
    *,
    busy: float = 0.0,
    starved: float = 0.0,
    blocked: float = 0.0,
    threads: int = 1,
    cpu: float | None = None,
) -> StageStats:
    """A synthetic stage snapshot (over a 10 s run)."""
    return StageStats(
        position=position,
        name=f"s{position}",
        role=role,
        threads=threads,
        state=StageState.FINISHED,
        items_in=0 if role == "source" else 100,
        items_out=0 if role == "sink" else 100,
        busy=busy,
        starved=starved,
        blocked=blocked,
        cpu=cpu,
        buffer=None if role == "sink" else BufferStatistics(8, 0, 0, 8, 100, 100, 0, 0),
    )


def run_of(*stages: StageStats) -> PipelineStats:
    return PipelineStats(elapsed=10.0, stages=stages, running=False)


# -- the verdict on known numbers ----------------------------------------------------------


def test_verdict_names_the_busy_stage_and_its_blocked_upstream() -> None:
    """The issue's example: a busy middle stage with a blocked source."""
    stats = run_of(
        stage(1, "source", busy=3.0, blocked=6.2),
        stage(2, "then", busy=19.4, threads=2, cpu=1.0),
        stage(3, "sink", busy=0.5, starved=9.5),
    )
    assert stats.verdict() == (
        "bottleneck: 's2' (busy 97% on 2 thread(s); upstream 's1' blocked 62%) "
        "-> give 's2' more threads"
    )


def test_verdict_source_bound() -> None:
    """Every other stage starving more than 80%: the source is the limit."""
    stats = run_of(
        stage(1, "source", busy=9.8),
        stage(2, "then", busy=0.5, starved=9.5),
        stage(3, "sink", busy=0.2, starved=9.8),
    )
    assert stats.verdict() == "source-bound: every stage starves more than 80% -> speed up 's1'"


def test_verdict_cpu_bound_under_the_gil() -> None:
    """Two threads busy all the time but one CPU between them: the GIL."""
    stats = run_of(
        stage(1, "source", busy=1.0, blocked=9.0),
        stage(2, "then", busy=19.0, threads=2, cpu=9.5),
        stage(3, "sink", busy=0.5, starved=9.5),
    )
    assert stats.verdict() == (
        "bottleneck: 's2' (busy 95% on 2 thread(s); upstream 's1' blocked 90%) -> CPU-bound "
        "under the GIL (0.9 CPUs on 2 threads): more threads will not help; use processes or "
        "code that releases the GIL"
    )


def test_verdict_consumer_bound_when_the_caller_is_slow() -> None:
    """Iterating: the last stage waits for the caller most of the time."""
    stats = run_of(stage(1, "source", busy=1.0, blocked=9.0), stage(2, "then", blocked=9.0))
    assert stats.verdict().startswith("consumer-bound: 's2' waits 90% of the time for the caller")


def test_verdict_no_bottleneck() -> None:
    """Nothing busy half of the time."""
    stats = run_of(stage(1, "source", busy=2.0), stage(2, "sink", busy=3.0, starved=1.0))
    assert stats.verdict() == (
        "no bottleneck: no stage is busy half of the time (busiest 's2' 30%)"
    )


def test_the_report_is_a_table_ending_with_the_verdict() -> None:
    """str(stats) is the report: a header, one row per stage, the verdict."""
    stats = run_of(stage(1, "source", busy=9.8), stage(2, "sink", busy=0.2, starved=9.8))
    lines = str(stats).splitlines()
    assert lines[0].split() == [
        "stage", "threads", "in", "out", "items/s", "busy", "starved", "blocked", "buffer"
    ]  # fmt: skip
    assert lines[1].split() == ["1", "s1", "(source)", "1", "-", "100", "10", "98%", "0%", "0%",
                                "8/8"]  # fmt: skip
    assert lines[2].split() == ["2", "s2", "(sink)", "1", "100", "-", "10", "2%", "98%", "0%", "-"]
    assert lines[3] == (
        "ended after 10.00 s; source-bound: every stage starves more than 80% -> speed up 's1'"
    )
    assert stats.report() == str(stats)


# -- the verdict on real pipelines whose bottleneck is known -------------------------------


def sleepy(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        time.sleep(0.003)  # sleep-ok: the deliberate workload of a slow, GIL-free stage
        yield x


def spin(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        n = 0
        for i in range(20_000):  # pure Python: holds the GIL
            n += i
        yield x + n - n


def slow_source(n: int) -> Iterator[int]:
    for i in range(n):
        time.sleep(0.003)  # sleep-ok: the deliberate workload of a slow source
        yield i


def slow_sink(xs: Iterable[int]) -> int:
    count = 0
    for _ in xs:
        time.sleep(0.003)  # sleep-ok: the deliberate workload of a slow sink
        count += 1
    return count


def final_stats(runnable: object) -> PipelineStats:
    monitor = Monitor()
    runnable.run(monitor=monitor)  # type: ignore[attr-defined]
    return monitor.stats()


def test_a_sleeping_stage_is_the_bottleneck_and_more_threads_would_help() -> None:
    """A stage sleeping per item: busy, little CPU, its source blocked."""
    stats = final_stats(Pipeline.source(numbers, 4, n=150).then(sleepy, buffer=4).sink(total))
    assert stats.verdict().startswith("bottleneck: 'sleepy' (busy ")
    assert "upstream 'numbers' blocked" in stats.verdict()
    assert stats.verdict().endswith("-> give 'sleepy' more threads")


def test_a_pure_python_stage_on_two_threads_is_cpu_bound_under_the_gil() -> None:
    """Two spinning threads share one interpreter lock."""
    stats = final_stats(
        Pipeline.source(numbers, 4, n=300).then(spin, threads=2, buffer=4).sink(total)
    )
    assert stats.verdict().startswith("bottleneck: 'spin' (busy ")
    assert "CPU-bound under the GIL" in stats.verdict()


def test_a_slow_source_makes_the_pipeline_source_bound() -> None:
    """Everything downstream starves."""
    stats = final_stats(Pipeline.source(slow_source, n=150).then(add_one).sink(total))
    assert stats.verdict() == (
        "source-bound: every stage starves more than 80% -> speed up 'slow_source'"
    )


def test_a_slow_sink_is_the_bottleneck() -> None:
    """The sink is busy; its upstream is blocked."""
    stats = final_stats(Pipeline.source(numbers, 4, n=150).then(add_one, buffer=4).sink(slow_sink))
    assert stats.verdict().startswith("bottleneck: 'slow_sink' (busy ")
    assert "upstream 'add_one' blocked" in stats.verdict()


# -- snapshots, progress callbacks, final statistics ----------------------------------------


def test_final_statistics_count_every_item_and_every_stage_finished() -> None:
    """After the run: exact items in and out, states, buffer peaks within their size."""
    monitor = Monitor()
    assert Pipeline.source(numbers, 16, n=1000).then(add_one, 2, 8).sink(total).run(
        monitor=monitor
    ) == sum(range(1, 1001))
    stats = monitor.stats()
    assert not stats.running
    assert [(s.name, s.items_in, s.items_out, s.state) for s in stats.stages] == [
        ("numbers", 0, 1000, StageState.FINISHED),
        ("add_one", 1000, 1000, StageState.FINISHED),
        ("total", 1000, 0, StageState.FINISHED),
    ]
    peaks = [s.buffer.peak_used if s.buffer else None for s in stats.stages]
    assert peaks[2] is None
    assert 1 <= (peaks[0] or 0) <= 16
    assert 1 <= (peaks[1] or 0) <= 8
    for s in stats.stages:
        assert min(s.busy, s.starved, s.blocked) >= 0
        assert s.busy + s.starved + s.blocked <= s.threads * stats.elapsed + 0.05


def test_a_snapshot_can_be_taken_from_another_thread_while_it_runs() -> None:
    """The main thread reads live statistics while run() goes on in another thread."""
    reached = threading.Event()
    release = threading.Event()

    def pauses(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            if x == 100:
                reached.set()
                release.wait(WAIT)  # returns when the test has looked
            yield x

    monitor = Monitor()
    runnable = Pipeline.source(numbers, 16, n=500).then(pauses, buffer=16).sink(total)
    runner = threading.Thread(target=runnable.run, kwargs={"monitor": monitor})
    runner.start()
    try:
        assert reached.wait(WAIT)
        live = monitor.stats()
    finally:
        release.set()
        runner.join(WAIT)
    assert live.running
    pauses_stats = live.stages[1]
    assert pauses_stats.state is StageState.RUNNING
    assert pauses_stats.items_in == 101  # items 0..100, the last one held
    assert pauses_stats.items_out == 100
    assert live.stages[2].items_in <= 100
    assert not monitor.stats().running
    assert monitor.stats().stages[2].items_in == 500


def test_on_progress_is_called_at_the_interval_and_once_at_the_end() -> None:
    """The callback gets live snapshots while the run goes on, then the final one."""
    seen: list[PipelineStats] = []
    twice = threading.Event()

    def on_progress(stats: PipelineStats) -> None:
        seen.append(stats)
        if len(seen) == 2:
            twice.set()

    def waits_for_two_reports(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            if x == 10:
                assert twice.wait(WAIT)
            yield x

    monitor = Monitor(on_progress, interval=0.01)
    Pipeline.source(numbers, n=20).then(waits_for_two_reports).sink(total).run(monitor=monitor)
    assert len(seen) >= 3
    assert all(s.running for s in seen[:2])
    assert not seen[-1].running
    assert seen[-1] == monitor.stats()


def test_a_failing_progress_callback_stops_the_pipeline() -> None:
    """An exception in on_progress is raised by run(), the callback named."""

    def on_progress(stats: PipelineStats) -> None:
        raise Boom("callback")

    def endless_slowly(xs: Iterable[int]) -> Iterator[int]:
        yield from xs

    monitor = Monitor(on_progress, interval=0.001)
    with pytest.raises(Boom) as info:
        Pipeline.source(endless_slowly_source).then(endless_slowly).sink(total).run(monitor=monitor)
    assert getattr(info.value, "__notes__", [])[0] == (
        "pipeline_executor: raised by the on_progress callback"
    )


def endless_slowly_source() -> Iterator[int]:
    n = 0
    while True:
        hashlib.sha256(b"x" * 1000).digest()
        yield n
        n += 1


def test_a_monitor_watches_one_run_at_a_time_and_says_when_it_has_none() -> None:
    """stats() before any run, and a second concurrent run, are errors."""
    monitor = Monitor()
    with pytest.raises(PipelineError, match=r"^this Monitor has not watched a run yet"):
        monitor.stats()
    items = Pipeline.from_iterable(range(10)).iter(monitor=monitor)
    assert next(items) == 0
    with pytest.raises(PipelineDefinitionError, match=r"^Monitor: it is watching another run"):
        Pipeline.from_iterable(range(3)).sink(total).run(monitor=monitor)
    items.close()  # type: ignore[attr-defined]
    assert not monitor.stats().running


@pytest.mark.parametrize("interval", [0, -1, "1", True, float("nan"), float("inf")])
def test_a_bad_interval_is_rejected(interval: object) -> None:
    """interval must be a number > 0."""
    with pytest.raises(PipelineDefinitionError, match=r"^Monitor: interval must be a number"):
        Monitor(interval=interval)  # type: ignore[arg-type]


# -- the live display -----------------------------------------------------------------------


def test_the_progress_display_draws_the_stages_into_a_terminal() -> None:
    """progress=<file> draws the table there, with the verdict, as on a terminal."""
    pytest.importorskip("rich", reason="the progress extra is not installed; CI installs it")
    screen = io.StringIO()
    Pipeline.source(numbers, n=100).then(add_one).sink(total).run(progress=screen)
    drawn = screen.getvalue()
    assert "\x1b[" in drawn  # drawn as on a terminal
    for text in ("stage", "items/s", "1 numbers", "2 add_one", "3 total", "100"):
        assert text in drawn


def test_progress_true_writes_nothing_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Piped or captured output stays clean."""
    Pipeline.source(numbers, n=10).sink(total).run(progress=True)
    assert capsys.readouterr().err == ""


def test_progress_without_rich_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The optional extra is named."""
    monkeypatch.setitem(sys.modules, "rich.console", None)
    with pytest.raises(
        PipelineDefinitionError,
        match=r"^pipeline: progress needs the optional extra 'progress' \(rich\): "
        r"pip install 'pipeline_executor\[progress\]'$",
    ):
        Pipeline.source(numbers, n=10).sink(total).run(progress=io.StringIO())
