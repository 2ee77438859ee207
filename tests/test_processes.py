"""Process stages (``processes=n``) keep the promises thread stages keep, on every start method."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline_executor import (
    InactivityError,
    ItemPickleError,
    Monitor,
    Pipeline,
    PipelineDefinitionError,
    PipelineTypeError,
    WorkerDiedError,
)
from tests import process_stages as ps
from tests.fresh import run_fresh

METHODS = ["fork", "forkserver", "spawn"]
WAIT = 10.0


def note_lines(exc: BaseException) -> list[str]:
    return list(getattr(exc, "__notes__", []))


@pytest.mark.parametrize("method", METHODS)
def test_results_match_threads(method: str) -> None:
    """A two-process stage between a thread source and a thread sink gives the same sum."""
    pipeline = Pipeline.source(ps.numbers, n=2000).then(ps.square, processes=2).sink(ps.total)
    assert pipeline.run(start_method=method) == sum(x * x for x in range(2000))


@pytest.mark.parametrize("method", METHODS)
def test_a_lambda_stage_runs_under_every_start_method(method: str) -> None:
    """Functions travel with cloudpickle, so a lambda works under spawn and forkserver too."""
    pipeline = Pipeline.source(ps.numbers, n=5).then(
        lambda xs: (x + 1 for x in xs),
        processes=1,
    )
    assert list(pipeline.iter(start_method=method)) == [1, 2, 3, 4, 5]


def test_source_and_sink_in_processes_and_the_sink_value_returns() -> None:
    """A source and a sink may run in worker processes; the sink's value comes back."""
    pipeline = (
        Pipeline.source(ps.generated, processes=1, n=100)
        .then(ps.square, processes=2)
        .sink(ps.total, processes=1)
    )
    assert pipeline.run(start_method="fork") == sum(x * x for x in range(100))


def test_each_worker_is_its_own_process_and_items_split_between_them() -> None:
    """processes=2 runs two worker processes, none of them the caller, each item once."""
    out = list(Pipeline.source(ps.numbers, n=500).then(ps.pids, processes=2).iter())
    assert sorted(x for _, x in out) == list(range(500))
    workers = {pid for pid, _ in out}
    assert os.getpid() not in workers
    assert 1 <= len(workers) <= 2


def test_a_slow_stages_workers_share_its_input_to_the_end() -> None:
    """A worker asks for about TARGET seconds of items, not a whole BATCH: two workers of a
    slow stage each handle a fair part of a short input that was queued before they started."""
    out = list(Pipeline.source(ps.numbers, n=60).then(ps.slow_pids, processes=2).iter())
    assert sorted(x for _, x in out) == list(range(60))
    shares = sorted(sum(1 for pid, _ in out if pid == worker) for worker in {p for p, _ in out})
    assert len(shares) == 2
    assert shares[0] >= 15, shares


def test_a_slow_stages_results_leave_the_worker_as_they_are_made() -> None:
    """A result made LINGER or more after the last batch left is sent at once, not held
    until the next one: each reaches the caller while the worker waits for its receipt."""
    import multiprocessing

    ack = multiprocessing.get_context("forkserver").Event()
    pipeline = Pipeline.source(ps.numbers, n=5).then(ps.acknowledged, processes=1, ack=ack)
    got: list[object] = []
    for item in pipeline.iter(start_method="forkserver"):
        got.append(item)
        ack.set()
    assert got == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_a_result_made_just_after_another_is_not_held_while_the_stage_works(method: str) -> None:
    """A result made within LINGER of the last batch waits for company at most LINGER, even
    while the stage's own code runs long before its next result: each pair reaches the caller
    while the worker waits for its receipt."""
    import multiprocessing

    ack = multiprocessing.get_context(method).Event()
    pipeline = Pipeline.source(ps.numbers, n=3).then(ps.pairs_acknowledged, processes=1, ack=ack)
    got: list[object] = []
    for item in pipeline.iter(start_method=method):
        got.append(item)
        if isinstance(item, tuple) and item[1] == "b":
            ack.set()
    assert got == [(x, half) for x in range(3) for half in "ab"]


def test_large_items_inside_the_pipe_both_ways_do_not_deadlock() -> None:
    """Inputs and results too large for the pipe's buffer, both ways at once, all arrive:
    a worker whose write would block reads what its parent is writing to it meanwhile."""
    pipeline = Pipeline.source(ps.big_strings, buffer=4, n=120, size=300_000).then(
        ps.big_bytes, buffer=4, processes=2
    )
    assert sum(len(b) for b in pipeline.iter()) == 120 * 600_000


