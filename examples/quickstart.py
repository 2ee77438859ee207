"""Quick start: read -> parse on 2 threads -> count, with the fluent builder. Stdlib only.

Run it with ``python3 dev.py demo``.
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Iterable, Iterator

from pipeline_executor import Pipeline

WORDS = ["load", "transform", "model", "write", "thread", "buffer", "stage", "item"]


def read_lines(count: int, seed: int) -> Iterator[str]:
    """The source: makes its own data (a real one would read files or a socket)."""
    rng = random.Random(seed)
    for _ in range(count):
        yield " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))


def tokenize(lines: Iterable[str], lowercase: bool) -> Iterator[list[str]]:
    """A stage: an ordinary generator, testable on a plain list."""
    for line in lines:
        yield (line.lower() if lowercase else line).split()


def count_words(batches: Iterable[list[str]]) -> collections.Counter[str]:
    """The sink: consumes everything and returns one value, which run() returns."""
    counts: collections.Counter[str] = collections.Counter()
    for words in batches:
        counts.update(words)
    return counts


def main() -> None:
    pipeline = (
        Pipeline.source(read_lines, count=20_000, seed=7)
        .then(tokenize, threads=2, lowercase=True)
        .sink(count_words)
    )
    print(f"pipeline: {pipeline!r}")
    start = time.perf_counter()
    counts = pipeline.run()
    elapsed = time.perf_counter() - start
    print(f"counted {sum(counts.values()):,} words in 20,000 lines in {elapsed:.2f} s")
    for word, n in counts.most_common(3):
        print(f"  {word:<10} {n:,}")

    # The same stages, consumed in this thread instead of by a sink:
    longest = max(
        Pipeline.source(read_lines, count=1_000, seed=7).then(tokenize, lowercase=True), key=len
    )
    print(f"longest of 1,000 lines has {len(longest)} words")


if __name__ == "__main__":
    main()
