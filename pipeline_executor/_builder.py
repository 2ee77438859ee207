"""The typed, immutable, fluent builder: ``Pipeline.source(...).then(...).sink(...)``.

Every method validates its arguments and returns a new object, so a partial pipeline can be
shared and extended in several ways. Nothing runs until the pipeline is iterated or ``run()``;
then the stages are handed to a backend (:class:`~pipeline_executor._runner.ThreadBackend`).
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Concatenate, Generic, ParamSpec, TextIO, TypeVar, cast

from . import _sequential
from ._errors import PipelineDefinitionError
from ._monitor import Monitor
from ._progress import require_rich
from ._runner import THREADS
from ._stages import START_METHODS, Backend, Role, StageSpec, make_stage
from ._typecheck import check_stage, with_item_checks

__all__ = ["Pipeline", "RunnablePipeline"]

T_co = TypeVar("T_co", covariant=True)
R_co = TypeVar("R_co", covariant=True)
U = TypeVar("U")
R = TypeVar("R")
P = ParamSpec("P")


def _check_timeout(value: object) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value < math.inf  # NaN fails too; an infinite wait is None
    ):
        raise PipelineDefinitionError(
            "pipeline", f"inactivity_timeout must be a number > 0 or None, got {value!r}"
        )
    return float(value)


def from_iterable(items: Iterable[U]) -> Iterator[U]:
    """The source behind :meth:`Pipeline.from_iterable`."""
    yield from items


class _Built:
    """What both builder objects hold: validated stages, the backend, the item-check flag."""

    __slots__ = ("_backend", "_item_checks", "_stages")

    def __init__(
        self, stages: tuple[StageSpec, ...], backend: Backend = THREADS, item_checks: bool = False
    ) -> None:
        """Use :meth:`Pipeline.source`, :meth:`Pipeline.from_iterable` or :meth:`Pipeline.sink`;
        this constructor is internal."""
        self._stages = stages
        self._backend = backend
        self._item_checks = item_checks

    def __repr__(self) -> str:
        checks = ".with_item_checks()" if self._item_checks else ""
        first, *rest = self._stages
        return f"Pipeline.{first!r}{checks}" + "".join(f".{stage!r}" for stage in rest)


class Pipeline(_Built, Generic[T_co]):
    """A pipeline that yields items of type ``T_co``: a source and zero or more stages.

    Build one with :meth:`source` or :meth:`from_iterable`, add stages with :meth:`then`, and
    either iterate it (items arrive in the caller's thread) or end it with :meth:`sink` and
    :meth:`RunnablePipeline.run`. Each call returns a new pipeline; nothing starts until then.

    >>> from collections.abc import Iterable, Iterator
    >>> def numbers(n: int) -> Iterator[int]:
    ...     yield from range(n)
    >>> def double(xs: Iterable[int]) -> Iterator[int]:
    ...     for x in xs:
    ...         yield 2 * x
    >>> list(Pipeline.source(numbers, n=4).then(double))
    [0, 2, 4, 6]
    """

    __slots__ = ()

    def with_item_checks(self) -> Pipeline[T_co]:
        """This pipeline, with every item every stage yields checked against its annotation.

        Stages added later are checked too. A mismatch stops the pipeline like any stage
        failure, raising :class:`PipelineTypeError` naming the stage, the item's type and the
        declared one. Off by default: a check costs microseconds per item.
        """
        return Pipeline(self._stages, self._backend, item_checks=True)

    @classmethod
    def source(
        cls,
        fn: Callable[P, Iterable[U]],
        buffer: int | None = None,
        processes: int | None = None,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Pipeline[U]:
        """Start a pipeline whose items come from ``fn(*args, **kwargs)``, run in one thread.

        Args:
            fn: a generator function (or any function returning an iterable).
            buffer: the most items of this stage alive at once (being produced, waiting, or
                held by the next stage); default ``max(8192, threads)``.
            processes: ``1`` runs the source in a worker process (pass it by keyword).
            *args: positional constants for ``fn``.
            **kwargs: keyword constants for ``fn``.

        Raises:
            PipelineDefinitionError: a bad option, or constants that do not fit ``fn``.
        """
        stage = make_stage(
            fn, Role.SOURCE, 1, buffer=buffer, processes=processes, args=args, kwargs=kwargs
        )
        return Pipeline((check_stage(None, stage),))

    @classmethod
    def from_iterable(cls, items: Iterable[U], buffer: int | None = None) -> Pipeline[U]:
        """Start a pipeline whose items are ``items``, read in one thread.

        Each run iterates ``items`` again: pass a collection, not a one-shot iterator, to run
        the pipeline more than once.

        Raises:
            PipelineDefinitionError: a bad ``buffer``.
        """
        stage = make_stage(from_iterable, Role.SOURCE, 1, buffer=buffer, args=(items,))
        if isinstance(items, Sized):  # its length now is the total progress shows
            stage = dataclasses.replace(stage, length=len(items))
        return Pipeline((stage,))

    def then(
        self,
        fn: Callable[Concatenate[Iterator[T_co], P], Iterable[U]],
        threads: int = 1,
        buffer: int | None = None,
        processes: int | None = None,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> Pipeline[U]:
        """Add a stage: ``fn(items, *args, **kwargs)`` turns this pipeline's items into new ones.

        Args:
            fn: a generator function whose first parameter receives an iterator of items.
            threads: how many instances of ``fn`` run at once, each in its own thread, each
                item going to exactly one of them; their outputs merge, unordered if > 1.
            buffer: the most items of this stage alive at once; ``>= threads``; default
                ``max(8192, threads)``.
            processes: run ``processes`` instances of ``fn``, each in its own worker process
                (for pure-Python, CPU-bound work); exclusive with ``threads``. Its function
                and constants must pickle (cloudpickle: lambdas do), and so must its items.
            *args: positional constants for ``fn``.
            **kwargs: keyword constants for ``fn``.

        Raises:
            PipelineDefinitionError: a bad option, or constants that do not fit ``fn``.
        """
        stage = make_stage(
            fn,
            Role.STAGE,
            len(self._stages) + 1,
            threads=threads,
            buffer=buffer,
            processes=processes,
            args=args,
            kwargs=kwargs,
        )
        stage = check_stage(self._stages[-1], stage)
        return Pipeline((*self._stages, stage), self._backend, self._item_checks)

    def sink(
        self,
        fn: Callable[Concatenate[Iterator[T_co], P], R],
        threads: int = 1,
        processes: int | None = None,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> RunnablePipeline[R]:
        """End the pipeline with ``fn(items, *args, **kwargs)``; ``run()`` returns its value.

        Args:
            fn: a function that consumes its first parameter's items (not a generator).
            threads: instances of ``fn`` at once; above 1, ``fn`` must be annotated ``-> None``.
            processes: instances of ``fn`` in worker processes instead (exclusive with
                ``threads``); its return value travels back pickled.
            *args: positional constants for ``fn``.
            **kwargs: keyword constants for ``fn``.

        Raises:
            PipelineDefinitionError: a bad option, constants that do not fit ``fn``, a
                generator function, or a multi-threaded sink not annotated ``-> None``.
        """
        stage = make_stage(
            fn,
            Role.SINK,
            len(self._stages) + 1,
            threads=threads,
            processes=processes,
            args=args,
            kwargs=kwargs,
        )
        stage = check_stage(self._stages[-1], stage)
        return RunnablePipeline((*self._stages, stage), self._backend, self._item_checks)

    def __iter__(self) -> Iterator[T_co]:
        """Run the pipeline; its items arrive in the caller's thread.

        Leaving the loop early (``break``, an exception, closing or dropping the iterator)
        stops every stage and joins its threads.

        Raises:
            BaseException: whatever a stage raised, as itself, with a note naming the stage.
        """
        return self.iter()

    def iter(
        self,
        *,
        inactivity_timeout: float | None = None,
        monitor: Monitor | None = None,
        progress: bool | TextIO = False,
        start_method: str | None = None,
        sequential: bool = False,
    ) -> Iterator[T_co]:
        """Like ``iter(pipeline)``, with options.

        Args:
            inactivity_timeout: if no item moves between any two stages for this many seconds
                while the caller waits for an item, stop and raise :class:`InactivityError`.
            monitor: a :class:`Monitor` to read statistics from, during and after the run.
            progress: ``True`` draws a live per-stage display on stderr if it is a terminal;
                a file gets it live if a terminal, else plain lines. Needs
                ``pipeline_executor[progress]`` in every case.
            start_method: how worker processes of process stages start: ``"forkserver"``
                (the default where it exists: safe while threads run), ``"spawn"`` (the
                default elsewhere) or ``"fork"`` (fastest, unsafe once threads run).
            sequential: run every stage in the caller's thread, lazily chained, one
                instance each, no threads and no buffers: for debugging (a breakpoint in a
                stage just works). ``monitor``, ``progress`` and ``inactivity_timeout`` do
                not apply.

        Raises:
            PipelineDefinitionError: a bad option, or ``progress`` without rich installed.
        """
        timeout = _check_timeout(inactivity_timeout)
        stages = _runnable(self._stages, self._item_checks)
        if sequential:
            return cast(Iterator[T_co], _sequential.iterate(stages))
        items = self._backend.iterate(
            stages,
            inactivity_timeout=timeout,
            monitor=monitor,
            progress=_where(progress),
            start_method=_check_start_method(start_method),
        )
        return cast(Iterator[T_co], items)


class RunnablePipeline(_Built, Generic[R_co]):
    """A complete pipeline, ended by a sink whose return value is of type ``R_co``."""

    __slots__ = ()

    def run(
        self,
        *,
        inactivity_timeout: float | None = None,
        monitor: Monitor | None = None,
        progress: bool | TextIO = False,
        start_method: str | None = None,
        sequential: bool = False,
    ) -> R_co:
        """Run every stage to the end and return the sink's return value.

        Args:
            inactivity_timeout: if no item moves between any two stages for this many
                seconds, stop and raise :class:`InactivityError`.
            monitor: a :class:`Monitor` to read statistics from, during and after the run.
            progress: ``True`` draws a live per-stage display on stderr if it is a terminal;
                a file gets it live if a terminal, else plain lines. Needs
                ``pipeline_executor[progress]`` in every case.
            start_method: how worker processes of process stages start: ``"forkserver"``
                (the default where it exists: safe while threads run), ``"spawn"`` (the
                default elsewhere) or ``"fork"`` (fastest, unsafe once threads run).
            sequential: run every stage in the caller's thread, lazily chained, one
                instance each, no threads and no buffers: for debugging (a breakpoint in a
                stage just works). ``monitor``, ``progress`` and ``inactivity_timeout`` do
                not apply.

        Raises:
            PipelineDefinitionError: a bad option, or ``progress`` without rich installed.
            InactivityError: nothing moved for ``inactivity_timeout`` seconds.
            BaseException: whatever a stage raised, as itself, with a note naming the stage;
                a ``KeyboardInterrupt`` while waiting stops the pipeline and is re-raised.
                Each carries a last note saying how every stage ended.
        """
        timeout = _check_timeout(inactivity_timeout)
        stages = _runnable(self._stages, self._item_checks)
        if sequential:
            return cast(R_co, _sequential.run(stages))
        result = self._backend.run(
            stages,
            inactivity_timeout=timeout,
            monitor=monitor,
            progress=_where(progress),
            start_method=_check_start_method(start_method),
        )
        return cast(R_co, result)


def _check_start_method(value: object) -> str | None:
    if value is None or (isinstance(value, str) and value in START_METHODS):
        return value
    raise PipelineDefinitionError(
        "pipeline", f"start_method must be one of {', '.join(START_METHODS)} or None, got {value!r}"
    )


def _where(progress: bool | TextIO) -> TextIO | None:
    """Where to show progress: a given file, or stderr if it is a terminal. Any ``progress``
    but ``False`` needs rich, terminal or not, so no program fails only in a terminal."""
    if progress is True:
        require_rich()
        return sys.stderr if sys.stderr.isatty() else None
    if progress is False:
        return None
    if not callable(getattr(progress, "write", None)):
        raise PipelineDefinitionError(
            "pipeline", f"progress must be a bool or a file to draw on, got {progress!r}"
        )
    require_rich()
    return progress


def _runnable(stages: tuple[StageSpec, ...], item_checks: bool) -> tuple[StageSpec, ...]:
    return tuple(map(with_item_checks, stages)) if item_checks else stages
