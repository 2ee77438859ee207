"""Statistics, the bottleneck verdict, progress callbacks and the live display."""

from __future__ import annotations

import hashlib
import re
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
    peak: int = 8,
    capacity: int = 8,
    threadable: bool | None = None,
    items: int = 100,
    processes: bool = False,
) -> StageStats:
    """A synthetic stage snapshot (over a 10 s run, ``items`` items through it)."""
    return StageStats(
        position=position,
        name=f"s{position}",
        role=role,
        threads=threads,
        state=StageState.FINISHED,
        items_in=0 if role == "source" else items,
        items_out=0 if role == "sink" else items,
        busy=busy,
        starved=starved,
        blocked=blocked,
        cpu=cpu,
        buffer=None
        if role == "sink"
        else BufferStatistics(
            capacity=capacity,
            used=0,
            queued=0,
            peak_used=peak,
            items_in=items,
            items_out=items,
            producers=0,
            consumers=0,
        ),
        threadable=role != "source" if threadable is None else threadable,
        processes=processes,
    )


def run_of(
    *stages: StageStats,
    elapsed: float = 10.0,
    process_cpu: float | None = None,
    cpus: int | None = 8,
    running: bool = False,
) -> PipelineStats:
    return PipelineStats(
        elapsed=elapsed, stages=stages, running=running, process_cpu=process_cpu, cpus=cpus
    )


# -- the verdict on known numbers ----------------------------------------------------------


def test_verdict_names_the_busy_stage_and_its_blocked_upstream() -> None:
    """A busy middle stage that waits, with a blocked source: give it threads."""
    stats = run_of(
        stage(1, "source", busy=3.0, blocked=6.2, cpu=0.1),
        stage(2, "then", busy=19.4, threads=2, cpu=1.0),
        stage(3, "sink", busy=0.5, starved=9.5, cpu=0.1),
        process_cpu=1.2,
    )
    assert stats.verdict() == (
        "bottleneck: 's2' (busy 97% on 2 thread(s); upstream 's1' blocked 62%) "
        "-> give 's2' more threads"
    )


def test_verdict_source_bound_advises_what_a_one_thread_source_can_do() -> None:
    """Every later stage starving: speed up the source or move work out of it, never threads."""
    stats = run_of(
        stage(1, "source", busy=9.8, cpu=0.2),
        stage(2, "then", busy=0.5, starved=9.5, cpu=0.1),
        stage(3, "sink", busy=0.2, starved=9.8, cpu=0.1),
        process_cpu=0.5,
    )
    assert stats.verdict() == (
        "source-bound: every later stage waits for 's1' more than 80% of the time -> a source "
        "runs on one thread: speed up 's1', or move its slow part into a then() stage with "
        "threads after it"
    )


def test_verdict_cpu_bound_under_the_gil_when_the_whole_process_uses_one_cpu() -> None:
    """Two threads computing, one CPU for the whole process: the GIL, said as likely."""
    stats = run_of(
        stage(1, "source", busy=1.0, blocked=9.0, cpu=0.3),
        stage(2, "then", busy=19.0, threads=2, cpu=9.5),
        stage(3, "sink", busy=0.5, starved=9.5, cpu=0.2),
        process_cpu=10.0,
    )
    assert stats.verdict() == (
        "bottleneck: 's2' (busy 95% on 2 thread(s); upstream 's1' blocked 90%) -> likely "
        "CPU-bound under the GIL (2 threads used 0.9 CPU, the whole process 1.0): more threads "
        "will not help; use worker processes or code that releases the GIL"
    )


def _process_stage_run(workers_cpu: float, cpus: int) -> PipelineStats:
    """A 10 s run whose middle stage has 2 worker processes, busy 98% of it, whose CPU in
    all was ``workers_cpu`` seconds, on a machine of ``cpus`` CPUs."""
    return run_of(
        stage(1, "source", busy=1.0, blocked=9.0, cpu=0.3),
        stage(2, "then", busy=19.5, threads=2, cpu=workers_cpu, processes=True),
        stage(3, "sink", busy=0.5, starved=9.5, cpu=0.2),
        process_cpu=1.0,
        cpus=cpus,
    )


