"""Process stages against ProcessPoolExecutor, measured in the same run (never run by CI).

Run it with the environment ``python3 dev.py test`` makes (it has numpy):
``.venv/bin/python benchmarks/processes.py [--quick] [--only cpu|small|arrays|death|first]``.
Each figure is the best of a few repeats, the contenders of a workload measured in interleaved
rounds (a VM's speed can drift by 10-20% from minute to minute), each target checked
against a baseline measured here and now:

* pure-Python CPU, 4,000 items x 0.5 ms: 2 processes vs 1 (>= 1.9x, and within 10% of half
  the single-thread time), next to ``ProcessPoolExecutor.map`` (chunked) and two bare
  processes; best of twice as many rounds, and the same ratios taken within each round;
* 200,000 small ints through one 2-process stage (<= 2 us/item, the workers' start included),
  next to the executor's map on a pool already started;
* 50 numpy arrays of 40 MB through a 1-process stage (<= 6 ms/item): arrays made beforehand
  (the crossing alone), and arrays the source makes as it goes, next to the same on a thread;
* how soon a worker's death (SIGKILL) reaches the caller as an exception (<= 50 ms);
* a first pipeline's fixed cost (start, first item, shutdown) per start method
  (fork <= 20 ms, forkserver <= 100 ms, spawn <= 250 ms), next to the executor's.

With ``PIPELINE_LIB_PYTHON`` set to a Python that has pipeline-lib (the seed's evolved form)
and numpy installed, ``peer_pipeline_lib.py`` measures the same workloads there, in the same
run, and its lines are printed last.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# At the top, as a user's main module has it: the forkserver imports the main module once, so
# every worker it starts has numpy already (imported inside a function, each worker would pay
# about 60 ms for it at its first array).
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.workloads import (  # noqa: E402
    add_one,
    add_one_stage,
    arrays,
    consume,
    die_at,
    listed,
    numbers,
    rounds,
    spin,
    spin_stage,
    timings,
    touch,
)
from pipeline_executor import Pipeline, WorkerDiedError  # noqa: E402

QUICK = "--quick" in sys.argv
REPEATS = 1 if QUICK else 5


def spin_range(start: int, stop: int) -> None:
    for i in range(start, stop):
        spin(i)


def bare_processes(n: int) -> None:
    """Two processes, each spinning a fixed half of the items, sending nothing: no transport
    at all, but no sharing either (a slower core makes its half late)."""
    context = multiprocessing.get_context("fork")
    halves = [
        context.Process(target=spin_range, args=(k * n // 2, (k + 1) * n // 2)) for k in (0, 1)
    ]
    for process in halves:
        process.start()
    for process in halves:
        process.join()


def _spread(ratios: list[float]) -> str:
    return f"{statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]"


def cpu_bound() -> None:
    n = 1000 if QUICK else 4000
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        list(pool.map(spin, range(10)))  # warm the pool
        runs = timings(
            REPEATS * 2,  # this workload's ratios move most with the machine's drift
            lambda: [spin(i) for i in range(n)],
            lambda: Pipeline.source(numbers, n=n).then(spin_stage, processes=1).sink(consume).run(),
            lambda: Pipeline.source(numbers, n=n).then(spin_stage, processes=2).sink(consume).run(),
            lambda: list(pool.map(spin, range(n), chunksize=32)),
            lambda: bare_processes(n),
        )
    single, one, two, executor, bare = (min(times) for times in runs)
    # The same ratios within each round (its runs a few seconds apart), as median [range]:
    # how far the best-of figures above can be trusted on this machine.
    rounds_one_two = [a / b for a, b in zip(runs[1], runs[2], strict=True)]
    rounds_half = [b / (a / 2) for a, b in zip(runs[0], runs[2], strict=True)]
    rounds_bare = [b / (a / 2) for a, b in zip(runs[0], runs[4], strict=True)]
    print(
        f"pure-Python CPU, {n} x 0.5 ms, best of {len(runs[0])}: one thread "
        f"{single * 1e3:.0f} ms; 1 process {one * 1e3:.0f} ms; 2 processes {two * 1e3:.0f} ms = "
        f"{one / two:.2f}x 1 process, {two / (single / 2):.2f}x half the single thread "
        f"(targets >= 1.9x, <= 1.10); ProcessPoolExecutor(2).map chunked "
        f"{executor * 1e3:.0f} ms ({single / executor:.2f}x one thread); two bare forked "
        f"processes with half the items each, nothing sent {bare * 1e3:.0f} ms "
        f"({single / bare:.2f}x one thread, {bare / (single / 2):.2f}x half of it). Our 2 "
        f"processes take {two / executor:.2f}x the executor's time, {two / bare:.2f}x the "
        f"bare processes'. Within each round, median [range]: 2 vs 1 process "
        f"{_spread(rounds_one_two)}x; 2 processes vs half the single thread "
        f"{_spread(rounds_half)}; the bare processes vs half of it {_spread(rounds_bare)}"
    )


def small_items() -> None:
    n = 50_000 if QUICK else 200_000
    with concurrent.futures.ProcessPoolExecutor(2) as pool:
        list(pool.map(add_one, range(10)))
        ours, executor = rounds(
            REPEATS,
            lambda: (
                Pipeline.source(numbers, n=n).then(add_one_stage, processes=2).sink(consume).run()
            ),
            lambda: list(pool.map(add_one, range(n), chunksize=256)),
        )
    print(
        f"{n:,} small ints through one 2-process stage: {ours / n * 1e6:.2f} us/item "
        f"(target <= 2; includes starting the workers); ProcessPoolExecutor(2).map "
        f"chunksize=256, pool already started: {executor / n * 1e6:.2f} us/item"
    )


def arrays_through(
    source: Callable[..., Iterator[object]], processes: int | None, **kwargs: Any
) -> None:
    """40 MB arrays from ``source`` through ``touch`` (on a thread, or in worker processes)."""
    pipeline = Pipeline.source(source, buffer=2, **kwargs)
    if processes:
        pipeline.then(touch, buffer=2, processes=processes).sink(consume).run()
    else:
        pipeline.then(touch, buffer=2).sink(consume).run()


def big_arrays() -> None:
    n, size = (10 if QUICK else 50), 40 * 10**6
    made = [np.ones(size, dtype=np.uint8) for _ in range(n)]
    premade, premade_thread, fresh, fresh_thread = rounds(
        REPEATS,
        lambda: arrays_through(listed, 1, items=made),
        lambda: arrays_through(listed, None, items=made),
        lambda: arrays_through(arrays, 1, n=n, size=size),
        lambda: arrays_through(arrays, None, n=n, size=size),
    )
    made.clear()
    print(
        f"{n} numpy arrays of 40 MB through a 1-process stage, made beforehand: "
        f"{premade / n * 1e3:.1f} ms/item (target <= 6); the same on a thread "
        f"{premade_thread / n * 1e3:.2f} ms/item. Made by the source as it goes: "
        f"{fresh / n * 1e3:.1f} ms/item; on a thread (no crossing, the allocation alone) "
        f"{fresh_thread / n * 1e3:.1f} ms/item"
    )


def death() -> None:
    """From a worker's SIGKILL to the caller's ``except WorkerDiedError``."""
    when = multiprocessing.get_context().Value("d", 0.0)
    latencies: list[float] = []
    for _ in range(3 if QUICK else 10):
        pipeline = (
            Pipeline.source(numbers, n=1000)
            .then(die_at, processes=2, at=500, when=when)
            .sink(consume)
        )
        try:
            pipeline.run()
        except WorkerDiedError:
            latencies.append(time.monotonic() - when.value)
        else:
            raise AssertionError("the worker did not die")
    print(
        f"a worker SIGKILLed: WorkerDiedError in the caller after median "
        f"{statistics.median(latencies) * 1e3:.1f} ms, max {max(latencies) * 1e3:.1f} ms over "
        f"{len(latencies)} runs (target <= 50)"
    )


FIRST = """
import sys, time
sys.path.insert(0, {root!r})
started = time.perf_counter()
{body}
print(time.perf_counter() - started)
"""

OURS = """
from pipeline_executor import Pipeline
from benchmarks.workloads import numbers, add_one_stage
if __name__ == "__main__":
    started = time.perf_counter()
    it = Pipeline.source(numbers, n=10).then(add_one_stage, processes=2).iter(
        start_method={method!r}
    )
    next(it)
    it.close()
