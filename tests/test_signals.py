"""Interrupts and signals, in a child process as a user would meet them."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from pipeline_executor import Pipeline

WAIT = 20.0  # a child that takes longer than this is hung: the test fails

CHILD = """
import sys, pathlib, signal, threading
from pipeline_executor import Pipeline

# Ctrl-C as in a terminal, even if this test run was started with SIGINT ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)

log = pathlib.Path(sys.argv[1])
lock = threading.Lock()

def note(what):
    with lock, log.open("a") as f:
        f.write(what + "\\n")

def endless():
    n = 0
    try:
        while True:
            yield n
            n += 1
    finally:
        note("source finally")

def work(xs):
    try:
        for x in xs:
            if x == 1000:
                print("ready", flush=True)
            yield x
    finally:
        note("work finally")

def total(xs):
    try:
        return sum(xs)
    finally:
        note("sink finally")
"""


def start(tmp_path: Path, body: str) -> tuple[subprocess.Popen[str], Path]:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD) + textwrap.dedent(body))
    log = tmp_path / "log.txt"
    log.touch()
    process = subprocess.Popen(
        [sys.executable, str(script), str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, log


def wait_ready(process: subprocess.Popen[str]) -> None:
    """Wait (bounded) until the child prints its ready line."""
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], WAIT)
    assert readable, "the child never got ready"
    assert process.stdout.readline() == "ready\n"


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    try:
        _, stderr = process.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("the child hung")
    return process.returncode, stderr


def no_stack_dump(stderr: str) -> bool:
    return "Fatal Python error" not in stderr and "Thread 0x" not in stderr


@pytest.mark.parametrize("how", ["run", "iterate"])
def test_sigint_stops_the_child_promptly_with_every_finally_run(tmp_path: Path, how: str) -> None:
    """Ctrl-C: KeyboardInterrupt within 2 s, every stage's finally ran, no stack dump."""
    body = {
        "run": "Pipeline.source(endless).then(work, threads=2).sink(total).run()\n",
        "iterate": "for _ in Pipeline.source(endless).then(work, threads=2):\n    pass\n",
    }[how]
    process, log = start(tmp_path, body)
    wait_ready(process)
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    returncode, stderr = finish(process)
    assert time.monotonic() - sent < 2.0
    assert returncode == -signal.SIGINT  # died of the KeyboardInterrupt, as Python does
    if sys.version_info >= (3, 11):  # tracebacks show notes (PEP 678) from 3.11 on
        assert "\nKeyboardInterrupt\npipeline_executor: how each stage ended:\n" in stderr
    else:
        assert stderr.rstrip().endswith("KeyboardInterrupt")
    assert no_stack_dump(stderr)
    finals = sorted(log.read_text().splitlines())
    assert "source finally" in finals
    assert 1 <= finals.count("work finally") <= 2
    if how == "run":
        assert "sink finally" in finals


def test_sigterm_stops_the_pipeline_cleanly_then_the_process_dies_of_sigterm(
    tmp_path: Path,
) -> None:
    """SIGTERM during run(): a clean stop, every finally run, then death by SIGTERM (-15)."""
    body = """
    try:
        Pipeline.source(endless).then(work, threads=2).sink(total).run()
    finally:
        note("caller finally")
    """
    process, log = start(tmp_path, body)
    wait_ready(process)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    returncode, stderr = finish(process)
    assert time.monotonic() - sent < 2.0
    assert returncode == -signal.SIGTERM
    assert stderr == ""
    finals = log.read_text().splitlines()
    assert {"source finally", "work finally", "sink finally", "caller finally"} <= set(finals)


