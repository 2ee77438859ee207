"""How much memory auto buffers may fill: the budget, where it comes from, and its split.

The budget of a run, the first that is given of:

1. ``run(memory_budget=...)`` / ``iter(memory_budget=...)`` / ``execute(..., memory_budget=...)``;
2. the environment variable ``PIPELINE_EXECUTOR_MEMORY_BUDGET``;
3. :data:`DEFAULT_FRACTION` of the memory this process may use: the least of physical RAM,
   the cgroup limit and ``RLIMIT_RSS``.

A budget is bytes (an ``int``, or a string such as ``"512MiB"``, ``"2GB"``), or a fraction
``0 < f <= 1`` of that memory limit (a ``float``, or a string such as ``"0.1"``). Buffers given
``AutoBuffer(max_bytes=...)`` take theirs first; the other auto buffers share the rest evenly,
each at most :data:`BUFFER_CAP` when the budget is the default one (a budget you give is
shared without a cap).
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import PipelineDefinitionError
from ._record import Record

if TYPE_CHECKING:
    import re

__all__ = [
    "BUFFER_CAP",
    "DEFAULT_FRACTION",
    "DEFAULT_MAX_ITEMS",
    "ENVIRONMENT_VARIABLE",
    "AutoBuffer",
    "Budget",
    "memory_limit",
    "parse_bytes",
    "peak_rss",
    "run_budget",
    "split_budget",
]

DEFAULT_MAX_ITEMS = 8192
"""The most items a buffer holds by default, however small they are: ``max(8192, threads)``.

Chosen by ``benchmarks/bench.py``: the smallest power of two whose small-item throughput is
within 10% of the best count (handing items between threads costs a thread switch per
buffer-full, about 20-40 us here, so small counts pay it often)."""

DEFAULT_FRACTION = 0.25
"""The share of the process's memory limit that auto buffers fill by default (the stages' own
work needs the rest; tf.data takes half of available RAM, Ray Data ends near 15%)."""

BUFFER_CAP = 4 << 20
"""The most one auto buffer fills under the default budget. Measured (``benchmarks/bench.py``,
3 hops of fresh items, best of 3, as ratios to the best explicit count): a 4 MiB buffer ran
1 KiB items at about 1.2x, 16 KiB at 1.0x, 256 KiB at 1.06x, 4 MiB at 1.0x (the floor of one
item per thread); 16 MiB ran 256 KiB and 4 MiB items 2-3x slower, 64 MiB up to 6x: beyond the
CPU caches, a bigger buffer only streams through memory. Raise it with ``memory_budget=`` or
``AutoBuffer(max_bytes=...)`` for stages whose time per item varies a lot."""

ENVIRONMENT_VARIABLE = "PIPELINE_EXECUTOR_MEMORY_BUDGET"

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
}  # fmt: skip
_SIZE = r"^\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*$"


class AutoBuffer:
    """``buffer=AutoBuffer(...)``: a buffer bounded by bytes as well as items (what ``buffer``
    is by default), with its own limits. Immutable; equal when its fields are.

    Attributes:
        max_bytes: this buffer's budget instead of its share of the run's (bytes, or a string
            such as ``"64MiB"``); ``None``: its share.
        max_items: the most items it may hold, however small (default ``max(8192, threads)``).
        sizeof: the function that tells an item's bytes, instead of the built-in estimate
            (see :func:`register_sizeof` to teach it a type instead).
    """

    # Written out rather than a frozen dataclass: every start-up creates this class, and
    # importing ``dataclasses`` (with ``inspect``) and creating a dataclass cost milliseconds.
    # Read-only properties, so that type checkers refuse an assignment as they did.
    __slots__ = ("_max_bytes", "_max_items", "_sizeof")
    __match_args__ = ("max_bytes", "max_items", "sizeof")

    _max_bytes: int | str | None
    _max_items: int | None
    _sizeof: Callable[[Any], int] | None

    def __init__(
        self,
        max_bytes: int | str | None = None,
        max_items: int | None = None,
        sizeof: Callable[[Any], int] | None = None,
    ) -> None:
        """See the class's attributes."""
        object.__setattr__(self, "_max_bytes", max_bytes)
        object.__setattr__(self, "_max_items", max_items)
        object.__setattr__(self, "_sizeof", sizeof)

    @property
    def max_bytes(self) -> int | str | None:
        """This buffer's own budget, or ``None``."""
        return self._max_bytes

    @property
    def max_items(self) -> int | None:
        """The most items it may hold, or ``None`` for the default."""
        return self._max_items

    @property
    def sizeof(self) -> Callable[[Any], int] | None:
        """Its function telling an item's bytes, or ``None`` for the built-in estimate."""
        return self._sizeof

    def _values(self) -> tuple[object, ...]:
        return (self._max_bytes, self._max_items, self._sizeof)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AutoBuffer) and other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: an AutoBuffer is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: an AutoBuffer is immutable")

    def __reduce__(self) -> tuple[type[AutoBuffer], tuple[object, ...]]:
        # Slots and a __setattr__ that refuses: pickle (and copy) rebuild it from its fields.
        return (AutoBuffer, self._values())

    def __repr__(self) -> str:
        fields = [
            f"{name}={value!r}"
            for name, value in (
                ("max_bytes", self.max_bytes),
                ("max_items", self.max_items),
                ("sizeof", self.sizeof),
            )
            if value is not None
        ]
        return f"AutoBuffer({', '.join(fields)})"

    def checked(self, label: str, threads: int) -> AutoBuffer:
        """This, validated for a stage on ``threads`` threads, with ``max_bytes`` in bytes.

        Raises:
            PipelineDefinitionError: naming the stage and the bad field.
        """
        max_bytes = self.max_bytes
        if max_bytes is not None:
            max_bytes = parse_bytes(max_bytes, label, "AutoBuffer(max_bytes=...)")
        if self.max_items is not None:
            items: object = self.max_items
            if isinstance(items, bool) or not isinstance(items, int) or items < threads:
                raise PipelineDefinitionError(
                    label,
                    f"AutoBuffer(max_items=...) must be an int >= threads ({threads}), "
                    f"got {items!r}",
                )
        if self.sizeof is not None and not callable(self.sizeof):
            raise PipelineDefinitionError(
                label, f"AutoBuffer(sizeof=...) must be callable, got {self.sizeof!r}"
            )
        return AutoBuffer(max_bytes, self.max_items, self.sizeof)


