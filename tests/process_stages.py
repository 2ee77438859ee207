"""Stage functions for process stages: at module level, so that they pickle under spawn."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class StageError(Exception):
    """What a failing stage raises; ``code`` checks that attributes survive the trip."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def square(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield x * x


def total(xs: Iterable[int]) -> int:
    return sum(xs)


def pids(xs: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Each item with the pid of the process that handled it."""
    pid = os.getpid()
    for x in xs:
        yield pid, x


def marked(xs: Iterable[int], where: str, behaviour: str, at: int) -> Iterator[int]:
    """Passes items through; writes a file when it starts and when its ``finally`` runs
    (named by pid), and misbehaves at item ``at`` as ``behaviour`` says."""
    folder = Path(where)
    (folder / f"start-{os.getpid()}").touch()
    try:
        for x in xs:
            if x == at:
                misbehave(behaviour)
                if behaviour == "return_early":
                    return
            yield x
    finally:
        (folder / f"finally-{os.getpid()}").touch()


def marked_source(n: int, where: str, behaviour: str, at: int) -> Iterator[int]:
    """A source version of :func:`marked`."""
    yield from marked(range(n), where, behaviour, at)


def marked_sink(xs: Iterable[int], where: str, behaviour: str, at: int) -> None:
    """A sink version of :func:`marked`."""
    for _ in marked(xs, where, behaviour, at):
        pass


def misbehave(behaviour: str) -> None:
    """Fail the way ``behaviour`` names."""
    if behaviour == "raise":
        raise StageError("bad item", code=42)
    if behaviour == "ki":
        raise KeyboardInterrupt
    if behaviour == "exit":
        raise SystemExit(3)
    if behaviour == "os_exit":
        os._exit(7)
    if behaviour == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if behaviour == "segfault":
        import ctypes  # here: a test of what a first pipeline imports uses this module

        ctypes.string_at(0)


def unpicklable_results(xs: Iterable[int]) -> Iterator[object]:
    """Yields a lock for item 3: it cannot be pickled back."""
    import threading

    for x in xs:
        yield threading.Lock() if x == 3 else x


def stuck(xs: Iterable[int], where: str) -> Iterator[int]:
    """Ignores the stop: sleeps a minute in its finally (a call nothing interrupts)."""
    try:
        yield from xs
    finally:
        (Path(where) / f"stuck-{os.getpid()}").touch()
        time.sleep(60)  # sleep-ok: the stuck call under test; the worker is killed


def sleepy(xs: Iterable[int]) -> Iterator[int]:
    """Sleeps on item 1, in its own code (for the stall diagnosis)."""
    for x in xs:
        if x == 1:
            time.sleep(30)  # sleep-ok: the stall under test
        yield x


def arrays(n: int, size: int) -> Iterator[object]:
    """``n`` numpy arrays of ``size`` bytes, item ``i`` filled with ``i % 256``."""
    import numpy as np

    for i in range(n):
        yield np.full(size, i % 256, dtype=np.uint8)


def touch_arrays(xs: Iterable[object]) -> Iterator[object]:
    """Passes arrays through, adding one to each."""
    import numpy as np

    for x in xs:
        assert isinstance(x, np.ndarray)
        yield x + 1


def pid_of_parent(xs: Iterable[int]) -> Iterator[int]:
    """Yields minus the pid of this worker, then its input."""
    yield -os.getpid()
    yield from xs


def generated(n: int) -> Iterator[int]:
    """A source that runs in a worker process."""
    yield from range(n)


def bump_in_place(xs: Iterable[object]) -> Iterator[object]:
    """Adds one to element 1 of each array, in place, and passes the same array on."""
    for x in xs:
        x[1] += 1  # type: ignore[index]
        yield x


def blobs(xs: Iterable[int], size: int) -> Iterator[bytearray]:
    """A ``bytearray`` of ``size`` bytes per item."""
    for _ in xs:
        yield bytearray(size)


def half_fail(x: int) -> int:
    """Fails on odd items."""
    if x % 2:
        raise ValueError(f"odd {x}")
    return x


def record_failure(item: object, exc: Exception) -> None:
    """An on_error that only lets the item be dropped (and counted)."""
    del item, exc


def slow_pids(xs: Iterable[int]) -> Iterator[tuple[int, int]]:
    """Each item with the pid of the process that handled it, 5 ms apart."""
    pid = os.getpid()
    for x in xs:
        time.sleep(0.005)  # sleep-ok: a slow stage's work
        yield pid, x


def big_strings(n: int, size: int) -> Iterator[str]:
    """``n`` strings of ``size`` characters: they travel inside the pipe, not out of band."""
    for i in range(n):
        yield str(i % 10) * size


def big_bytes(xs: Iterable[str]) -> Iterator[bytes]:
    """Each string as bytes, twice over: large results that travel inside the pipe too."""
    for x in xs:
        yield x.encode() * 2


def into_shared(xs: Iterable[int], value: Any, array: Any, queue: Any) -> Iterator[int]:
    """Passes items on, counting them in ``value``, writing each into ``array`` at its own
    index and putting it on ``queue``: multiprocessing objects shared with the caller."""
    for x in xs:
        value.value += 1
        array[x] = x
        queue.put(x)
        yield x


def starts_a_process(xs: Iterable[int]) -> Iterator[int]:
    """Starts a multiprocessing process (which a worker, daemonic, may not), then passes
    items on."""
    import multiprocessing

    multiprocessing.Process(target=os.getpid).start()
    yield from xs


def reads_stdin(xs: Iterable[int]) -> Iterator[str]:
    """What the worker's standard input holds, once per item."""
    import sys

    for _ in xs:
        yield sys.stdin.read()


def prints(xs: Iterable[int]) -> Iterator[int]:
    """Prints each item, without a newline or a flush, and passes it on."""
    for x in xs:
        print(f"<{x}>", end="")
        yield x


class RefusedAtStart:
    """A constant that pickles when the pipeline is built, but not while a worker starts."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        from multiprocessing.context import get_spawning_popen

        if get_spawning_popen() is not None:
            raise RuntimeError("refused at start")
        return (RefusedAtStart, ())


def passing(xs: Iterable[int], constant: object) -> Iterator[int]:
    yield from xs


def acknowledged(xs: Iterable[int], ack: Any) -> Iterator[object]:
    """Yields each item, then waits for the caller to acknowledge it (yielding "late" if
    that took 5 s), then works 20 ms before the next one."""
    for x in xs:
        yield x
        if not ack.wait(5.0):
            yield "late"
        ack.clear()
        time.sleep(0.02)  # sleep-ok: the stage's work on the next item


def pairs_acknowledged(xs: Iterable[int], ack: Any) -> Iterator[object]:
    """Yields two results for each item, back to back, then waits for the caller to
    acknowledge the second (yielding "late" if that took 5 s): the second waits, unsent,
    while the stage's own code runs."""
    for x in xs:
        yield (x, "a")
        yield (x, "b")
        if not ack.wait(5.0):
            yield "late"
        ack.clear()


def fail_at(xs: Iterable[int], at: int) -> Iterator[int]:
    """Passes items on; raises StageError on item ``at``."""
    for x in xs:
        if x == at:
            raise StageError(f"item {x}", code=x)
        yield x


def imported(xs: Iterable[int], module: str = "cloudpickle") -> Iterator[bool]:
    """For each item, whether this worker has imported ``module``."""
    import sys

    for _ in xs:
        yield module in sys.modules


def lying(xs: Iterable[int]) -> Iterator[int]:
    """Declares int, yields a str for item 3."""
    for x in xs:
        yield "three" if x == 3 else x  # type: ignore[misc]


def signal_state(xs: Iterable[int]) -> Iterator[tuple[list[int], bool]]:
    """What a stage in a worker sees of SIGINT and SIGTERM: those of the two its thread
    blocks, and whether SIGINT is ignored."""
    for _ in xs:
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        held = sorted(int(s) for s in blocked & {signal.SIGINT, signal.SIGTERM})
        yield held, signal.getsignal(signal.SIGINT) == signal.SIG_IGN
