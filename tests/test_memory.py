"""Bounded memory, measured: 1 MiB items through three stages never pile up."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = """
import hashlib
from pipeline_executor import Pipeline

MIB = 1 << 20

def peak_rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")

def endless():
    while True:
        yield bytearray(MIB)  # a fresh 1 MiB item each time

def copy(items):
    for item in items:
        yield bytes(item)  # each stage makes its own 1 MiB item

def slow_sink(items, count):
    done = 0
    for item in items:
        for _ in range(8):  # real work per item, so that the sink is the slow stage
            hashlib.sha256(item).digest()
        done += 1
        if done == count:
            return done

def run(source, count, buffer):
    copies = {"processes": 2} if PROCESSES else {"threads": 2}
    return (
        Pipeline.source(source, buffer=buffer)
        .then(copy, buffer=buffer, **copies)
        .then(copy, buffer=buffer, **copies)
        .sink(slow_sink, count=count)
        .run(start_method="forkserver")
    )

def small():
    while True:
        yield b"x"

run(small, 20, 4)  # warm up with tiny items: imports, threads, but no large allocations
before = peak_rss_mib()
assert run(endless, 400, BUFFER) == 400
print(peak_rss_mib() - before)
"""

# Items alive at once: the three buffers (4 + 4 + 4) and one item per thread (1 + 2 + 2 + 1)
# in flight between reading and producing; plus a constant for the allocator's slack.
BOUND_MIB = (4 + 4 + 4) + (1 + 2 + 2 + 1) + 16
# With the copies in processes, each process stage may hold (buffer + 2 x processes) items in
# this process: its buffer, and per worker one item being encoded into shared memory and one
# message being decoded; the source and the sink as before.
PROCESS_BOUND_MIB = (4 + 1) + 2 * (4 + 2 * 2) + 1 + 16


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("processes", [False, True], ids=["threads", "processes"])
def test_peak_memory_stays_within_the_buffers(tmp_path: Path, processes: bool) -> None:
    """400 items of 1 MiB flow; peak RSS grows by far less than 400 MiB: by the buffers, on
    threads and with the copies in worker processes (items cross through shared memory)."""
    script = tmp_path / "memory_child.py"
    script.write_text(
        f"BUFFER = 4\nPROCESSES = {processes}\n"
        f"if __name__ == '__main__':\n{textwrap.indent(textwrap.dedent(CHILD), '    ')}"
    )
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    growth = float(result.stdout)
    bound = PROCESS_BOUND_MIB if processes else BOUND_MIB
    assert growth <= bound, f"peak RSS grew by {growth:.1f} MiB"


AUTO_CHILD = """
import time
from pipeline_executor import Pipeline

MIB = 1 << 20
ITEM = 4 * MIB

def peak_rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")

def arrays(n, size):
    for _ in range(n):
        yield bytearray(size)  # a fresh item each time, its pages written (zeroed)

def copy(items):
    for item in items:
        yield bytes(item)  # each stage makes its own item

def slow_sink(items):
    done = 0
    for _ in items:
        time.sleep(0.002)  # sleep-ok: the slow stage, so that the buffers before it fill
        done += 1
    return done

def run(n, size):
    return (
        Pipeline.source(arrays, n=n, size=size, **OPTIONS)
        .then(copy, threads=2, **OPTIONS)
        .then(copy, threads=2, **OPTIONS)
        .sink(slow_sink)
        .run()
    )

run(20, 1)  # warm up with tiny items: imports, threads, but no large allocations
before = peak_rss_mib()
assert run(ITEMS, ITEM) == ITEMS
print(peak_rss_mib() - before)
"""

ITEMS = 100
ITEM_MIB = 4
BUDGET_MIB = 96  # 32 MiB per buffer: 8 items of 4 MiB each
# Items alive at once: the budget, one item per thread of the four stages (1 + 2 + 2 + 1)
# between reading and producing, and a constant for the allocator's slack.
AUTO_BOUND_MIB = BUDGET_MIB + (1 + 2 + 2 + 1) * ITEM_MIB + 32


def peak_growth(tmp_path: Path, options: str) -> float:
    """Run the 4-stage pipeline in a child process under a 96 MiB budget; its RSS growth."""
    script = tmp_path / "auto_memory_child.py"
    script.write_text(f"OPTIONS = {options}\nITEMS = {ITEMS}\n{textwrap.dedent(AUTO_CHILD)}")
    environment = {**os.environ, "PIPELINE_EXECUTOR_MEMORY_BUDGET": f"{BUDGET_MIB}MiB"}
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=environment,
    )
    assert result.returncode == 0, result.stderr
    return float(result.stdout)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_auto_buffers_keep_peak_memory_within_the_budget(tmp_path: Path) -> None:
    """100 items of 4 MiB, default buffers, a 96 MiB budget: RSS grows by the budget at most,
    plus one item per thread."""
    growth = peak_growth(tmp_path, "{}")
    assert growth <= AUTO_BOUND_MIB, f"peak RSS grew by {growth:.1f} MiB"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_a_fixed_count_of_8192_grows_with_the_items(tmp_path: Path) -> None:
    """The same run with buffer=8192 grows past that bound: the auto test can fail."""
    growth = peak_growth(tmp_path, "{'buffer': 8192}")
    assert growth > AUTO_BOUND_MIB, f"peak RSS grew by {growth:.1f} MiB only"
