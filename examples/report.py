"""See inside a running pipeline: live progress, then the report with its bottleneck verdict.

load -> infer (2 threads) -> write, where "infer" stands for a model call that waits on
something outside Python (an accelerator, a remote service) for 4 ms per item.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator

from pipeline_executor import Monitor, Pipeline, PipelineStats


def load(count: int) -> Iterator[bytes]:
    for i in range(count):
        yield hashlib.sha256(str(i).encode()).digest() * 32


def infer(batches: Iterable[bytes]) -> Iterator[int]:
    for data in batches:
        time.sleep(0.004)  # the model's latency, outside the GIL
        yield data[0]


def write(labels: Iterable[int]) -> int:
    return sum(1 for _ in labels)


def show_progress(stats: PipelineStats) -> None:
    done = stats.stages[-1].items_in
    print(f"  ... {stats.elapsed:4.1f} s: {done} items written")


def main() -> None:
    monitor = Monitor(show_progress, interval=0.25)
    pipeline = (
        Pipeline.source(load, buffer=16, count=300).then(infer, threads=2, buffer=8).sink(write)
    )
    written = pipeline.run(monitor=monitor)
    print(f"wrote {written} items\n")
    print(monitor.stats())


if __name__ == "__main__":
    main()