def test_verdict_on_worker_processes_that_compute_advises_more_processes() -> None:
    """A process stage computing on both its workers, CPUs to spare: more processes, and
    never the GIL (its CPU is its workers', not the caller's)."""
    assert _process_stage_run(19.0, cpus=8).verdict() == (
        "bottleneck: 's2' (busy 98% on 2 worker process(es); upstream 's1' blocked 90%) -> "
        "its 2 worker process(es) compute all the time (1.9 CPUs): give 's2' more processes"
    )


def test_verdict_on_worker_processes_short_of_cpu_says_they_also_waited() -> None:
    """Workers busy all the time but on a CPU for 60% of it (a machine busy with other work,
    or I/O): not "compute all the time"; more processes only if CPUs are free."""
    verdict = _process_stage_run(11.7, cpus=8).verdict()
    assert verdict.endswith(
        "-> its 2 worker process(es) were on a CPU for 60% of their busy time (1.2 CPUs) and "
        "waited the rest, on I/O or for CPUs that other work held: give 's2' more processes if "
        "CPUs are free"
    )


def test_verdict_on_worker_processes_that_fill_the_machine_says_so() -> None:
    """Workers and caller together keep every CPU busy: more processes will not help."""
    verdict = _process_stage_run(19.0, cpus=2).verdict()
    assert verdict.endswith(
        "-> its 2 worker process(es) and this process kept the 2 CPU(s) busy (2.0 in use): "
        "more processes will not help; make 's2' cheaper or use more cores"
    )


def test_verdict_not_the_gil_when_the_process_used_more_cpus_than_its_threads() -> None:
    """Threads of a library (torch intra-op) count: 3 CPUs in all is not GIL-bound."""
    stats = run_of(
        stage(1, "source", busy=1.0, blocked=9.0, cpu=0.3),
        stage(2, "then", busy=19.0, threads=2, cpu=9.5),
        stage(3, "sink", busy=0.5, starved=9.5, cpu=0.2),
        process_cpu=30.0,
        cpus=8,
    )
    assert stats.verdict().endswith(
        "-> not held by the GIL (the process used 3.0 CPUs) -> give 's2' more threads"
    )
    assert "under the GIL" not in stats.verdict()


def test_verdict_all_cpus_busy_is_cpu_bound_not_gil_bound() -> None:
    """The process kept every CPU it may use busy: more threads will not help, nor processes."""
    stats = run_of(
        stage(1, "source", busy=1.0, blocked=9.0, cpu=0.3),
        stage(2, "then", busy=19.0, threads=2, cpu=9.5),
        stage(3, "sink", busy=0.5, starved=9.5, cpu=0.2),
        process_cpu=19.6,
        cpus=2,
    )
    assert stats.verdict().endswith(
        "-> the process kept the 2 CPU(s) it may use busy (2.0 in use): CPU-bound, more "
        "threads will not help; make 's2' cheaper or use more cores"
    )


def test_verdict_a_value_returning_sink_is_not_told_to_take_threads() -> None:
    """A sink that returns a value runs on one thread: the advice says what can help."""
    stats = run_of(
        stage(1, "source", busy=0.5, blocked=9.5, cpu=0.1),
        stage(2, "sink", busy=9.7, cpu=0.5, threadable=False),
        process_cpu=0.7,
    )
    assert stats.verdict() == (
        "bottleneck: 's2' (busy 97% on 1 thread(s); upstream 's1' blocked 95%) -> 's2' returns "
        "a value, so it runs on one thread: speed it up, move its work into a threaded stage "
        "before it, or make it return None (annotated '-> None') and give it threads"
    )


def test_verdict_a_sink_that_returns_none_may_take_threads() -> None:
    """The same numbers for a sink annotated '-> None': more threads is valid advice."""
    stats = run_of(
        stage(1, "source", busy=0.5, blocked=9.5, cpu=0.1),
        stage(2, "sink", busy=9.7, cpu=0.5, threadable=True),
        process_cpu=0.7,
    )
    assert stats.verdict().endswith("-> give 's2' more threads")


