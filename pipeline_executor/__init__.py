"""pipeline_executor: concurrent streaming pipelines from plain generator functions.

>>> from collections.abc import Iterable, Iterator
>>> from pipeline_executor import Pipeline
>>> def numbers(n: int) -> Iterator[int]:
...     yield from range(n)
>>> def square(xs: Iterable[int]) -> Iterator[int]:
...     for x in xs:
...         yield x * x
>>> Pipeline.source(numbers, n=5).then(square, threads=2).sink(sum).run()
30
"""

from typing import TYPE_CHECKING

from ._errors import InactivityError as InactivityError
from ._errors import ItemPickleError as ItemPickleError
from ._errors import PipelineDefinitionError as PipelineDefinitionError
from ._errors import PipelineError as PipelineError
from ._errors import PipelineTypeError as PipelineTypeError
from ._errors import PipelineTypeWarning as PipelineTypeWarning
from ._errors import RemoteStageError as RemoteStageError
from ._errors import WorkerDiedError as WorkerDiedError
from ._state import StageState as StageState

if TYPE_CHECKING:  # loaded on first use (``__getattr__`` below); the checkers see them here
    from ._budget import AutoBuffer as AutoBuffer
    from ._builder import Pipeline as Pipeline
    from ._builder import PipelineIterator as PipelineIterator
    from ._builder import RunnablePipeline as RunnablePipeline
    from ._compat import PipelineTask as PipelineTask
    from ._compat import execute as execute
    from ._monitor import Monitor as Monitor
    from ._ray import RayEngine as RayEngine
    from ._sizeof import register_sizeof as register_sizeof
    from ._sizeof import sizeof as sizeof
    from ._stats import BufferStatistics as BufferStatistics
    from ._stats import MemoryStatistics as MemoryStatistics
    from ._stats import PipelineStats as PipelineStats
    from ._stats import StageStats as StageStats

__all__ = [
    "AutoBuffer",
    "BufferStatistics",
    "InactivityError",
    "ItemPickleError",
    "MemoryStatistics",
    "Monitor",
    "Pipeline",
    "PipelineDefinitionError",
    "PipelineError",
    "PipelineIterator",
    "PipelineStats",
    "PipelineTask",
    "PipelineTypeError",
    "PipelineTypeWarning",
    "RayEngine",
    "RemoteStageError",
    "RunnablePipeline",
    "StageState",
    "StageStats",
    "WorkerDiedError",
    "execute",
    "register_sizeof",
    "sizeof",
]

# Public names and the module of each, imported when first asked for (PEP 562): so that
# `import pipeline_executor` costs only what the first pipeline needs (benchmarks/bench.py,
# "startup"), and a worker process, which imports the package to reach its own modules, none
# of the builder (8-10 ms of each spawned worker's start, and of the forkserver's). The
# exceptions and StageState are all a worker needs of the rest, and cost next to nothing.
_LAZY = {
    "AutoBuffer": "_budget",
    "Pipeline": "_builder",
    "PipelineIterator": "_builder",
    "RunnablePipeline": "_builder",
    "BufferStatistics": "_stats",
    "MemoryStatistics": "_stats",
    "Monitor": "_monitor",
    "PipelineStats": "_stats",
    "PipelineTask": "_compat",
    "RayEngine": "_ray",
    "StageStats": "_stats",
    "execute": "_compat",
    "register_sizeof": "_sizeof",
    "sizeof": "_sizeof",
}


def __getattr__(name: str) -> object:
    """Import a lazily loaded public name on first use, and keep it in the package."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value: object = getattr(importlib.import_module(f".{module}", __name__), name)
    value.__module__ = __name__
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, the lazily loaded ones included (loaded or not)."""
    return sorted({*globals(), *_LAZY})


def _fix_module_names() -> None:
    # Tracebacks and reprs say pipeline_executor.Pipeline, not pipeline_executor._builder.
    for name in __all__:
        if name not in _LAZY:
            globals()[name].__module__ = __name__


_fix_module_names()
