"""Throughput and latency of the threaded runner against baselines measured in the same run.

Run with ``python3 dev.py bench`` (or ``python benchmarks/bench.py``); never run by CI. Prints
one line per figure: ours, the baseline, and their ratio, with the issue's target.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import io
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from pipeline_executor import Monitor, Pipeline
from pipeline_executor._stages import DEFAULT_BUFFER

N_SMALL = 200_000


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


def add_one(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield x + 1


def double(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield x * 2


def total(xs: Iterable[int]) -> int:
    return sum(xs)


def plain_chain(n: int) -> int:
    return total(double(add_one(numbers(n))))


_DONE = object()


def queue_pipeline(n: int) -> int:
    """The hand-written baseline: one thread per stage, ``queue.Queue`` between them."""
    q1: queue.Queue[object] = queue.Queue(64)
    q2: queue.Queue[object] = queue.Queue(64)
    q3: queue.Queue[object] = queue.Queue(64)
    result: list[int] = []

    def drain(q: queue.Queue[object]) -> Iterator[int]:
        while (item := q.get()) is not _DONE:
            yield item  # type: ignore[misc]

    def produce() -> None:
        for x in numbers(n):
            q1.put(x)
        q1.put(_DONE)

    def stage(
        fn: Callable[[Iterable[int]], Iterator[int]], a: queue.Queue[object], b: queue.Queue[object]
    ) -> None:
        for x in fn(drain(a)):
            b.put(x)
        b.put(_DONE)

    def sink() -> None:
        result.append(total(drain(q3)))

    threads = [
        threading.Thread(target=produce),
        threading.Thread(target=stage, args=(add_one, q1, q2)),
        threading.Thread(target=stage, args=(double, q2, q3)),
        threading.Thread(target=sink),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return result[0]


def ours(n: int, buffer: int | None = None) -> int:
    return (
        Pipeline.source(numbers, buffer=buffer, n=n)
        .then(add_one, buffer=buffer)
        .then(double, buffer=buffer)
        .sink(total)
        .run()
    )


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times: list[float] = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def small_items(repeat: int) -> None:
    n = N_SMALL
    expected = plain_chain(n)
    assert ours(n) == expected == queue_pipeline(n)
    plain = best_of(repeat, lambda: plain_chain(n)) / n * 1e6
    hand = best_of(repeat, lambda: queue_pipeline(n)) / n * 1e6
    mine = best_of(repeat, lambda: ours(n)) / n * 1e6
    print(f"small items ({n:,} ints, 3 hops), us/item:")
    print(f"  plain generator chain   {plain:6.2f}")
    print(f"  threads + queue.Queue   {hand:6.2f}")
    print(
        f"  pipeline_executor       {mine:6.2f}   target <= 2.00; "
        f"{hand / mine:.1f}x faster than queue.Queue (target >= 6x)"
    )


def observed(repeat: int) -> None:
    """What watching costs: a Monitor with a progress callback, and the live display."""
    n = N_SMALL

    def plain() -> int:
        return ours(n)

    def with_monitor() -> int:
        monitor = Monitor(lambda stats: None, interval=0.05)
        return (
            Pipeline.source(numbers, n=n)
            .then(add_one)
            .then(double)
            .sink(total)
            .run(monitor=monitor)
        )

    def with_display() -> int:
        screen = io.StringIO()
        return (
            Pipeline.source(numbers, n=n)
            .then(add_one)
            .then(double)
            .sink(total)
            .run(progress=screen)
        )

    base = best_of(repeat, plain) / n * 1e6
    monitored = best_of(repeat, with_monitor) / n * 1e6
    displayed = best_of(repeat, with_display) / n * 1e6
    print("small items, watched, us/item:")
    print(f"  plain run()                        {base:6.2f}")
    print(f"  Monitor, on_progress every 50 ms   {monitored:6.2f}  ({monitored / base:.2f}x; "
          "target <= 1.10x)")  # fmt: skip
    print(f"  progress display (rich)            {displayed:6.2f}  ({displayed / base:.2f}x; "
          "target <= 1.05x)")  # fmt: skip


def buffer_sweep(repeat: int) -> None:
    n = N_SMALL
    print(f"small items by buffer size (every stage), us/item; default is {DEFAULT_BUFFER}:")
    results: dict[int, float] = {}
    for buffer in (16, 64, 256, 1024, 2048, 4096, 8192, 16384, 32768):
        results[buffer] = best_of(repeat, functools.partial(ours, n, buffer)) / n * 1e6
    best = min(results.values())
    for buffer, t in results.items():
        print(f"  buffer={buffer:<6} {t:6.2f}  ({t / best:.2f}x the best)")
    within = min(b for b, t in results.items() if t <= 1.10 * best)
    print(f"  smallest buffer within 10% of the best: {within}")


def sleeper(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        time.sleep(0.002)
        yield x


def io_bound(repeat: int) -> None:
    n = 2000
    ideal = n * 0.002 / 16

    def run() -> None:
        got = Pipeline.source(numbers, n=n).then(sleeper, threads=16).sink(total).run()
        assert got == sum(range(n))

    def sleeps() -> None:
        for _ in range(n // 16):
            time.sleep(0.002)

    def bare_threads() -> None:
        """The same sleeps on 16 plain threads, no pipeline: what the machine allows."""
        workers = [threading.Thread(target=sleeps) for _ in range(16)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    actual = best_of(repeat, run)
    bare = best_of(repeat, bare_threads)
    print(
        f"I/O: {n} items x 2 ms sleep on 16 threads: {actual:.3f} s, efficiency "
        f"{ideal / actual:.3f} (target >= 0.93); bare threads, no pipeline: {bare:.3f} s, "
        f"efficiency {ideal / bare:.3f}"
    )


def blobs(n: int) -> Iterator[bytes]:
    blob = b"x" * (1 << 20)
    for _ in range(n):
        yield blob


def digest(blobs: Iterable[bytes]) -> Iterator[bytes]:
    for blob in blobs:
        yield hashlib.sha256(blob).digest()


def count(items: Iterable[object]) -> int:
    return sum(1 for _ in items)


def gil_free(repeat: int) -> None:
    n = 400

    def run(threads: int) -> float:
        return best_of(
            repeat,
            lambda: Pipeline.source(blobs, n=n).then(digest, threads=threads).sink(count).run(),
        )

    one, two = run(1), run(2)
    print(
        f"GIL-free CPU: {n} x 1 MiB sha256: 1 thread {one:.3f} s, 2 threads {two:.3f} s, "
        f"speed-up {one / two:.2f}x (target >= 1.85x)"
    )


class _Boom(Exception):
    pass


def endless() -> Iterator[int]:
    n = 0
    while True:
        yield n
        n += 1


def error_latency(repeat: int) -> None:
    raised_at: list[float] = []

    def explode(xs: Iterable[int]) -> Iterator[int]:
        for x in xs:
            if x == 1000:
                raised_at.append(time.perf_counter())
                raise _Boom
            yield x

    latencies: list[float] = []
    for _ in range(max(repeat, 20)):
        try:
            Pipeline.source(endless).then(explode).sink(count).run()
        except _Boom:
            latencies.append(time.perf_counter() - raised_at.pop())
    print(
        f"error latency (raise at item 1,000 -> caller's except): median "
        f"{statistics.median(latencies) * 1e3:.3f} ms, max {max(latencies) * 1e3:.3f} ms "
        f"over {len(latencies)} runs (target < 2 ms)"
    )


STARTUP_OURS = """
import time
t0, c0 = time.perf_counter(), time.process_time()
from collections.abc import Iterable, Iterator
from pipeline_executor import Pipeline

