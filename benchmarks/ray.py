"""The Ray engine next to threads and worker processes, measured in the same run (never run by
CI): ``.venv/bin/python benchmarks/ray.py [--quick]`` after ``python3 dev.py test`` installed
ray. It starts a local Ray on 127.0.0.1 (2 CPUs, a small object store) and prints:

* the fixed cost: starting Ray, a pipeline's actors ready, its first item;
* 50,000 small ints through a 2-instance stage;
* pure-Python CPU, 1,000 items x 0.5 ms, on 2 instances;
* 20 numpy arrays of 40 MB through a 1-instance stage.

Each figure is the best of a few repeats, on each engine in the same process: the flow (from
the first item to the last, per item) and, apart, the time to the first item (which includes
starting a run's actors or processes).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This file is named ray.py: its folder must not be on the path, or it would be `import ray`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

from benchmarks.workloads import add_one_stage, arrays, numbers, spin_stage, touch  # noqa: E402
from pipeline_executor import Pipeline, RayEngine  # noqa: E402

QUICK = "--quick" in sys.argv
REPEATS = 1 if QUICK else 3


def timed(items: Iterator[object]) -> tuple[float, float]:
    """Seconds to the first item and from it to the last (the flow), iterating ``items``."""
    started = time.perf_counter()
    first = None
    for _ in items:
        if first is None:
            first = time.perf_counter()
    ended = time.perf_counter()
    assert first is not None
    return first - started, ended - first


def best(fn: Callable[[], tuple[float, float]]) -> tuple[float, float]:
    """The best flow of a few runs, with the time to the first item of that run."""
    return min((fn() for _ in range(REPEATS)), key=lambda figures: figures[1])


ENGINE = RayEngine(init={"num_cpus": 2, "object_store_memory": 1 << 30})
ENGINES: dict[str, tuple[dict[str, Any], RayEngine | None]] = {
    "threads": ({}, None),
    "processes": ({"processes": True}, None),
    "ray": ({}, ENGINE),
}


def compare(label: str, n: int, make: Callable[[dict[str, Any]], Pipeline[Any]]) -> None:
    """Run ``make(options)`` on each engine; print the flow per item and the first item."""
    parts: list[str] = []
    for name, (options, engine) in ENGINES.items():

        def once(o: dict[str, Any] = options, e: RayEngine | None = engine) -> tuple[float, float]:
            return timed(make(o).iter(engine=e))

        first, flow = best(once)
        parts.append(
            f"{name} {flow / n * 1e6:,.1f} us/item (first item after {first * 1e3:,.0f} ms)"
        )
    print(f"{label}: " + "; ".join(parts))


def workers(options: dict[str, Any], k: int) -> dict[str, Any]:
    return {"processes": k} if options.get("processes") else {"threads": k}


def fixed_cost() -> None:
    started = time.perf_counter()
    ENGINE.connect()
    connected = time.perf_counter() - started
    first, flow = best(
        lambda: timed(Pipeline.source(numbers, n=10).then(add_one_stage).iter(engine=ENGINE))
    )
    print(
        f"fixed cost: ray.init (a local Ray, 2 CPUs) {connected:.2f} s; a 2-stage pipeline's "
        f"first item {first * 1e3:.0f} ms (2 actors created and ready, one chunk across two "
        f"hops), the rest {flow * 1e3:.0f} ms"
    )


def small_items() -> None:
    n = 20_000 if QUICK else 100_000
    compare(
        f"{n:,} small ints, +1 on 2 instances",
        n,
        lambda o: Pipeline.source(numbers, n=n).then(add_one_stage, **workers(o, 2)),
    )


def cpu_bound() -> None:
    n = 400 if QUICK else 2000
    compare(
        f"pure-Python CPU, {n:,} x 0.5 ms on 2 instances",
        n,
        lambda o: Pipeline.source(numbers, n=n).then(spin_stage, **workers(o, 2)),
    )
    # Chunks of 256 such items are 128 ms of work each: the two actors share them unevenly.
    small = RayEngine(chunk=16)
    first, flow = best(
        lambda: timed(Pipeline.source(numbers, n=n).then(spin_stage, threads=2).iter(engine=small))
    )
    print(
        f"  the same on Ray with chunk=16: {flow / n * 1e6:,.1f} us/item (first item after "
        f"{first * 1e3:,.0f} ms)"
    )


def big_arrays() -> None:
    n, size = (5 if QUICK else 20), 40 * 10**6
    compare(
        f"{n} numpy arrays of 40 MB through a 1-instance stage (buffer=2)",
        n,
        lambda o: Pipeline.source(arrays, buffer=2, n=n, size=size).then(
            touch, buffer=2, **workers(o, 1)
        ),
    )


def main() -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    fixed_cost()
    small_items()
    cpu_bound()
    big_arrays()
    ENGINE.shutdown()


if __name__ == "__main__":
    main()