def test_verdict_a_source_filling_an_empty_buffer_is_not_the_bottleneck() -> None:
    """A busy source never blocked because its buffer is still filling: the sink limits."""
    stats = run_of(
        stage(1, "source", busy=9.9, cpu=0.5, peak=5000, capacity=8192),
        stage(2, "sink", busy=9.8, cpu=0.4, threadable=False),
        process_cpu=1.0,
    )
    verdict = stats.verdict()
    assert verdict.startswith(
        "bottleneck: 's2' (busy 98% on 1 thread(s); upstream 's1' is faster: the buffer "
        "between them is filling (5,000 of 8,192 at its peak, never full)) -> "
    )
    assert "speed up 's1'" not in verdict


def test_verdict_a_burst_in_a_buffer_is_not_a_backlog() -> None:
    """A peak that is a small share of the items that went through is no sign of filling."""
    busy_source = stage(1, "source", busy=9.9, cpu=0.5, peak=900, capacity=8192, items=10_000)
    sink = stage(2, "sink", busy=9.8, cpu=0.4, items=10_000)
    stats = run_of(busy_source, sink, process_cpu=1.0)
    assert stats.verdict().startswith("no clear bottleneck: 's1' is busy 99% of the time")


def test_verdict_blames_a_gil_bound_stage_upstream_not_the_starved_sink() -> None:
    """The ETL case: json parsing holds the GIL; the sink looks busy waiting for it."""
    stats = run_of(
        stage(1, "source", busy=1.0, blocked=9.0, cpu=0.5),
        stage(2, "then", busy=9.5, cpu=8.6),
        stage(3, "sink", busy=7.0, starved=3.0, cpu=0.8, threadable=False),
        process_cpu=9.9,
    )
    assert stats.verdict() == (
        "bottleneck: 's2' (busy 95% on 1 thread(s); upstream 's1' blocked 90%) -> it computes "
        "on its one thread (0.9 CPU, the whole process 1.0): more threads help only if its "
        "work releases the GIL (I/O, numpy, hashlib); pure Python needs worker processes"
    )


def test_verdict_a_stage_whose_consumer_starves_is_not_held_back_by_it() -> None:
    """Blocked time while the next stage starves is hand-off latency: the stage still limits."""
    stats = run_of(
        stage(1, "source", busy=0.1, blocked=9.9, cpu=0.1),
        stage(2, "then", busy=8.0, starved=6.0, blocked=6.0, threads=2, cpu=5.0),
        stage(3, "sink", busy=0.1, starved=9.9, cpu=0.1),
        process_cpu=5.3,
    )
    assert stats.verdict().startswith("bottleneck: 's2' (busy 50% on 2 thread(s); ")


@pytest.mark.parametrize(
    ("running", "expected"),
    [
        (False, "too short to judge (0.03 s; a verdict needs 0.5 s of run)"),
        (True, "too early to judge (0.03 s so far; a verdict needs 0.5 s of run)"),
    ],
)
def test_verdict_too_short_to_judge(running: bool, expected: str) -> None:
    """A run shorter than MIN_ELAPSED gets no verdict, whatever its numbers."""
    stats = run_of(
        stage(1, "source", busy=0.0, blocked=0.03),
        stage(2, "sink", busy=0.03),
        elapsed=0.03,
        process_cpu=0.03,
        running=running,
    )
    assert stats.verdict() == expected


def test_verdict_without_cpu_measurements_does_not_guess_the_gil() -> None:
    """No CPU figures: the advice says what it depends on instead of naming the GIL."""
    stats = run_of(
        stage(1, "source", busy=1.0, blocked=9.0),
        stage(2, "then", busy=19.0, threads=2),
        stage(3, "sink", busy=0.5, starved=9.5),
    )
    assert stats.verdict().endswith(
        "-> give 's2' more threads, if its work waits (I/O) or releases the GIL: the CPU it "
        "used was not measured"
    )


def test_verdict_a_computing_source_is_told_what_a_one_thread_stage_can_do() -> None:
    """A source computing under the GIL, one stage after it waiting: no threads for it."""
    stats = run_of(
        stage(1, "source", busy=9.8, cpu=9.0),
        stage(2, "then", busy=4.0, starved=6.0, cpu=0.5),
        stage(3, "sink", busy=1.0, blocked=0.0, starved=9.0, cpu=0.2),
        process_cpu=9.9,
    )
    assert stats.verdict() == (
        "bottleneck: 's1' (busy 98% on 1 thread(s); 's2' starved 60%) -> it computes on its "
        "one thread (0.9 CPU, the whole process 1.0): speed up 's1', or move its work into "
        "worker processes; a source runs on one thread"
    )