def test_one_worker_keeps_the_order() -> None:
    """With one process the items keep their order."""
    out = list(Pipeline.source(ps.numbers, n=3000).then(ps.square, processes=1))
    assert out == [x * x for x in range(3000)]


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_an_exception_keeps_its_type_attributes_and_remote_traceback(method: str) -> None:
    """The stage's exception arrives with its type, attributes, the worker's traceback as
    its cause, and a note naming the stage and the worker process."""
    pipeline = Pipeline.source(ps.numbers, n=50).then(
        ps.marked, processes=2, where="/tmp", behaviour="raise", at=10
    )
    with pytest.raises(ps.StageError, match=r"^bad item\n") as info:
        list(pipeline.iter(start_method=method))
    assert info.value.code == 42
    assert "in marked" in str(info.value.__cause__)
    raised_by = note_lines(info.value)[0]
    assert raised_by.startswith("pipeline_executor: raised by stage 2 'marked' (then) in worker ")
    assert "pid " in raised_by


@pytest.mark.parametrize(
    ("behaviour", "cause"),
    [
        ("os_exit", r"it exited with status 7 without finishing"),
        ("sigkill", r"killed by SIGKILL \(likely the out-of-memory killer\)"),
        ("segfault", r"killed by SIGSEGV"),
    ],
)
def test_a_dead_worker_is_named_with_its_signal_and_item(behaviour: str, cause: str) -> None:
    """A worker that dies is detected at once: the error names the stage, the worker, the
    signal by name and the item it was on."""
    pipeline = Pipeline.source(ps.numbers, n=50).then(
        ps.marked, processes=2, where="/tmp", behaviour=behaviour, at=10
    )
    started = time.monotonic()
    with pytest.raises(WorkerDiedError) as info:
        pipeline.sink(ps.total).run(start_method="fork")
    assert time.monotonic() - started < WAIT
    message = str(info.value)
    assert message.startswith("stage 2 'marked' (then): worker process pipeline-marked-")
    assert re.search(cause, message), message
    assert "while on its input item" in message


@pytest.mark.parametrize("behaviour", ["ki", "exit"])
def test_keyboard_interrupt_and_system_exit_in_a_worker_reach_the_caller(behaviour: str) -> None:
    """KeyboardInterrupt and SystemExit raised by a stage in a worker take the same path."""
    expected = KeyboardInterrupt if behaviour == "ki" else SystemExit
    pipeline = Pipeline.source(ps.numbers, n=50).then(
        ps.marked, processes=1, where="/tmp", behaviour=behaviour, at=5
    )
    with pytest.raises(expected):
        list(pipeline.iter(start_method="fork"))


RAISES: dict[str, type[BaseException]] = {
    "raise": ps.StageError,
    "ki": KeyboardInterrupt,
    "exit": SystemExit,
}


MATRIX = [
    (position, consumption)
    for position in ("source", "middle", "sink")
    for consumption in ("run", "loop", "break")
    if position != "sink" or consumption == "run"  # a sink is consumed by run() only
]


@pytest.mark.parametrize(("position", "consumption"), MATRIX)
@pytest.mark.parametrize("behaviour", ["raise", "return_early", "none", "ki", "exit"])
@pytest.mark.parametrize("processes", [1, 2])
def test_failure_matrix(
    tmp_path: Path, consumption: str, position: str, behaviour: str, processes: int
) -> None:
    """The failure matrix on process stages: each way a stage in a worker ends, at each
    position, consumed each way, gives the exception it raised (after a ``break`` it may come
    first, or be dropped with the rest of the run), and every worker that started runs its
    generator's finally, in the worker, before the caller gets control back."""
    where = str(tmp_path)
    if position == "source":
        pipeline: Pipeline[int] = Pipeline.source(
            ps.marked_source, processes=1, n=100, where=where, behaviour=behaviour, at=20
        ).then(ps.square, threads=2)
    else:
        pipeline = Pipeline.source(ps.numbers, n=100)
    if position == "middle":
        pipeline = pipeline.then(
            ps.marked, processes=processes, where=where, behaviour=behaviour, at=20
        )
    expected = RAISES.get(behaviour)

    def consume() -> None:
        if position == "sink":
            pipeline.sink(
                ps.marked_sink, processes=processes, where=where, behaviour=behaviour, at=20
            ).run(start_method="fork")
        elif consumption == "run":
            pipeline.sink(ps.total).run(start_method="fork")
        elif consumption == "loop":
            for _ in pipeline.iter(start_method="fork"):
                pass
        else:
            _take(pipeline.iter(start_method="fork"), 5)

    if expected is None:
        consume()
    elif consumption == "break":  # the failure may race the break
        with contextlib.suppress(expected):
            consume()
    else:
        with pytest.raises(expected):
            consume()
    starts = sorted(p.name.split("-")[1] for p in tmp_path.glob("start-*"))
    finals = sorted(p.name.split("-")[1] for p in tmp_path.glob("finally-*"))
    assert starts
    assert starts == finals


