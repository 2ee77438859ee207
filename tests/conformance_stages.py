"""Stage functions of the conformance suite: at module level, so that they travel by reference
to worker processes and Ray actors (the Ray fixture puts the repository on their path)."""

from __future__ import annotations

import importlib
import itertools
import os
import signal
import time
import uuid
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


def forever() -> Iterator[int]:
    yield from itertools.count()


def square(xs: Iterable[int]) -> Iterator[int]:
    for x in xs:
        yield x * x


def total(xs: Iterable[int]) -> int:
    return sum(xs)


def tagged(xs: Iterable[int]) -> Iterator[tuple[str, int]]:
    """Each item with a token made once, in the generator's prologue (per-worker setup)."""
    token = uuid.uuid4().hex
    for x in xs:
        yield token, x


def first(xs: Iterable[int], n: int) -> Iterator[int]:
    """The first ``n`` items, then return early."""
    yield from itertools.islice(xs, n)


def fail_at(xs: Iterable[int], at: int) -> Iterator[int]:
    for x in xs:
        if x == at:
            raise StageError(f"bad {x}", code=x)
        yield x


def load_model() -> None:
    """A setup step that fails, as a model that cannot load."""
    raise StageError("no model", code=-1)


def fail_in_prologue(xs: Iterable[int]) -> Iterator[int]:
    """Fails in its setup, before its first item."""
    load_model()
    yield from xs


def exit_at(xs: Iterable[int], at: int) -> Iterator[int]:
    """Ends its process without a word at item ``at``."""
    for x in xs:
        if x == at:
            os._exit(7)
        yield x


def killed_at(xs: Iterable[int], at: int) -> Iterator[int]:
    """Its process is SIGKILLed (as by the out-of-memory killer) at item ``at``."""
    for x in xs:
        if x == at:
            os.kill(os.getpid(), signal.SIGKILL)
        yield x


def stuck_at(xs: Iterable[int], at: int) -> Iterator[int]:
    """Stuck in a call at item ``at`` (a deliberate stuck workload)."""
    for x in xs:
        if x == at:
            time.sleep(3600)  # sleep-ok: the stuck call under test
        yield x


def recording(n: int, where: str, pause: float = 0.0) -> Iterator[int]:
    """Yields ``0..n-1``, writing how many it has produced to the file ``where`` first, and
    ``pause`` seconds after each item (a deliberate slow source, when not 0)."""
    path, scratch = Path(where), Path(f"{where}.new")
    for i in range(n):
        scratch.write_text(str(i + 1))
        scratch.replace(path)  # atomic: a reader never sees a half-written count
        yield i
        if pause:
            time.sleep(pause)  # sleep-ok: a slow stream under test


def node_id() -> str:
    """The Ray node this runs on."""
    ray: Any = importlib.import_module("ray")
    return str(ray.get_runtime_context().get_node_id())


def on_node(n: int) -> Iterator[tuple[str, int]]:
    """Items tagged with the node that produced them."""
    node = node_id()
    for i in range(n):
        yield node, i


def consumed_on_node(xs: Iterable[tuple[str, int]]) -> Iterator[tuple[str, str, int]]:
    """Items tagged with the node that produced them and the node that consumed them."""
    node = node_id()
    for produced, i in xs:
        yield produced, node, i