def test_verdict_a_lone_source_being_iterated_is_judged_on_its_own() -> None:
    """Iterating a source alone: busy and never held back by the caller, it is the limit."""
    stats = run_of(stage(1, "source", busy=9.0, cpu=0.2), process_cpu=0.3)
    assert stats.verdict() == (
        "bottleneck: 's1' (busy 90% on 1 thread(s)) -> a source runs on one thread: speed up "
        "'s1', or move its slow part into a then() stage with threads after it"
    )


def test_verdict_consumer_bound_when_the_last_buffer_fills_for_the_caller() -> None:
    """Iterating: a last stage filling its buffer faster than the loop takes items."""
    stats = run_of(
        stage(1, "source", busy=1.0, blocked=9.0),
        stage(2, "then", busy=3.0, peak=90, capacity=8192),
    )
    assert stats.verdict() == (
        "consumer-bound: 's2' fills its buffer faster than the caller takes items -> the "
        "loop over the pipeline is the slowest part"
    )


def test_verdict_consumer_bound_when_the_caller_is_slow() -> None:
    """Iterating: the last stage waits for the caller most of the time."""
    stats = run_of(stage(1, "source", busy=1.0, blocked=9.0), stage(2, "then", blocked=9.0))
    assert stats.verdict() == (
        "consumer-bound: 's2' waits 90% of the time for the caller to take items -> the loop "
        "over the pipeline is the slowest part"
    )


def test_verdict_no_bottleneck() -> None:
    """Nothing busy half of the time."""
    stats = run_of(stage(1, "source", busy=2.0), stage(2, "sink", busy=3.0, starved=1.0))
    assert stats.verdict() == (
        "no bottleneck: no stage is busy half of the time (busiest 's2' 30%)"
    )