def test_breaking_out_of_the_loop_stops_the_workers(tmp_path: Path) -> None:
    """Leaving a for loop early closes every worker's generator in its process."""
    pipeline = Pipeline.source(ps.numbers, n=100_000).then(
        ps.marked, processes=2, where=str(tmp_path), behaviour="none", at=-1
    )
    for i, _ in enumerate(pipeline.iter(start_method="fork")):
        if i == 10:
            break
    starts = sorted(p.name.split("-")[1] for p in tmp_path.glob("start-*"))
    finals = sorted(p.name.split("-")[1] for p in tmp_path.glob("finally-*"))
    assert starts == finals


def test_an_unpicklable_input_item_is_an_error_naming_stage_position_and_type() -> None:
    """An item that cannot go to a worker is never dropped: an ItemPickleError says which."""
    import threading

    items: list[object] = [1, 2, threading.Lock()]

    def ident(xs: Iterable[object]) -> Iterator[object]:
        yield from xs

    pipeline = Pipeline.from_iterable(items).then(ident, processes=1)
    with pytest.raises(ItemPickleError) as info:
        list(pipeline.iter(start_method="fork"))
    message = str(info.value)
    assert message.startswith("stage 2 'ident' (then): input item ")
    assert "(lock) cannot be pickled to pass it to worker process" in message
    assert isinstance(info.value, TypeError)


def test_an_unpicklable_result_is_an_error_naming_stage_position_and_type() -> None:
    """A result that cannot come back from a worker is an ItemPickleError, never lost."""
    pipeline = Pipeline.source(ps.numbers, n=10).then(ps.unpicklable_results, processes=1)
    with pytest.raises(ItemPickleError, match=r"output item 4 \(lock\)"):
        list(pipeline.iter(start_method="fork"))


def test_an_unpicklable_constant_is_rejected_when_the_pipeline_is_built() -> None:
    """Constants travel to every worker, so one that cannot pickle is a build error."""
    import threading

    with pytest.raises(PipelineDefinitionError, match=r"constant 'lock' must pickle"):
        Pipeline.source(ps.numbers, n=3).then(_with_lock, processes=1, lock=threading.Lock())


def _with_lock(xs: Iterable[int], lock: object) -> Iterator[int]:
    yield from xs


def test_a_main_module_stage_with_an_unpicklable_global_is_rejected_when_built() -> None:
    """cloudpickle takes a function of the main module by value, with the globals it uses: one
    that uses an unpicklable global fails the build, although the standard pickler would take
    the function itself (by name)."""
    out = run_fresh(
        """
        import threading
        from pipeline_executor import Pipeline, PipelineDefinitionError

        LOCK = threading.Lock()

        def guarded(xs):
            for x in xs:
                with LOCK:
                    yield x

        def numbers():
            yield from range(3)

        try:
            Pipeline.source(numbers).then(guarded, processes=1)
        except PipelineDefinitionError as exc:
            print(exc)
        """
    )
    assert "the stage function must pickle" in out
    assert "lock" in out


@pytest.mark.parametrize("method", METHODS)
def test_item_checks_run_in_the_worker_under_every_start_method(method: str) -> None:
    """with_item_checks() wraps a process stage's function in a closure: it still travels
    (by cloudpickle), and the check runs in the worker, naming the stage."""
    pipeline = Pipeline.source(ps.numbers, n=10).then(ps.lying, processes=1).with_item_checks()
    with pytest.raises(PipelineTypeError, match=r"stage 2 'lying'.*type str"):
        list(pipeline.iter(start_method=method))