def test_dying_of_sigterm_still_runs_exit_functions_and_flushes_output(tmp_path: Path) -> None:
    """The application's atexit functions run and its buffered stdout is written first."""
    body = """
    import atexit
    atexit.register(note, "atexit ran")
    try:
        Pipeline.source(endless).then(work).sink(total).run()
    finally:
        print("last words")  # stdout is a pipe: block-buffered until the exit flushes it
    """
    process, log = start(tmp_path, body)
    wait_ready(process)
    process.send_signal(signal.SIGTERM)
    assert process.stdout is not None
    try:
        rest, _ = process.communicate(timeout=WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail("the child hung")
    assert process.returncode == -signal.SIGTERM
    assert rest == "last words\n"
    assert "atexit ran" in log.read_text().splitlines()


def test_a_caller_that_catches_the_sigterm_exit_keeps_running_and_exits_as_it_likes(
    tmp_path: Path,
) -> None:
    """Caught, the SystemExit(143) is an ordinary exception: the program goes on, exits 0."""
    body = """
    try:
        Pipeline.source(endless).then(work).sink(total).run()
    except SystemExit as exc:
        note(f"caught SystemExit {exc.code}")
    note("still running")
    """
    process, log = start(tmp_path, body)
    wait_ready(process)
    process.send_signal(signal.SIGTERM)
    returncode, stderr = finish(process)
    assert returncode == 0
    assert stderr == ""
    finals = log.read_text().splitlines()
    assert finals[-2:] == ["caught SystemExit 143", "still running"]


def test_sigterm_keeps_an_applications_own_handler(tmp_path: Path) -> None:
    """An application's SIGTERM handler is left alone: it decides what happens."""
    body = """
    import signal
    def handler(signum, frame):
        note("own handler")
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, handler)
    try:
        Pipeline.source(endless).then(work).sink(total).run()
    except KeyboardInterrupt:
        sys.exit(7)
    """
    process, log = start(tmp_path, body)
    wait_ready(process)
    process.send_signal(signal.SIGTERM)
    returncode, _ = finish(process)
    assert returncode == 7
    assert "own handler" in log.read_text().splitlines()


def test_a_stage_stuck_in_an_uninterruptible_call_is_reported_and_abandoned(
    tmp_path: Path,
) -> None:
    """run() raises after the grace period, names the stuck stage, and the child exits."""
    body = """
    entered = threading.Event()
    def stuck(xs):
        for x in xs:
            print("ready", flush=True)
            entered.set()
            threading.Event().wait()  # nothing will ever set it
            yield x
    def failing():
        yield 1
        entered.wait()
        raise ValueError("source failed")
    Pipeline.source(failing).then(stuck).sink(total).run()
    """
    process, _ = start(tmp_path, body)
    wait_ready(process)
    returncode, stderr = finish(process)
    assert returncode == 1
    assert "ValueError: source failed" in stderr
    assert (
        "RuntimeWarning: pipeline_executor: stage 2 'stuck' (then) in thread pipeline-stuck-0 "
        "did not stop within 1 s" in stderr
    )
    assert no_stack_dump(stderr)


def test_exiting_without_closing_an_iteration_does_not_hang(tmp_path: Path) -> None:
    """sys.exit() with a pipeline still open: the child exits, its stages' finally ran."""
    body = """
    items = iter(Pipeline.source(endless, buffer=2).then(work))
    for _ in range(1001):
        next(items)
    sys.exit(3)
    """
    process, log = start(tmp_path, body)
    wait_ready(process)
    returncode, stderr = finish(process)
    assert returncode == 3
    assert no_stack_dump(stderr)
    assert sorted(log.read_text().splitlines()) == ["source finally", "work finally"]


# -- a signal while the caller waits inside the library is a stop request -------------------


@pytest.mark.parametrize(
    ("signum", "expected"),
    [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, SystemExit)],
    ids=["SIGINT", "SIGTERM"],
)
def test_a_signal_while_waiting_inside_the_library_becomes_a_stop_request(
    signum: int, expected: type[BaseException]
) -> None:
    """While the caller waits inside the library, SIGINT and SIGTERM are not raised into that
    wait (an exception raised into ``Condition.wait`` can leave its lock released); a helper
    thread hands them to the run as a stop instead. Outside such a wait they are raised at once."""
    import threading

    from pipeline_executor._signals import signals_as_stop

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    stopped: list[BaseException] = []
    arrived = threading.Event()

    def stop(exc: BaseException) -> None:
        stopped.append(exc)
        arrived.set()

    try:
        with signals_as_stop() as signals:
            signals.watch(stop)
            signals.waiting = True
            _signal_self(signum)  # nothing raised
            assert arrived.wait(10.0)
            signals.waiting = False
            with pytest.raises(expected):
                _signal_self(signum)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert len(stopped) == 1
    assert isinstance(stopped[0], expected)
    assert signal.getsignal(signal.SIGINT) is previous or previous is signal.default_int_handler


def _signal_self(signum: int) -> None:
    """Send ``signum`` to the main thread, then run bytecodes, where Python runs handlers."""
    import threading

    signal.pthread_kill(threading.main_thread().ident or 0, signum)
    for _ in range(1000):
        pass


def test_an_applications_own_sigint_handler_is_left_alone() -> None:
    """A handler the application installed is not replaced while a run waits."""
    from pipeline_executor._signals import signals_as_stop

    def mine(signum: int, frame: object) -> None:
        del signum, frame

    previous = signal.signal(signal.SIGINT, mine)
    try:
        with signals_as_stop() as signals:
            assert signal.getsignal(signal.SIGINT) is mine
            assert signal.SIGINT not in signals.handled
    finally:
        signal.signal(signal.SIGINT, previous)


LATE_SIGNAL = """
import os, signal, threading

# The signal lands on a helper thread while the caller's thread is blocked in the run: CPython
# then only sets a flag, and the caller's thread runs the handler when it next wakes.
go = threading.Event()

def send_late():
    go.wait()
    main = threading.main_thread().ident
    while sys._current_frames()[main].f_code.co_name != "wait":  # until it blocks in a wait
        go.wait(0.001)
    os.kill(os.getpid(), signal.{signal})

threading.Thread(target=send_late, daemon=True).start()
signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.{signal}}})  # the helper alone takes it

def trigger(xs):
    for x in xs:
        if x == 20000:  # well after the caller's thread began to wait
            go.set()
        if x < 20000:  # then nothing more: the caller's thread waits, on run() and on a loop
            yield x
{handler}
try:
    {body}
except KeyboardInterrupt:
    note("interrupted")
    sys.exit(7)
"""


