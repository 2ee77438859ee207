"""The workloads of ``processes.py`` on pipeline-lib (the seed's evolved form), for a same-run
peer baseline: ``processes.py`` runs this with the Python named by ``PIPELINE_LIB_PYTHON``
(one with ``pipeline-lib`` and numpy installed; never run by CI). Every task runs in worker
processes there, the source and the sink included. Each figure is the best of a few runs.
"""

from __future__ import annotations

import importlib
import multiprocessing
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from benchmarks.workloads import (  # noqa: E402
    add_one_stage,
    arrays,
    consume,
    die_at,
    listed,
    numbers,
    rounds,
    spin_stage,
    touch,
)

# Not installed where the type checkers run: imported by name, typed loosely.
_peer: Any = importlib.import_module("pipeline_lib")
PipelineTask: Any = _peer.PipelineTask
execute: Any = _peer.execute

QUICK = "--quick" in sys.argv
REPEATS = 1 if QUICK else 3
MODE = "process-fork"  # its fastest process mode


def best(fn: Callable[[], object]) -> float:
    """``fn``'s best time over :data:`REPEATS` runs."""
    return rounds(REPEATS, fn)[0]


def run(tasks: list[Any], mode: str = MODE) -> None:
    execute(tasks, parallelism=mode, type_check_pipeline=False)


def chain(source: Any, constants: dict[str, Any], stage: Any, workers: int, **task: Any) -> None:
    run(
        [
            PipelineTask(source, constants=constants, **task),
            PipelineTask(stage, num_workers=workers, **task),
            PipelineTask(consume),
        ]
    )


def cpu_bound() -> None:
    n = 1000 if QUICK else 4000
    one = best(lambda: chain(numbers, {"n": n}, spin_stage, 1, packets_in_flight=64))
    two = best(lambda: chain(numbers, {"n": n}, spin_stage, 2, packets_in_flight=64))
    print(
        f"pipeline-lib ({MODE}): pure-Python CPU, {n} x 0.5 ms: 1 worker {one * 1e3:.0f} ms; "
        f"2 workers {two * 1e3:.0f} ms = {one / two:.2f}x"
    )


def small_items() -> None:
    n = 50_000 if QUICK else 200_000
    took = best(lambda: chain(numbers, {"n": n}, add_one_stage, 2, packets_in_flight=256))
    print(
        f"pipeline-lib ({MODE}): {n:,} small ints through a 2-worker task: "
        f"{took / n * 1e6:.2f} us/item"
    )


def big_arrays() -> None:
    import numpy as np

    n, size = (10 if QUICK else 50), 40 * 10**6
    shared = {"packets_in_flight": 2, "max_message_size": size + 4096, "shared_buffer": True}
    made = [np.ones(size, dtype=np.uint8) for _ in range(n)]
    premade = best(lambda: chain(listed, {"items": made}, touch, 1, **shared))
    fresh = best(lambda: chain(arrays, {"n": n, "size": size}, touch, 1, **shared))
    print(
        f"pipeline-lib ({MODE}): {n} numpy arrays of 40 MB through a 1-worker task, shared "
        f"buffers: made beforehand {premade / n * 1e3:.1f} ms/item; made by the source as it "
        f"goes {fresh / n * 1e3:.1f} ms/item"
    )


def death() -> None:
    when = multiprocessing.get_context("fork").Value("d", 0.0)
    latencies: list[float] = []
    for _ in range(3 if QUICK else 10):
        try:
            run(
                [
                    PipelineTask(numbers, constants={"n": 1000}),
                    PipelineTask(
                        die_at,
                        constants={"at": 500, "when": when},
                        num_workers=2,
                        packets_in_flight=2,
                    ),
                    PipelineTask(consume),
                ]
            )
        except Exception:
            if not when.value:
                raise
            latencies.append(time.monotonic() - when.value)
        else:
            raise AssertionError("the worker did not die")
    print(
        f"pipeline-lib ({MODE}): a worker SIGKILLed: an exception in the caller after median "
        f"{statistics.median(latencies) * 1e3:.1f} ms, max {max(latencies) * 1e3:.1f} ms"
    )


FIRST = """
import sys, time
sys.path.insert(0, {root!r})
from pipeline_lib import PipelineTask, execute
from benchmarks.workloads import numbers, add_one_stage, consume
if __name__ == "__main__":
    started = time.perf_counter()
    execute(
        [
            PipelineTask(numbers, constants={{"n": 10}}),
            PipelineTask(add_one_stage, num_workers=2, packets_in_flight=2),
            PipelineTask(consume),
        ],
        parallelism={mode!r},
        type_check_pipeline=False,
    )
    print(time.perf_counter() - started)
"""


def first_pipeline() -> None:
    for mode in ("process-fork", "process-spawn"):
        script = FIRST.format(root=str(ROOT), mode=mode)
        runs = [
            float(
                subprocess.run(
                    [sys.executable, "-c", script], capture_output=True, text=True, check=True
                ).stdout.split()[-1]
            )
            for _ in range(REPEATS)
        ]
        print(
            f"pipeline-lib ({mode}): first pipeline, 10 items, start to end "
            f"{min(runs) * 1e3:.0f} ms"
        )


if __name__ == "__main__":
    cpu_bound()
    small_items()
    big_arrays()
    death()
    first_pipeline()