@pytest.mark.parametrize("method", METHODS)
def test_module_level_stages_need_no_cloudpickle(method: str) -> None:
    """A stage of module-level functions and plain constants pickles with the standard
    pickler, so neither the caller nor its workers import cloudpickle (about 11 ms of a first
    pipeline's start here): under fork nothing is pickled at all. (The forkserver preloads it
    once, for the stages that need it, so its workers have it without importing it.)"""
    out = run_fresh(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        from pipeline_executor import Pipeline
        from tests import process_stages as ps

        if __name__ == "__main__":
            pipeline = Pipeline.source(ps.numbers, n=50).then(ps.imported, processes=2)
            seen = set(pipeline.iter(start_method={method!r}))
            print(sorted(seen), "cloudpickle" in sys.modules)
        """
    )
    assert out == f"[{method == 'forkserver'}] False"


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_worker_imports_none_of_the_builder(method: str) -> None:
    """A worker imports the package to reach its own modules, and with it none of the builder
    (each public name's module is imported on first use): a spawned worker, and the
    forkserver, start 8-10 ms sooner."""
    out = run_fresh(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
        from pipeline_executor import Pipeline
        from tests import process_stages as ps

        if __name__ == "__main__":
            pipeline = Pipeline.source(ps.numbers, n=5).then(
                ps.imported, processes=1, module="pipeline_executor._builder"
            )
            print(sorted(set(pipeline.iter(start_method={method!r}))))
        """
    )
    assert out == "[False]"


def test_threads_and_processes_are_exclusive() -> None:
    """A stage runs on threads or in processes, not both."""
    with pytest.raises(PipelineDefinitionError, match=r"threads=2 and processes=2 are exclusive"):
        Pipeline.source(ps.numbers, n=3).then(ps.square, threads=2, processes=2)


def test_a_multiprocessing_event_constant_is_shared_with_the_worker() -> None:
    """A multiprocessing primitive passed as a constant is the same object in the worker."""
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    event = ctx.Event()
    pipeline = Pipeline.source(ps.numbers, n=3).then(_set_event, processes=1, event=event)
    assert list(pipeline.iter(start_method="forkserver")) == [0, 1, 2]
    assert event.is_set()


@pytest.mark.parametrize("method", METHODS)
def test_multiprocessing_value_array_and_queue_constants_are_shared(method: str) -> None:
    """A Value, an Array and a Queue passed as constants are the same objects in the worker,
    under every start method (their shared memory and pipes travel as the worker starts)."""
    import multiprocessing

    ctx = multiprocessing.get_context(method)
    value, array, queue = ctx.Value("q", 0), ctx.Array("q", 3), ctx.Queue()
    pipeline = Pipeline.source(ps.numbers, n=3).then(
        ps.into_shared, processes=1, value=value, array=array, queue=queue
    )
    assert list(pipeline.iter(start_method=method)) == [0, 1, 2]
    assert value.value == 3
    assert array[:] == [0, 1, 2]
    assert [queue.get(timeout=WAIT) for _ in range(3)] == [0, 1, 2]


@pytest.mark.parametrize("method", METHODS)
def test_a_queue_the_caller_used_before_still_reaches_the_worker(method: str) -> None:
    """A Queue the caller put into before the run (its feeder thread running) is usable in
    the worker: what the worker puts reaches the caller, after what the caller put."""
    import multiprocessing

    ctx = multiprocessing.get_context(method)
    value, array, queue = ctx.Value("q", 0), ctx.Array("q", 3), ctx.Queue()
    queue.put("before")
    assert queue.get(timeout=WAIT) == "before"  # the feeder thread has started, and sent it
    queue.put("again")
    pipeline = Pipeline.source(ps.numbers, n=3).then(
        ps.into_shared, processes=1, value=value, array=array, queue=queue
    )
    assert list(pipeline.iter(start_method=method)) == [0, 1, 2]
    assert [queue.get(timeout=WAIT) for _ in range(4)] == ["again", 0, 1, 2]
    queue.close()
    queue.join_thread()  # the caller's feeder thread ends with the test


@pytest.mark.parametrize("method", METHODS)
def test_a_worker_may_not_start_processes_of_its_own(method: str) -> None:
    """A worker is daemonic under every start method, as multiprocessing's workers are: a
    stage that starts a multiprocessing process gets multiprocessing's own refusal."""
    pipeline = Pipeline.source(ps.numbers, n=3).then(ps.starts_a_process, processes=1)
    with pytest.raises(AssertionError, match="daemonic processes are not allowed to have"):
        list(pipeline.iter(start_method=method))


STDIO = """
import sys
sys.path.insert(0, {root!r})
from pipeline_executor import Pipeline
from tests import process_stages as ps
if __name__ == "__main__":
    pipeline = Pipeline.source(ps.numbers, n=3).then(ps.{stage}, processes=1)
    result = list(pipeline.iter(start_method={method!r}))
    print("|", result, sep="")
"""


@pytest.mark.parametrize("method", METHODS)
def test_a_workers_stdin_is_empty_and_its_output_is_flushed_as_it_ends(method: str) -> None:
    """A worker reads nothing of the caller's standard input (it has /dev/null), and what it
    printed without a flush reaches the caller's output when it ends."""
    root = str(Path(__file__).resolve().parent.parent)
    for stage, expected in (("reads_stdin", "|['', '', '']"), ("prints", "<0><1><2>|[0, 1, 2]")):
        out = subprocess.run(
            [sys.executable, "-c", STDIO.format(root=root, stage=stage, method=method)],
            input="typed by the user\n",
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == expected


def test_a_worker_that_cannot_start_raises_why() -> None:
    """A worker whose start fails (a constant that will not pickle then) raises that error,
    not an internal one from cleaning up a process that never ran."""
    pipeline = Pipeline.source(ps.numbers, n=3).then(
        ps.passing, processes=2, constant=ps.RefusedAtStart()
    )
    with pytest.raises(RuntimeError, match=r"^refused at start") as caught:
        list(pipeline.iter(start_method="forkserver"))
    assert str(caught.value) == "refused at start"
    notes = note_lines(caught.value)
    assert re.match(
        r"^pipeline_executor: raised by stage 2 'passing' \(then\) while starting worker "
        r"process pipeline-passing-0$",
        notes[0],
    ), notes
    assert "stage 2 'passing' (then): failed" in notes[1], notes


def _set_event(xs: Iterable[int], event: object) -> Iterator[int]:
    event.set()  # type: ignore[attr-defined]
    yield from xs


def test_a_stuck_worker_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    """A worker that does not stop is killed after the grace period, and named."""
    pipeline = Pipeline.source(ps.numbers, n=100).then(ps.stuck, processes=1, where=str(tmp_path))
    started = time.monotonic()
    with pytest.warns(RuntimeWarning, match=r"did not stop within 1 s .*killed stage 2 'stuck'"):
        _take(pipeline.iter(start_method="fork"), 3)
    assert time.monotonic() - started < 5
    assert list(tmp_path.glob("stuck-*"))


def _take(items: Iterator[object], n: int) -> None:
    for i, _ in enumerate(items):
        if i == n:
            break


def test_the_stall_diagnosis_names_the_line_in_the_worker() -> None:
    """The inactivity error says which line of the stage the worker is on, read from the
    worker itself, not the proxy's wait."""
    pipeline = Pipeline.source(ps.numbers, n=10).then(ps.sleepy, processes=1)
    with pytest.warns(RuntimeWarning, match=r"killed"), pytest.raises(InactivityError) as info:
        list(pipeline.iter(inactivity_timeout=0.5, start_method="fork"))
    assert "process_stages.py" in str(info.value)
    assert "in sleepy" in str(info.value)


def test_statistics_count_process_stages() -> None:
    """Items in and out and the workers' CPU are counted for a process stage."""
    monitor = Monitor()
    Pipeline.source(ps.numbers, n=1000).then(ps.square, processes=2).sink(ps.total).run(
        monitor=monitor, start_method="fork"
    )
    stage = monitor.stats().stages[1]
    assert (stage.items_in, stage.items_out) == (1000, 1000)
    assert stage.cpu is not None


def test_a_process_stage_counts_the_items_its_generator_took_not_those_passed_ahead() -> None:
    """Items in counts what the worker's generator pulled: a stage that fails on item 3 of
    50 reports 4 in, though more were passed to its worker ahead of time."""
    monitor = Monitor()
    pipeline = Pipeline.source(ps.numbers, n=50).then(ps.fail_at, processes=1, at=3)
    with pytest.raises(ps.StageError):
        list(pipeline.iter(monitor=monitor, start_method="fork"))
    stage = monitor.stats().stages[1]
    assert stage.items_in == 4
    assert stage.items_out <= 3  # those the worker had sent when it failed


def test_the_buffer_bound_holds_across_the_process_boundary() -> None:
    """Items passed to a worker and results on their way back count in the buffers: the
    source never runs further ahead of the consumer than the buffers allow."""
    produced: list[int] = []

    def recording(n: int) -> Iterator[int]:
        for i in range(n):
            produced.append(i)
            yield i

    bound = 4 + 4 + 1  # the source's buffer, the process stage's buffer, the item held
    pipeline = Pipeline.source(recording, buffer=4, n=2000).then(ps.square, buffer=4, processes=1)
    worst = 0
    for i, _ in enumerate(pipeline.iter(start_method="fork")):
        worst = max(worst, len(produced) - i)
    assert worst <= bound


def _shared_segments() -> int:
    """Shared-memory segments this process has open (Linux)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += "memfd:pipeline-" in os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the listing's own descriptor, closed by now
            pass
    return count


@pytest.mark.parametrize("method", ["fork", "forkserver"])
@pytest.mark.parametrize("stage", [ps.touch_arrays, ps.bump_in_place])
def test_large_arrays_cross_through_shared_memory_intact(
    method: str, stage: Callable[[Iterable[object]], Iterator[object]]
) -> None:
    """Large numpy arrays cross through reused shared memory, new ones and ones passed back
    in place; arrays kept to the end are intact (a segment is reused only once every view of
    it is gone), and no segment stays open after the run."""
    pytest.importorskip("numpy")
    size = 3 << 20
    pipeline = Pipeline.source(ps.arrays, buffer=2, n=30, size=size).then(
        stage, processes=1, buffer=2
    )
    kept: list[tuple[int, Any]] = []
    for i, item in enumerate(pipeline.iter(start_method=method)):
        array: Any = item
        expected = (i % 256) + (1 if stage is ps.touch_arrays else 0)
        assert int(array[0]) == expected
        if i % 3 == 0:
            kept.append((i, array))
        del item, array  # each array's mapping holds a descriptor of its segment
    _check_kept(kept, in_place=stage is ps.bump_in_place)
    del kept
    assert _shared_segments() == 0


def _check_kept(kept: list[tuple[int, Any]], *, in_place: bool) -> None:
    for i, array in kept:
        base = (i % 256) + (0 if in_place else 1)
        assert int(array[0]) == base == int(array[-1])
        assert int(array[1]) == base + (1 if in_place else 0)


def test_no_worker_outlives_a_caller_killed_with_sigkill(tmp_path: Path) -> None:
    """SIGKILL the caller mid-run: every worker process is gone within a second."""
    script = tmp_path / "victim.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
            from pipeline_executor import Pipeline
            from tests import process_stages as ps

            if __name__ == "__main__":
                pipeline = Pipeline.source(ps.numbers, n=10**9).then(
                    ps.pid_of_parent, processes=2
                )
                seen = 0
                for item in pipeline.iter(start_method="forkserver"):
                    if item < 0:
                        seen += 1
                        print(-item, flush=True)
                        if seen == 2:
                            print("ready", flush=True)
                            input()
            """
        )
    )
    workers: list[int] = []
    with subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True
    ) as victim:
        assert victim.stdout is not None
        for line in victim.stdout:
            if line.strip() == "ready":
                break
            workers.append(int(line))
        assert len(workers) == 2
        victim.send_signal(signal.SIGKILL)
        victim.wait(WAIT)
    assert _alive_after_a_second(workers) == [], "workers outlived their caller"