"""

EXECUTOR = """
import concurrent.futures, multiprocessing
from benchmarks.workloads import add_one
if __name__ == "__main__":
    started = time.perf_counter()
    context = multiprocessing.get_context({method!r})
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        next(iter(pool.map(add_one, range(10))))
"""


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""A fresh interpreter's environment: bytecode written and reused, as in a user's install."""


def first_pipeline() -> None:
    for method, target in (("fork", 20), ("forkserver", 100), ("spawn", 250)):
        figures: list[float] = []
        for body in (OURS, EXECUTOR):
            script = FIRST.format(root=str(ROOT), body=body.format(method=method))
            runs: list[float] = []
            for _ in range(REPEATS):
                out = subprocess.run(
                    [sys.executable, "-c", script],
                    capture_output=True,
                    text=True,
                    check=True,
                    env=ENV,
                )
                runs.append(float(out.stdout.split()[-1]))
            figures.append(min(runs))
        print(
            f"first pipeline, {method}: start + first item + shutdown {figures[0] * 1e3:.0f} ms "
            f"(target <= {target}); ProcessPoolExecutor {figures[1] * 1e3:.0f} ms"
        )


WORKLOADS: dict[str, Callable[[], None]] = {
    "cpu": cpu_bound,
    "small": small_items,
    "arrays": big_arrays,
    "death": death,
    "first": first_pipeline,
}


def main() -> None:
    multiprocessing.set_start_method("forkserver" if sys.platform == "linux" else "spawn")
    # One forkserver serves the whole run, and whoever starts it chooses what it preloads. The
    # executor's pool, started first, would leave out this module, so that every worker of
    # ours (and of the executor) imported it, numpy included, as it started: a worker's death
    # then waited on its sibling, still booting. Start it as a user's first pipeline does.
    Pipeline.source(numbers, n=1).then(add_one_stage, processes=1).sink(consume).run()
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    for name, workload in WORKLOADS.items():
        if only in (None, name):
            workload()
    peer = os.environ.get("PIPELINE_LIB_PYTHON")
    if peer and only is None:
        script = str(Path(__file__).resolve().parent / "peer_pipeline_lib.py")
        args = [peer, script, *(["--quick"] if QUICK else [])]
        subprocess.run(args, check=True, env=ENV)


if __name__ == "__main__":
    main()