@pytest.mark.parametrize("how", ["run", "iterate"])
@pytest.mark.parametrize("whose", ["ours", "the application's"])
def test_a_signal_that_lands_on_another_thread_still_stops_the_run(
    tmp_path: Path, how: str, whose: str
) -> None:
    """A Ctrl-C (our handler) or a SIGTERM (the application's own handler) taken by another
    thread while the caller's thread waits in the run is handled within a wait's slice, not
    left pending until the pipeline ends (here: never)."""
    handler = (
        ""
        if whose == "ours"
        else 'def handler(signum, frame):\n    note("own handler")\n    raise KeyboardInterrupt\n'
        "signal.signal(signal.SIGTERM, handler)\n"
    )
    body = {
        "run": "Pipeline.source(endless).then(trigger).then(work).sink(total).run()",
        "iterate": "for _ in Pipeline.source(endless).then(trigger).then(work):\n        pass",
    }[how]
    script = LATE_SIGNAL.format(
        signal="SIGINT" if whose == "ours" else "SIGTERM", handler=handler, body=body
    )
    process, log = start(tmp_path, script)
    wait_ready(process)
    returncode, stderr = finish(process)
    assert returncode == 7, stderr
    lines = log.read_text().splitlines()
    assert "interrupted" in lines
    assert {"source finally", "work finally"} <= set(lines)
    assert ("own handler" in lines) == (whose != "ours")


class Alarm(Exception):
    """What the application's SIGALRM handler raises (a timeout, say)."""


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def add_one(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield x + 1


@pytest.mark.parametrize(
    "taken_by", ["the caller's thread", "another thread", "another thread, the caller blocking it"]
)
@pytest.mark.parametrize("thread", ["pipeline-signals", "pipeline-add_one-0"])
def test_a_raising_handlers_signal_during_the_start_is_raised_once_every_thread_runs(
    monkeypatch: pytest.MonkeyPatch, thread: str, taken_by: str
) -> None:
    """A signal whose handler (the application's) raises, sent as the run starts one of its
    threads, is handled once every thread has started: the run then stops, joins them, and
    raises the handler's exception, with no note of a start that failed (before, in the
    relay thread's start, "cannot join thread before it is started" replaced it). The same
    when another thread takes the signal: the caller's thread still runs the handler, even
    where it blocks the signal itself (sent to it again, the signal would wait forever)."""
    real_start = threading.Thread.start
    sent: list[str] = []
    go, taken = threading.Event(), threading.Event()

    def take() -> None:  # the signal lands on this thread, which then lets the caller go on
        if go.wait(WAIT) and taken_by.startswith("another thread"):
            signal.pthread_kill(threading.get_ident(), signal.SIGALRM)
            taken.set()

    other = threading.Thread(target=take)
    other.start()

    def start(self: threading.Thread) -> None:
        if self.name == thread and not sent:
            sent.append(self.name)
            if taken_by.startswith("another thread"):
                go.set()
                assert taken.wait(WAIT)
            else:
                os.kill(os.getpid(), signal.SIGALRM)
            for _ in range(100):  # the caller's thread runs the handler here, at the latest
                pass
        real_start(self)

    def handler(signum: int, frame: object) -> None:
        del signum, frame
        raise Alarm

    previous = signal.signal(signal.SIGALRM, handler)
    monkeypatch.setattr(threading.Thread, "start", start)
    blocking = taken_by.endswith("blocking it")
    if blocking:  # as an application that leaves its signals to another thread does
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        with pytest.raises(Alarm) as caught:
            Pipeline.source(numbers, n=10**6).then(add_one).sink(sum).run()
    finally:
        if blocking:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
        monkeypatch.undo()
        go.set()  # (if the caller's thread took it, this one ends without sending)
        other.join(WAIT)
        signal.signal(signal.SIGALRM, previous)
    assert sent == [thread]
    notes = list(getattr(caught.value, "__notes__", []))
    assert not any("while starting" in note for note in notes), notes


@pytest.mark.parametrize("thread", ["pipeline-signals", "pipeline-add_one-0"])
def test_a_thread_that_cannot_start_raises_why(
    monkeypatch: pytest.MonkeyPatch, thread: str
) -> None:
    """A thread of the run that cannot start (the process is out of threads) raises that
    error, not an internal one from joining a thread that never ran."""
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if self.name == thread:
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    with pytest.raises(RuntimeError) as caught:
        Pipeline.source(numbers, n=10**9).then(add_one).sink(sum).run()
    assert str(caught.value) == "can't start new thread"