def _alive_after_a_second(pids: list[int]) -> list[int]:
    """Those of ``pids`` still alive 1 s from now (sooner, once none is)."""
    deadline = time.monotonic() + 1.0
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in pids if _alive(pid)]
        if alive:
            os.sched_yield()
    return alive


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone before the open, or the read
        return False


def test_ctrl_c_stops_the_workers_and_prints_no_worker_traceback(tmp_path: Path) -> None:
    """SIGINT to the whole process group gives one KeyboardInterrupt in the caller, no
    worker traceback on stderr, and no worker left."""
    script = tmp_path / "ctrl_c.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, signal, sys
            sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
            from pipeline_executor import Pipeline
            from tests import process_stages as ps

            if __name__ == "__main__":
                # Ctrl-C as in a terminal, even where the tests run with SIGINT ignored (a
                # shell's background job): ignored, it would reach nothing, and this run
                # would never end.
                signal.signal(signal.SIGINT, signal.default_int_handler)
                pipeline = Pipeline.source(ps.numbers, n=10**9).then(ps.square, processes=2)
                try:
                    for i, _ in enumerate(pipeline.iter(start_method="forkserver")):
                        if i == 1000:
                            os.killpg(0, signal.SIGINT)
                except KeyboardInterrupt:
                    print("interrupted", flush=True)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=30,
        start_new_session=True,
        check=False,
    )
    assert result.stdout.strip() == "interrupted", result.stderr
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("method", METHODS)
def test_a_stage_in_a_worker_runs_with_sigint_ignored_and_no_signal_blocked(method: str) -> None:
    """Workers start with SIGINT and SIGTERM blocked (the run blocks them while it starts
    workers, so that a Ctrl-C while one boots prints nothing from it); the stage itself runs
    with SIGINT ignored and neither blocked, so a SIGTERM to a worker still ends it."""
    pipeline = Pipeline.source(ps.numbers, n=2).then(ps.signal_state, processes=1)
    assert list(pipeline.iter(start_method=method)) == [([], True), ([], True)]