class Budget(Record):
    """The bytes a run's auto buffers may fill, and where that figure came from."""

    total: int
    source: str  # e.g. "memory_budget=", "PIPELINE_EXECUTOR_MEMORY_BUDGET", "25% of 2.0 GiB"
    default: bool  # the default fraction (each buffer then at most BUFFER_CAP)


def parse_bytes(value: object, label: str, what: str, *, limit: int | None = None) -> int:
    """``value`` in bytes: an int, a string with a unit, or a fraction of ``limit``.

    Raises:
        PipelineDefinitionError: naming ``label`` and ``what``, with the value found.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 1:
            return value
    elif isinstance(value, float):
        if limit is not None and 0 < value <= 1:
            return max(1, int(value * limit))
    elif isinstance(value, str) and (match := _match_size(value)):
        digits, unit = match.group(1), match.group(2).lower()
        if not unit and "." in digits:  # a fraction
            if limit is not None and 0 < float(digits) <= 1:
                return max(1, int(float(digits) * limit))
        elif unit in _UNITS and int(float(digits) * _UNITS[unit]) >= 1:
            return int(float(digits) * _UNITS[unit])
    fractions = " or a fraction 0 < f <= 1 of the memory limit" if limit is not None else ""
    raise PipelineDefinitionError(
        label,
        f"{what} must be a number of bytes >= 1 (an int, or a string such as '512MiB')"
        f"{fractions}, got {value!r}",
    )


def _match_size(text: str) -> re.Match[str] | None:
    import re  # only a size given as a string is parsed; re.match caches the compiled form

    return re.match(_SIZE, text)


def memory_limit() -> int:
    """The memory this process may use: the least of physical RAM, the cgroup's limit and
    ``RLIMIT_RSS`` (each where the platform tells)."""
    limits: list[int] = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover  # not POSIX
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="utf-8") as file:
                text = file.read().strip()
        except OSError:
            continue
        if text.isdigit():
            limits.append(int(text))
    soft, _ = resource.getrlimit(resource.RLIMIT_RSS)
    if soft != resource.RLIM_INFINITY and soft > 0:
        limits.append(soft)
    return min(limits) if limits else 4 << 30


def run_budget(memory_budget: object) -> Budget:
    """The budget of a run given ``memory_budget`` (``None``: not given).

    Raises:
        PipelineDefinitionError: ``memory_budget`` or the environment variable is malformed.
    """
    if memory_budget is not None:
        total = parse_bytes(memory_budget, "run", "memory_budget", limit=memory_limit())
        return Budget(total, f"memory_budget={memory_budget!r}", default=False)
    env = os.environ.get(ENVIRONMENT_VARIABLE)
    if env:
        total = parse_bytes(env, ENVIRONMENT_VARIABLE, "its value", limit=memory_limit())
        return Budget(total, f"{ENVIRONMENT_VARIABLE}={env}", default=False)
    limit = memory_limit()
    return Budget(
        max(1, int(limit * DEFAULT_FRACTION)),
        f"{DEFAULT_FRACTION:.0%} of the {limit / (1 << 30):.1f} GiB memory limit",
        default=True,
    )


def split_budget(budget: Budget, buffers: Sequence[object]) -> list[int | None]:
    """Each buffer's bytes: its own ``max_bytes``, or an even share of what is left over;
    ``None`` for a buffer that is not auto (an ``int``) and for a sink (``None``)."""
    autos = [b for b in buffers if isinstance(b, AutoBuffer)]
    own = sum(b.max_bytes for b in autos if isinstance(b.max_bytes, int))
    sharing = sum(1 for b in autos if b.max_bytes is None)
    share = max(1, (budget.total - own) // sharing) if sharing else 0
    if budget.default:
        share = min(share, BUFFER_CAP)
    result: list[int | None] = []
    for b in buffers:
        if not isinstance(b, AutoBuffer):
            result.append(None)
        else:
            result.append(b.max_bytes if isinstance(b.max_bytes, int) else share)
    return result


def peak_rss() -> int | None:
    """The process's peak resident memory so far, in bytes, where the platform tells."""
    try:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (AttributeError, OSError):  # pragma: no cover  # not POSIX
        return None
    return peak if sys.platform == "darwin" else peak * 1024  # macOS says bytes, Linux KiB