def numbers(n: int) -> Iterator[int]:
    yield from range(n)

def add(xs: Iterable[int], k: int) -> Iterator[int]:
    for x in xs:
        yield x + k

assert Pipeline.source(numbers, n=100).then(add, k=1).sink(sum).run() == 5050
print(time.perf_counter() - t0, time.process_time() - c0)
"""

STARTUP_BARE = """
import time
t0, c0 = time.perf_counter(), time.process_time()
import queue
import threading

END = object()
q1, q2 = queue.Queue(), queue.Queue()
result = []

def numbers(n):
    for i in range(n):
        q1.put(i)
    q1.put(END)

def add(k):
    while (x := q1.get()) is not END:
        q2.put(x + k)
    q2.put(END)

threads = [threading.Thread(target=numbers, args=(100,)), threading.Thread(target=add, args=(1,))]
for t in threads:
    t.start()
total = 0
while (x := q2.get()) is not END:
    total += x
for t in threads:
    t.join()
assert total == 5050
print(time.perf_counter() - t0, time.process_time() - c0)
"""


STARTUP_IMPORT = """
import time
t0, c0 = time.perf_counter(), time.process_time()
from pipeline_executor import Pipeline  # what a user imports (the package loads it then)
print(time.perf_counter() - t0, time.process_time() - c0)
"""

STARTUP_FLOOR = """
import time
t0, c0 = time.perf_counter(), time.process_time()
import enum, threading, typing
print(time.perf_counter() - t0, time.process_time() - c0)
"""


def fresh(code: str) -> tuple[float, float]:
    """Seconds of wall-clock and of CPU time ``code`` reports in a fresh interpreter (its own
    imports, build and run; the interpreter's start-up is not counted). Bytecode is written
    and reused, as in a user's installation, even where the environment turns it off."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.split()
    return float(out[0]), float(out[1])


def startup(repeat: int) -> None:
    runs = max(repeat, 10)
    codes = (STARTUP_OURS, STARTUP_BARE, STARTUP_IMPORT, STARTUP_FLOOR)
    fresh(STARTUP_OURS)  # writes the bytecode caches
    times: list[list[tuple[float, float]]] = [[] for _ in codes]
    for _ in range(runs):  # interleaved, so that all four see the same machine
        for code, found in zip(codes, times, strict=True):
            found.append(fresh(code))
    (wall, cpu), (bare_wall, bare_cpu), (alone, _), (floor, _) = (
        tuple(statistics.median(t[i] for t in found) * 1e3 for i in (0, 1)) for found in times
    )
    print(
        "time to first result in a fresh interpreter (import + build + run of a 2-stage "
        f"pipeline with int constants, 100 items), median of {runs}: {wall:.1f} ms "
        f"({cpu:.1f} ms CPU); bare threads + queue.Queue {bare_wall:.1f} ms ({bare_cpu:.1f} ms "
        "CPU) (target < 25 ms)"
    )
    # What the first line is made of: the package's import alone, and the floor of the
    # standard library it cannot do without (typing, which imports re and enum; threading).
    print(
        f"of which: from pipeline_executor import Pipeline alone {alone:.1f} ms; the standard "
        "library's "
        f"floor (import enum, threading, typing) {floor:.1f} ms; same runs"
    )


def listed(values: list[int]) -> Iterator[int]:
    yield from values


def large_constant(repeat: int) -> None:
    big = list(range(10_000_000))
    small = list(range(10))
    build_big = best_of(repeat, lambda: Pipeline.source(listed, values=big)) * 1e3
    build_small = best_of(repeat, lambda: Pipeline.source(listed, values=small)) * 1e3
    print(
        f"build with a 10,000,000-item list[int] constant: {build_big:.2f} ms; "
        f"with a 10-item one {build_small:.2f} ms (target < 50 ms)"
    )


def auto_small(repeat: int) -> None:
    """Small ints: the default (auto) buffers against the best explicit count."""
    n = N_SMALL
    counts = (1024, 2048, 4096, 8192, 16384)
    times = {c: best_of(repeat, functools.partial(ours, n, c)) / n * 1e6 for c in counts}
    auto = best_of(repeat, functools.partial(ours, n)) / n * 1e6
    best = min(times, key=lambda c: times[c])
    print(
        f"small items, default (auto) buffers: {auto:.3f} us/item; best explicit count "
        f"{best}: {times[best]:.3f} ({auto / times[best]:.3f}x; target <= 1.05x)"
    )


def fresh_items(n: int, size: int) -> Iterator[bytearray]:
    for _ in range(n):
        yield bytearray(size)


def copied(items: Iterable[bytes | bytearray]) -> Iterator[bytes]:
    for item in items:
        yield bytes(item)


def hops(n: int, size: int, buffer: int | None) -> int:
    """Fresh items of ``size`` bytes, copied by each of 3 hops."""
    return (
        Pipeline.source(fresh_items, buffer=buffer, n=n, size=size)
        .then(copied, buffer=buffer)
        .then(copied, buffer=buffer)
        .sink(count)
        .run()
    )


def auto_sizes(repeat: int) -> None:
    """Medium and large items: the default against the best explicit count, per size."""
    print("items by size, default (auto) buffers against the best count (3 hops), us/item:")
    for size, n in ((1 << 10, 100_000), (16 << 10, 20_000), (256 << 10, 2_000), (4 << 20, 200)):
        counts = [c for c in (4, 16, 64, 256, 1024, 8192) if c * size <= 1 << 30]
        times = {c: best_of(repeat, functools.partial(hops, n, size, c)) / n * 1e6 for c in counts}
        auto = best_of(repeat, functools.partial(hops, n, size, None)) / n * 1e6
        best = min(times, key=lambda c: times[c])
        old = times.get(8192)
        print(
            f"  {size >> 10:>5} KiB: auto {auto:8.2f}; best count {best:>4} {times[best]:8.2f} "
            f"({auto / times[best]:.2f}x)"
            + (f"; old default 8192 {old:8.2f} ({old / times[best]:.2f}x)" if old else "")
        )


_RSS_CHILD = """
import os, sys, time
from pipeline_executor import Pipeline

def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) << 10

def arrays(n, size):
    for _ in range(n):
        yield bytearray(size)

def copy(items):
    for item in items:
        yield bytes(item)

def slow(items):
    done = 0
    for _ in items:
        time.sleep(0.05)
        done += 1
    return done

def run(n, size, options):
    return (Pipeline.source(arrays, n=n, size=size, **options)
            .then(copy, threads=2, **options).then(copy, threads=2, **options)
            .sink(slow).run())

options = eval(sys.argv[1])
run(20, 1, options)
before = peak()
run(60, 50_000_000, options)
print(peak() - before)
"""


def auto_rss(repeat: int) -> None:
    """Peak RSS growth, 60 x 50 MB items, 2 GiB budget by the environment variable."""
    del repeat
    budget = 2 << 30
    env = {**os.environ, "PIPELINE_EXECUTOR_MEMORY_BUDGET": str(budget)}
    growth = {}
    for label, options in (("auto", "{}"), ("buffer=8192", "{'buffer': 8192}")):
        result = subprocess.run(
            [sys.executable, "-c", _RSS_CHILD, options],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
        growth[label] = int(result.stdout) / (1 << 20)
    # The 3 buffers share the budget (an explicit one is not capped per buffer), plus one
    # 50 MB item per thread (1 + 2 + 2 + 1) between reading and producing.
    bound = (budget + 6 * 50_000_000) / (1 << 20)
    print(
        f"peak RSS growth, 60 x 50 MB, source -> copy x2 -> copy x2 -> slow sink, 2 GiB "
        f"budget: auto {growth['auto']:,.0f} MiB (bound: budget + one item per thread = "
        f"{bound:,.0f} MiB); buffer=8192 {growth['buffer=8192']:,.0f} MiB"
    )


def jittered(x: int) -> int:
    time.sleep((x * 7919 % 601) / 1e6)  # 0 to 0.6 ms, spread evenly over the items
    return x


def ordered_cost(repeat: int) -> None:
    """What keeping the input order costs: 1,000 items of 0-0.6 ms on 4 threads."""
    n = 1000

    def run(ordered: bool) -> float:
        pipeline = Pipeline.source(numbers, n=n).map(jittered, threads=4, ordered=ordered)
        start = time.perf_counter()
        got = list(pipeline)
        elapsed = time.perf_counter() - start
        assert sorted(got) == list(range(n))
        assert got == list(range(n)) or not ordered
        return elapsed

    unordered: list[float] = []
    ordered: list[float] = []
    for _ in range(repeat):  # interleaved, so that both see the same machine
        unordered.append(run(False))
        ordered.append(run(True))
    best_u, best_o = min(unordered), min(ordered)
    median_u, median_o = statistics.median(unordered), statistics.median(ordered)
    print(
        f"ordered map: {n} items x 0-0.6 ms sleep on 4 threads: ordered {best_o * 1e3:.1f} ms "
        f"vs unordered {best_u * 1e3:.1f} ms (best of {repeat}): {best_o / best_u:.3f}x; "
        f"medians {median_o * 1e3:.1f} vs {median_u * 1e3:.1f} ms: "
        f"{median_o / median_u:.3f}x (target <= 1.05x)"
    )


def add1(x: int) -> int:
    return x + 1


def mul2(x: int) -> int:
    return x * 2


def operators(repeat: int) -> None:
    """What the per-item operators cost against the same chain written with then()."""
    n = N_SMALL
    expected = plain_chain(n)

    def with_map() -> int:
        return Pipeline.source(numbers, n=n).map(add1).map(mul2).sink(total).run()

    def with_then() -> int:
        return Pipeline.source(numbers, n=n).then(add_one).then(double).sink(total).run()

    assert with_map() == with_then() == expected
    mapped: list[float] = []
    thened: list[float] = []
    for _ in range(repeat):
        mapped.append(best_of(1, with_map))
        thened.append(best_of(1, with_then))
    best_m, best_t = min(mapped) / n * 1e6, min(thened) / n * 1e6
    print(
        f"operators ({n:,} ints): .map(add1).map(mul2) {best_m:.2f} us/item vs "
        f".then(add_one).then(double) {best_t:.2f} us/item: {best_m / best_t:.2f}x "
        "(target <= 1.2x)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs")
    parser.add_argument(
        "--only",
        choices=[
            "small",
            "observed",
            "sweep",
            "io",
            "cpu",
            "error",
            "startup",
            "constant",
            "auto",
            "sizes",
            "rss",
            "ordered",
            "operators",
        ],
    )
    args = parser.parse_args()
    figures = {
        "small": small_items,
        "observed": observed,
        "sweep": buffer_sweep,
        "io": io_bound,
        "cpu": gil_free,
        "error": error_latency,
        "startup": startup,
        "constant": large_constant,
        "auto": auto_small,
        "sizes": auto_sizes,
        "rss": auto_rss,
        "ordered": ordered_cost,
        "operators": operators,
    }
    for name, figure in figures.items():
        if args.only in (None, name):
            figure(args.repeat)


if __name__ == "__main__":
    main()