SLOW_BOOT = """
import os, signal, sys, time
sys.path.insert(0, {root!r})
if __name__ != "__main__":  # each spawned worker, or the forkserver, imports this module
    with open({marks!r}, "a") as marks:
        marks.write(f"{{os.getpid()}}\\n")
    time.sleep(60)  # a heavy import (torch, say)  # sleep-ok
from pipeline_executor import Pipeline
from tests import process_stages as ps

if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    pipeline = Pipeline.source(ps.numbers, n=10**9).then(ps.square, processes=2).sink(ps.total)
    try:
        pipeline.run(start_method={method!r})
    except KeyboardInterrupt:
        print("interrupted", time.time(), flush=True)
"""


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_ctrl_c_while_the_workers_boot_stops_at_once_and_leaves_no_process(
    tmp_path: Path, method: str
) -> None:
    """Ctrl-C while the forkserver or the spawned workers still import the main module
    (seconds, with torch): KeyboardInterrupt within 1 s, nothing printed, no process left.
    (It was lost under forkserver, the SIGINT ignored while a worker started, and took 2.4 s
    and a warning under spawn, waiting for the grace period.)"""
    marks = tmp_path / "marks"
    marks.touch()
    script = tmp_path / "slow_boot.py"
    root = str(Path(__file__).resolve().parent.parent)
    script.write_text(SLOW_BOOT.format(root=root, marks=str(marks), method=method))
    with subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as caller:
        try:
            deadline = time.monotonic() + WAIT
            while not marks.read_text() and time.monotonic() < deadline:  # the boot began
                with contextlib.suppress(subprocess.TimeoutExpired):
                    caller.wait(0.01)
                    pytest.fail(f"the caller ended first: {caller.communicate()}")
            booting = [int(pid) for pid in marks.read_text().split()]
            assert booting, "no process imported the main module"
            sent = time.time()
            os.killpg(caller.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
            out, err = caller.communicate(timeout=WAIT)
        finally:
            os.killpg(caller.pid, signal.SIGKILL)  # if the test failed: the whole session
    assert out.split()[0] == "interrupted", err
    assert float(out.split()[1]) - sent < 1.0
    assert "Traceback" not in err, err
    assert "Warning" not in err, err
    assert _alive_after_a_second(booting) == [], "outlived the caller"


def test_the_sequential_mode_runs_every_stage_in_the_callers_thread() -> None:
    """sequential=True chains the generators in the caller's thread: no thread starts, the
    result is the same, and a failure names its stage."""
    import threading

    seen: set[str] = set()

    def where(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            seen.add(threading.current_thread().name)
            yield x

    before = threading.active_count()
    pipeline = Pipeline.source(ps.numbers, n=100).then(where, threads=4).then(ps.square)
    assert pipeline.sink(ps.total).run(sequential=True) == sum(x * x for x in range(100))
    assert list(pipeline.iter(sequential=True)) == [x * x for x in range(100)]
    assert seen == {threading.current_thread().name}
    assert threading.active_count() == before
    failing = Pipeline.source(ps.numbers, n=50).then(
        ps.marked, where="/tmp", behaviour="raise", at=3
    )
    with pytest.raises(ps.StageError) as info:
        failing.then(ps.square).sink(ps.total).run(sequential=True)
    assert note_lines(info.value) == [
        "pipeline_executor: raised by stage 2 'marked' (then) (sequential mode)"
    ]


def test_the_sequential_mode_closes_every_generator(tmp_path: Path) -> None:
    """Leaving a sequential iteration early still runs every stage's finally."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    pipeline = Pipeline.source(
        ps.marked_source, n=100, where=str(first), behaviour="none", at=-1
    ).then(ps.marked, where=str(second), behaviour="none", at=-1)
    items = pipeline.iter(sequential=True)
    assert next(items) == 0
    assert list(first.glob("finally-*")) == []
    items.close()
    assert len(list(first.glob("finally-*"))) == len(list(second.glob("finally-*"))) == 1


def test_sigterm_to_the_caller_stops_the_workers(tmp_path: Path) -> None:
    """SIGTERM to the caller stops the pipeline: every worker's finally runs, none is left,
    and the caller dies of SIGTERM."""
    script = tmp_path / "sigterm.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, signal, sys
            sys.path.insert(0, {str(Path(__file__).resolve().parent.parent)!r})
            from pipeline_executor import Pipeline
            from tests import process_stages as ps

            if __name__ == "__main__":
                pipeline = Pipeline.source(ps.numbers, n=10**9).then(
                    ps.marked, processes=2, where={str(tmp_path)!r}, behaviour="none", at=-1
                )
                for i, _ in enumerate(pipeline.iter(start_method="forkserver")):
                    if i == 1000:
                        os.kill(os.getpid(), signal.SIGTERM)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == -signal.SIGTERM, result.stderr
    starts = sorted(p.name.split("-")[1] for p in tmp_path.glob("start-*"))
    finals = sorted(p.name.split("-")[1] for p in tmp_path.glob("finally-*"))
    assert starts  # a worker the stop reached before its generator began has no finally
    assert starts == finals
    assert not [pid for pid in starts if _alive(int(pid))]


def test_an_auto_buffer_learns_the_size_of_items_made_in_a_worker() -> None:
    """A process stage's output buffer, auto by default, estimates the items its worker makes
    (the last of each batch) and bounds its count by the budget over their size."""
    monitor = Monitor()
    size = 4 << 20
    pipeline = Pipeline.source(ps.numbers, n=40).then(ps.blobs, processes=1, size=size)
    for _ in pipeline.iter(monitor=monitor, start_method="fork", memory_budget=64 << 20):
        pass
    buffer = monitor.stats().stages[1].buffer
    assert buffer is not None
    assert buffer.auto
    assert buffer.item_bytes is not None
    assert buffer.item_bytes >= size
    assert buffer.limited_by == "bytes"
    assert buffer.budget_bytes is not None
    assert buffer.capacity * size <= buffer.budget_bytes


def test_a_map_in_worker_processes_counts_its_failed_items() -> None:
    """map(..., processes=2, on_error=...) runs in worker processes; the items on_error
    handled there are counted in the stage's statistics, as on threads."""
    monitor = Monitor()
    out = list(
        Pipeline.source(ps.numbers, n=100)
        .map(ps.half_fail, processes=2, ordered=False, on_error=ps.record_failure)
        .iter(monitor=monitor, start_method="fork")
    )
    assert sorted(out) == list(range(0, 100, 2))
    assert monitor.stats().stages[1].failed == 50


def test_ordered_output_over_several_worker_processes_is_refused_clearly() -> None:
    """Ordered output across worker processes is not supported yet: a build error says so."""
    with pytest.raises(PipelineDefinitionError, match=r"ordered output over 2 worker processes"):
        Pipeline.source(ps.numbers, n=3).map(ps.half_fail, processes=2)


MAIN_SCRIPT = """
import sys
sys.path.insert(0, {root!r})
with open({runs!r}, "a") as runs:  # once per time this module runs, with the name it runs as
    runs.write(__name__ + "\\n")
{extra}
from pipeline_executor import Pipeline
from tests import process_stages as ps

if __name__ == "__main__":
    pipeline = Pipeline.source(ps.numbers, n=100).then(ps.square, processes=2).sink(ps.total)
    print(pipeline.run(start_method="forkserver"))
"""


def _run_main_script(
    tmp_path: Path, extra: str = ""
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    runs = tmp_path / "runs"
    script = tmp_path / "main_script.py"
    root = str(Path(__file__).resolve().parent.parent)
    script.write_text(MAIN_SCRIPT.format(root=root, runs=str(runs), extra=extra))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    return done, runs.read_text().split()


def test_forkserver_workers_start_with_the_main_module_imported_once_by_the_server(
    tmp_path: Path,
) -> None:
    """The forkserver imports the caller's main module once, so that its workers start with
    it (and with what it imports) instead of each running it again: CPython before 3.13.8
    never tells the server where the main module is (gh-126631)."""
    done, runs = _run_main_script(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(sum(x * x for x in range(100)))]
    assert runs == ["__main__", "__mp_main__"]  # the caller, then the server; no worker


def test_a_main_module_that_fails_in_the_forkserver_fails_the_workers_start_not_the_server(
    tmp_path: Path,
) -> None:
    """A main module that raises when imported by another name: the server survives it, each
    worker then runs it itself, and the caller gets the workers' deaths, named, not a hang."""
    extra = 'if __name__ != "__main__":\n    raise RuntimeError("only as the main module")'
    done, runs = _run_main_script(tmp_path, extra)
    assert done.returncode == 1
    assert "WorkerDiedError" in done.stderr
    assert "only as the main module" in done.stderr  # each worker's own traceback
    assert runs[:2] == ["__main__", "__mp_main__"]
    assert len(runs) >= 3  # and at least one worker ran it again
