"""Bounded memory, measured: 1 MiB items through three stages never pile up."""

from __future__ import annotations

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
    return (
        Pipeline.source(source, buffer=buffer)
        .then(copy, threads=2, buffer=buffer)
        .then(copy, threads=2, buffer=buffer)
        .sink(slow_sink, count=count)
        .run()
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


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_peak_memory_stays_within_the_buffers(tmp_path: Path) -> None:
    """400 items of 1 MiB flow; peak RSS grows by far less than 400 MiB: by the buffers."""
    script = tmp_path / "memory_child.py"
    script.write_text(f"BUFFER = 4\n{textwrap.dedent(CHILD)}")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    growth = float(result.stdout)
    assert growth <= BOUND_MIB, f"peak RSS grew by {growth:.1f} MiB"