def test_the_report_is_a_table_ending_with_the_verdict() -> None:
    """str(stats) is the report: a header, one row per stage, the verdict."""
    stats = run_of(
        stage(1, "source", busy=9.8, cpu=0.1),
        stage(2, "sink", busy=0.2, starved=9.8, cpu=0.1),
        process_cpu=0.3,
    )
    lines = str(stats).splitlines()
    assert lines[0].split() == [
        "stage", "threads", "in", "out", "items/s", "busy", "starved", "blocked", "buffer"
    ]  # fmt: skip
    assert lines[1].split() == ["1", "s1", "(source)", "1", "-", "100", "10", "98%", "0%", "0%",
                                "8/8"]  # fmt: skip
    assert lines[2].split() == ["2", "s2", "(sink)", "1", "100", "-", "10", "2%", "98%", "0%", "-"]
    assert lines[3] == (
        "ended after 10.00 s; source-bound: every later stage waits for 's1' more than 80% of "
        "the time -> a source runs on one thread: speed up 's1', or move its slow part into a "
        "then() stage with threads after it"
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


RUN = 0.8  # seconds each real run lasts: past MIN_ELAPSED whatever the machine's speed


def for_a_while(seconds: float) -> Iterator[int]:
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        yield n
        n += 1


def slow_source(seconds: float) -> Iterator[int]:
    for i in for_a_while(seconds):
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
    stats = final_stats(
        Pipeline.source(for_a_while, buffer=4, seconds=RUN).then(sleepy, buffer=4).sink(total)
    )
    assert stats.verdict().startswith("bottleneck: 'sleepy' (busy ")
    assert "upstream 'for_a_while' blocked" in stats.verdict()
    assert stats.verdict().endswith("-> give 'sleepy' more threads")


def test_a_pure_python_stage_on_two_threads_is_cpu_bound_under_the_gil() -> None:
    """Two spinning threads share one interpreter lock."""
    stats = final_stats(
        Pipeline.source(for_a_while, buffer=4, seconds=RUN)
        .then(spin, threads=2, buffer=4)
        .sink(total)
    )
    assert stats.verdict().startswith("bottleneck: 'spin' (busy ")
    assert "likely CPU-bound under the GIL" in stats.verdict()


def test_a_slow_source_makes_the_pipeline_source_bound() -> None:
    """Everything downstream starves."""
    stats = final_stats(Pipeline.source(slow_source, seconds=RUN).then(add_one).sink(total))
    assert stats.verdict().startswith(
        "source-bound: every later stage waits for 'slow_source' more than 80% of the time -> "
        "a source runs on one thread"
    )


def test_a_slow_sink_that_returns_a_value_is_the_bottleneck_but_gets_no_threads() -> None:
    """The sink is busy, its upstream blocked; it returns a value, so no "more threads"."""
    stats = final_stats(
        Pipeline.source(for_a_while, buffer=4, seconds=RUN).then(add_one, buffer=4).sink(slow_sink)
    )
    assert stats.verdict().startswith("bottleneck: 'slow_sink' (busy ")
    assert "upstream 'add_one' blocked" in stats.verdict()
    assert "-> 'slow_sink' returns a value, so it runs on one thread" in stats.verdict()


def test_a_slow_sink_behind_a_buffer_still_filling_is_the_bottleneck_not_the_source() -> None:
    """The source finished at once into an empty default buffer; the sink is the limit."""
    stats = final_stats(Pipeline.from_iterable(range(250)).sink(slow_sink))
    verdict = stats.verdict()
    assert verdict.startswith("bottleneck: 'slow_sink' (busy ")
    assert "upstream 'from_iterable' is faster: the buffer between them is filling (" in verdict
    assert "speed up 'from_iterable'" not in verdict


def test_process_cpu_counts_threads_the_library_did_not_start() -> None:
    """A thread a stage starts itself (as torch does) is in process_cpu, not in its cpu."""
    helper_cpu: list[float] = []

    def burn() -> None:
        n = 0
        while time.thread_time() < 0.2:  # CPU seconds of this thread
            n += 1
        helper_cpu.append(time.thread_time())

    def offloads(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            helper = threading.Thread(target=burn)
            helper.start()
            helper.join(WAIT)
            yield x

    stats = final_stats(Pipeline.from_iterable([1]).then(offloads).sink(total))
    assert stats.process_cpu is not None
    assert stats.process_cpu >= helper_cpu[0] >= 0.2
    offloading = stats.stages[1]
    assert offloading.cpu is not None
    assert offloading.cpu < 0.1


# -- snapshots, progress callbacks, final statistics ----------------------------------------


def test_final_statistics_count_every_item_and_every_stage_finished() -> None:
    """After the run: exact items in and out, states, buffer peaks within their size."""
    monitor = Monitor()
    assert Pipeline.source(numbers, buffer=16, n=1000).then(add_one, threads=2, buffer=8).sink(
        total
    ).run(monitor=monitor) == sum(range(1, 1001))
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
    runnable = Pipeline.source(numbers, buffer=16, n=500).then(pauses, buffer=16).sink(total)
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
    items.close()
    assert not monitor.stats().running


@pytest.mark.parametrize(
    "interval", [0, -1, "1", True, float("nan"), float("inf"), 1e10, threading.TIMEOUT_MAX * 2]
)
def test_a_bad_interval_is_rejected(interval: object) -> None:
    """interval is a duration like inactivity_timeout: same bounds, same message shape."""
    message = re.escape(
        "Monitor: interval must be a number of seconds > 0 and <= "
        f"{threading.TIMEOUT_MAX:g} (threading.TIMEOUT_MAX), got {interval!r}"
    )
    with pytest.raises(PipelineDefinitionError, match=f"^{message}$"):
        Monitor(interval=interval)  # type: ignore[arg-type]


def test_buffer_figures_count_items_not_reserved_slots() -> None:
    """10 items through default buffers: each peak is at most 10, nothing is used at the end."""
    monitor = Monitor()
    Pipeline.source(numbers, n=10).then(add_one).sink(total).run(monitor=monitor)
    buffers = [s.buffer for s in monitor.stats().stages if s.buffer is not None]
    assert len(buffers) == 2
    for buffer in buffers:
        assert 1 <= buffer.peak_used <= 10
        assert buffer.used == 0
