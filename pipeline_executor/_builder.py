"""The typed, immutable, fluent builder: ``Pipeline.source(...).then(...).sink(...)``.

Every method validates its arguments and returns a new object, so a partial pipeline can be
shared and extended in several ways. Nothing runs until the pipeline is iterated or ``run()``;
then the stages are handed to a backend (:class:`~pipeline_executor._runner.ThreadBackend`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sized
from types import TracebackType
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TextIO, TypeVar, cast

from ._budget import AutoBuffer, run_budget
from ._errors import PipelineDefinitionError
from ._introspect import callable_name
from ._runner import THREADS, Engine
from ._stages import (
    START_METHODS,
    Backend,
    Role,
    StageSpec,
    check_count,
    make_stage,
    option_names,
    short_repr,
    stage_label,
)
from ._typecheck import check_stage, with_item_checks
from ._validate import check_duration

if TYPE_CHECKING:  # the operators, the monitor, progress and sequential runs are imported
    # where they are first used: a pipeline of plain stages needs none of them
    from ._monitor import Monitor
    from ._ops import PerItemBody

__all__ = ["Pipeline", "PipelineIterator", "RunnablePipeline"]

T_co = TypeVar("T_co", covariant=True)
R_co = TypeVar("R_co", covariant=True)
U = TypeVar("U")
R = TypeVar("R")
P = ParamSpec("P")


def _check_timeout(value: object) -> float | None:
    if value is None:
        return None
    return check_duration("pipeline", "inactivity_timeout", value)


def from_iterable(items: Iterable[U]) -> Iterator[U]:
    """The source behind :meth:`Pipeline.from_iterable`."""
    yield from items


def _split(
    fn: object, role: Role, position: int, args: tuple[object, ...], kwargs: dict[str, object]
) -> dict[str, Any]:
    """Refuse positional arguments after ``fn``; take the options out of ``kwargs``.

    What is left in ``kwargs`` are the constants. Options are told apart by name only
    (``option_names(role)``), so a new option needs its typed parameter and ``make_stage``'s
    handling, nothing here.

    Raises:
        PipelineDefinitionError: a positional argument was given after ``fn``.
    """
    if args:
        shown = ", ".join(short_repr(arg) for arg in args)
        raise PipelineDefinitionError(
            stage_label(fn, role, position),
            f"got {len(args)} positional argument(s) after the function ({shown}); pass "
            "options and constants by keyword, e.g. threads=2, size=224 (a positional-only "
            "parameter's constant goes through functools.partial)",
        )
    return {name: kwargs.pop(name) for name in option_names(role) & kwargs.keys()}


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
        """The calls that built this pipeline; constants abbreviated (``reprlib``)."""
        checks = ".with_item_checks()" if self._item_checks else ""
        first, *rest = self._stages
        return f"Pipeline.{_stage_repr(first)}{checks}" + "".join(
            f".{_stage_repr(stage)}" for stage in rest
        )


def _stage_repr(stage: StageSpec) -> str:
    if stage.fn is from_iterable:
        items = short_repr(stage.kwargs["items"])
        buffer = "" if stage.buffer == AutoBuffer() else f", buffer={stage.buffer!r}"
        return f"from_iterable({items}{buffer})"
    return repr(stage)


class PipelineIterator(Iterator[T_co]):
    """The items of one run of a pipeline, as ``iter(pipeline)`` and ``pipeline.iter()`` give.

    An iterator with ``close()`` that is also a context manager: leaving the ``with`` block,
    calling ``close()``, or dropping the iterator stops every stage and joins its threads.

    >>> from pipeline_executor import Pipeline
    >>> with Pipeline.from_iterable(range(10)).iter() as items:
    ...     print(next(items), next(items))
    0 1
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterator[object]) -> None:
        """Wrap the generator of a backend's run; internal."""
        self._items = cast("Iterator[T_co]", items)

    def __iter__(self) -> Iterator[T_co]:
        # The run's own generator, so `for x in pipeline.iter()` pays no extra call per item
        # (`for x in pipeline` iterates this object); closing either closes the same run.
        return self._items

    def __next__(self) -> T_co:
        return next(self._items)

    def close(self) -> None:
        """Stop the run if it has not ended: every stage stops and its threads are joined."""
        close: Callable[[], object] | None = getattr(self._items, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> PipelineIterator[T_co]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PipelineIterator of {self._items!r}>"


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

    # Options and constants are all passed by keyword. The typed signatures below list the
    # options *before* ``*args: P.args`` only because PEP 612 forbids keyword-only parameters
    # between ``*args: P.args`` and ``**kwargs: P.kwargs``; Python would then bind a stray
    # positional argument to an option (``.then(resize, 224)`` would start 224 threads). So the
    # type checkers see the typed form (``TYPE_CHECKING``), and the runtime form takes
    # ``(fn, *args, **kwargs)``, refuses any positional argument after ``fn`` and tells the
    # options from the constants by name (``_stages.option_names``).
    if TYPE_CHECKING:

        @classmethod
        def source(
            cls,
            fn: Callable[P, Iterable[U]],
            buffer: int | AutoBuffer | None = None,
            processes: int | None = None,
            *args: P.args,
            **kwargs: P.kwargs,
        ) -> Pipeline[U]: ...

        @classmethod
        def from_iterable(
            cls, items: Iterable[U], *, buffer: int | AutoBuffer | None = None
        ) -> Pipeline[U]: ...

        def then(
            self,
            fn: Callable[Concatenate[Iterator[T_co], P], Iterable[U]],
            threads: int = 1,
            buffer: int | AutoBuffer | None = None,
            processes: int | None = None,
            ordered: bool = False,
            *args: P.args,
            **kwargs: P.kwargs,
        ) -> Pipeline[U]: ...

        def map(
            self,
            fn: Callable[Concatenate[T_co, P], U],
            threads: int = 1,
            buffer: int | AutoBuffer | None = None,
            ordered: bool = True,
            on_error: Callable[[T_co, Exception], object] | None = None,
            timeout: float | None = None,
            processes: int | None = None,
            *args: P.args,
            **kwargs: P.kwargs,
        ) -> Pipeline[U]: ...

        def filter(
            self,
            pred: Callable[Concatenate[T_co, P], bool],
            threads: int = 1,
            buffer: int | AutoBuffer | None = None,
            ordered: bool = True,
            on_error: Callable[[T_co, Exception], object] | None = None,
            timeout: float | None = None,
            processes: int | None = None,
            *args: P.args,
            **kwargs: P.kwargs,
        ) -> Pipeline[T_co]: ...

        def flat_map(
            self,
            fn: Callable[Concatenate[T_co, P], Iterable[U]],
            threads: int = 1,
            buffer: int | AutoBuffer | None = None,
            ordered: bool = True,
            on_error: Callable[[T_co, Exception], object] | None = None,
            timeout: float | None = None,
            processes: int | None = None,
            *args: P.args,
            **kwargs: P.kwargs,
        ) -> Pipeline[U]: ...

        def sink(
            self,
            fn: Callable[Concatenate[Iterator[T_co], P], R],
            threads: int = 1,
            processes: int | None = None,
            *args: P.args,
            **kwargs: P.kwargs,
        ) -> RunnablePipeline[R]: ...

    else:

        @classmethod
        def source(cls, fn, *args, **kwargs):
            """Start a pipeline whose items come from ``fn(**constants)``, run in one thread.

            Called ``Pipeline.source(fn, buffer=None, processes=None, **constants)``;
            everything after ``fn`` by keyword.

            Args:
                fn: a generator function (or any function returning an iterable).
                buffer: the most items of this stage alive at once (being produced, waiting,
                    or held by the next stage), exactly; by default (``None``) an auto buffer,
                    whose count follows the items' estimated size within the run's memory
                    budget, up to ``max(8192, threads)``; ``AutoBuffer(...)`` to tune one.
                processes: ``1`` runs the source in a worker process.
                **constants: keyword arguments for ``fn``.

            Raises:
                PipelineDefinitionError: a positional argument after ``fn``, a bad option, or
                    constants that do not fit ``fn``.
                PipelineTypeError: constants or a return annotation that do not fit.
            """
            return _start(fn, args, kwargs)

        @classmethod
        def from_iterable(cls, items, *args, buffer=None):
            """Start a pipeline whose items are ``items``, read in one thread.

            Called ``Pipeline.from_iterable(items, buffer=None)``. Each run iterates ``items``
            again: pass a collection, not a one-shot iterator, to run the pipeline more than
            once. A sized collection's ``len()``, taken now, is the total (and the ETA) that
            ``progress`` shows.

            Raises:
                PipelineDefinitionError: a positional argument after ``items``, or a bad
                    ``buffer``.
            """
            _split(from_iterable, Role.SOURCE, 1, args, {})
            stage = make_stage(
                from_iterable, Role.SOURCE, 1, buffer=buffer, kwargs={"items": items}
            )
            if isinstance(items, Sized):  # its length now is the total progress shows
                stage = stage.replace(length=len(items))
            return Pipeline((stage,))

        def then(self, fn, *args, **kwargs):
            """Add a stage: ``fn(items, **constants)`` turns this pipeline's items into new ones.

            Called ``.then(fn, threads=1, buffer=None, ordered=False, processes=None,
            **constants)``;
            everything after ``fn`` by keyword.

            Args:
                fn: a generator function whose first parameter receives an iterator of items.
                threads: how many instances of ``fn`` run at once, each in its own thread, each
                    item going to exactly one of them; their outputs merge, unordered if > 1
                    unless ``ordered``.
                buffer: the most items of this stage alive at once, exactly; ``>= threads``;
                    by default an auto buffer (see ``source``); ``AutoBuffer(...)`` to tune one.
                ordered: with ``threads > 1``, place each output after the outputs of the
                    input item its instance took most recently, so that a 1:1, filtering or
                    flat-mapping generator comes out in input order. A generator that reads
                    ahead (a batcher) has each output placed after the last item it had read
                    (and what it yields once its input has ended, after its last item). Items
                    waiting for their turn count in ``buffer``.
                processes: run this many instances of ``fn`` instead, each in its own worker
                    process (for pure-Python, CPU-bound work); exclusive with ``threads``. Its
                    function and constants must pickle (cloudpickle: lambdas do), and so must
                    its items.
                **constants: keyword arguments for ``fn``.

            Raises:
                PipelineDefinitionError: a positional argument after ``fn``, a bad option, or
                    constants that do not fit ``fn``.
                PipelineTypeError: ``fn`` does not accept this pipeline's items, or constants
                    that do not fit their annotations.
            """
            return self._add(Role.STAGE, fn, args, kwargs)

        def map(self, fn, *args, **kwargs):
            """Add a stage that yields ``fn(item, **constants)`` for each item.

            Called ``.map(fn, threads=1, buffer=None, ordered=True, on_error=None,
            timeout=None, processes=None, **constants)``; everything after ``fn`` by keyword.

            >>> list(Pipeline.from_iterable([1, 2, 3]).map(str, threads=2))
            ['1', '2', '3']

            Args:
                fn: a function of one item (and the constants).
                threads: how many items are worked on at once, each on its own thread.
                buffer: the most items of this stage alive at once, those waiting for their
                    turn to come out in order included (a slow item holds back at most
                    ``buffer`` others); ``>= threads``; default ``max(8192, threads)``.
                ordered: outputs in input order (the default); ``False`` lets each come out
                    as soon as it is ready.
                on_error: ``None`` to stop the pipeline on the first failure (as any stage
                    does); or ``on_error(item, exc)``, called in the stage's thread for an
                    item whose call raised an ``Exception``; the item is then dropped and
                    counted in ``StageStats.failed``. If ``on_error`` raises, the pipeline
                    stops with that.
                timeout: seconds a call may take; a call that has not returned in time fails
                    its item with ``TimeoutError`` naming the stage and the item's position
                    (see ``on_error``). Its thread cannot be interrupted, so it is abandoned,
                    with a ``RuntimeWarning`` (it ends when the call returns and never keeps
                    the interpreter alive), and a new thread takes the next items; each thread
                    may leave one call abandoned at a time (at most ``threads`` per stage): a
                    second timeout meanwhile stops the pipeline with ``TimeoutError``.
                processes: work on items in this many worker processes instead of threads
                    (see ``then``); over more than one, pass ``ordered=False``: ordered
                    output across worker processes is not supported yet.
                **constants: keyword arguments for ``fn``, after the item.

            Raises:
                PipelineDefinitionError: a positional argument after ``fn``, a bad option, or
                    constants that do not fit ``fn``.
                PipelineTypeError: ``fn`` does not take this pipeline's items.
            """
            from ._ops import MapBody

            return self._per_item(Role.MAP, MapBody, fn, args, kwargs)

        def filter(self, pred, *args, **kwargs):
            """Add a stage that keeps the items for which ``pred(item, **constants)`` is true.

            Called as :meth:`map` is.

            >>> list(Pipeline.from_iterable(range(6)).filter(lambda x: x % 2 == 0))
            [0, 2, 4]

            Args:
                pred: a function of one item (and the constants) returning a ``bool``.
                threads, buffer, ordered, on_error, timeout, processes: as for :meth:`map`.
                **constants: keyword arguments for ``pred``, after the item.

            Raises:
                PipelineDefinitionError: a positional argument after ``pred``, a bad option,
                    or constants that do not fit ``pred``.
                PipelineTypeError: ``pred`` does not take this pipeline's items, or is
                    annotated to return something other than ``bool``.
            """
            from ._ops import FilterBody

            return self._per_item(Role.FILTER, FilterBody, pred, args, kwargs)

        def flat_map(self, fn, *args, **kwargs):
            """Add a stage that yields every item of ``fn(item, **constants)`` for each item.

            Called as :meth:`map` is.

            >>> list(Pipeline.from_iterable([1, 2]).flat_map(lambda x: [x] * x))
            [1, 2, 2]

            Args:
                fn: a function of one item (and the constants) returning an iterable.
                threads, buffer, ordered, on_error, timeout, processes: as for :meth:`map`. With
                    ``on_error`` or ``timeout``, an item's outputs are collected before the
                    first is passed on, so a failing item contributes none.
                **constants: keyword arguments for ``fn``, after the item.

            Raises:
                PipelineDefinitionError: a positional argument after ``fn``, a bad option, or
                    constants that do not fit ``fn``.
                PipelineTypeError: ``fn`` does not take this pipeline's items, or does not
                    return an iterable (or returns ``str`` or ``bytes``).
            """
            from ._ops import FlatMapBody

            return self._per_item(Role.FLAT_MAP, FlatMapBody, fn, args, kwargs)

        def sink(self, fn, *args, **kwargs):
            """End the pipeline with ``fn(items, **constants)``; ``run()`` returns its value.

            Called ``.sink(fn, threads=1, processes=None, **constants)``; everything after
            ``fn`` by keyword.

            Args:
                fn: a function that consumes its first parameter's items (not a generator).
                threads: instances of ``fn`` at once; above 1, ``fn`` must be annotated
                    ``-> None``.
                processes: instances of ``fn`` in worker processes instead (exclusive with
                    ``threads``); its return value travels back pickled.
                **constants: keyword arguments for ``fn``.

            Raises:
                PipelineDefinitionError: a positional argument after ``fn``, a bad option,
                    constants that do not fit ``fn``, a generator function, or a
                    multi-threaded sink not annotated ``-> None``.
                PipelineTypeError: ``fn`` does not accept this pipeline's items, or constants
                    that do not fit their annotations.
            """
            return self._add(Role.SINK, fn, args, kwargs)

    def batch(
        self, size: int, *, timeout: float | None = None, buffer: int | None = None
    ) -> Pipeline[list[T_co]]:
        """Add a stage that groups items into lists of ``size``, the last one shorter.

        >>> list(Pipeline.from_iterable(range(5)).batch(2))
        [[0, 1], [2, 3], [4]]

        Args:
            size: items per list, ``>= 1``.
            timeout: if given, a partial list is passed on once its first item has waited
                this many seconds, so that a source that goes quiet holds nothing back.
            buffer: the most lists of this stage alive at once; default 8192.

        Raises:
            PipelineDefinitionError: a bad ``size``, ``timeout`` or ``buffer``.
        """
        position = len(self._stages) + 1
        label = f"stage {position} 'batch' (batch)"
        n = check_count(label, "size", size, 1)
        seconds = None if timeout is None else check_duration(label, "timeout", timeout)
        options = [f"size={n}"] + ([f"timeout={seconds!r}"] if seconds is not None else [])
        from ._ops import BatchBody

        stage = make_stage(
            BatchBody(n, seconds), Role.BATCH, position, buffer=buffer, options=tuple(options)
        )
        return self._extend(stage)

    def unbatch(self: Pipeline[Iterable[U]], *, buffer: int | None = None) -> Pipeline[U]:
        """Add a stage that yields every item of every iterable (a list from :meth:`batch`).

        >>> list(Pipeline.from_iterable([[1, 2], [3]]).unbatch())
        [1, 2, 3]

        Raises:
            PipelineDefinitionError: a bad ``buffer``.
            PipelineTypeError: this pipeline's items are not iterable, or are ``str``.
        """
        from ._ops import UnbatchBody

        stage = make_stage(UnbatchBody(), Role.UNBATCH, len(self._stages) + 1, buffer=buffer)
        return self._extend(stage)

    def take(self, n: int, *, buffer: int | None = None) -> Pipeline[T_co]:
        """Add a stage that passes on the first ``n`` items; then the stages before it stop
        (their generators are closed, so their ``finally`` blocks run).

        >>> list(Pipeline.from_iterable(range(100)).take(3))
        [0, 1, 2]

        Raises:
            PipelineDefinitionError: ``n`` is not an int ``>= 0``, or a bad ``buffer``.
        """
        position = len(self._stages) + 1
        count = check_count(f"stage {position} 'take' (take)", "n", n, 0)
        from ._ops import TakeBody

        stage = make_stage(
            TakeBody(count), Role.TAKE, position, buffer=buffer, options=(f"n={count}",)
        )
        return self._extend(stage)

    def _per_item(
        self,
        role: Role,
        body_type: type[PerItemBody],
        fn: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
    ) -> Pipeline[Any]:
        """map, filter or flat_map: the operator's body around ``fn``, validated."""
        position = len(self._stages) + 1
        options = _split(fn, role, position, args, kwargs)
        on_error = options.pop("on_error", None)
        timeout = options.pop("timeout", None)
        options.setdefault("ordered", True)  # the operators keep the input order by default
        body = body_type(cast("Callable[..., object]", fn), None, None, 1)
        stage = make_stage(body, role, position, kwargs=kwargs, inner=fn, **options)
        if timeout is not None:
            timeout = check_duration(stage.label, "timeout", timeout)
        if on_error is not None and not callable(on_error):
            raise PipelineDefinitionError(
                stage.label, f"on_error must be a function (item, exc) or None, got {on_error!r}"
            )
        body.on_error, body.timeout = on_error, timeout
        body.threads, body.label = stage.threads, stage.label
        shown = ["ordered=False"] if stage.ordered is False else []
        if on_error is not None:
            shown.append(f"on_error={callable_name(on_error)}")
        if timeout is not None:
            shown.append(f"timeout={timeout!r}")
        return self._extend(stage.replace(options=tuple(shown)))

    def _extend(self, stage: StageSpec) -> Pipeline[Any]:
        stage = check_stage(self._stages[-1], stage)
        return Pipeline[Any]((*self._stages, stage), self._backend, self._item_checks)

    def _add(
        self, role: Role, fn: object, args: tuple[object, ...], kwargs: dict[str, object]
    ) -> Any:
        """The pipeline (or, for a sink, the runnable pipeline) with one more stage."""
        position = len(self._stages) + 1
        options = _split(fn, role, position, args, kwargs)
        if options.get("ordered") is True:
            options["options"] = ("ordered=True",)
        stage = make_stage(fn, role, position, kwargs=kwargs, **options)
        stages = (*self._stages, check_stage(self._stages[-1], stage))
        if role is Role.SINK:
            return RunnablePipeline[Any](stages, self._backend, self._item_checks)
        return Pipeline[Any](stages, self._backend, self._item_checks)

    def __iter__(self) -> PipelineIterator[T_co]:
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
        memory_budget: int | float | str | None = None,
        engine: Engine | None = None,
    ) -> PipelineIterator[T_co]:
        """Like ``iter(pipeline)``, with options; the result has ``close()`` and is a context
        manager (``with pipeline.iter() as items: ...``).

        Args:
            inactivity_timeout: if no item moves between any two stages for this many seconds
                while the caller waits for an item, stop and raise :class:`InactivityError`.
            monitor: a :class:`Monitor` to read statistics from, during and after the run.
            progress: ``True`` draws a live per-stage display on stderr if it is a terminal;
                a file gets it live if a terminal, else plain lines. Needs
                ``pipeline_executor[progress]`` in every case.
            start_method: how the worker processes of process stages start:
                ``"forkserver"`` (the default where it exists: safe while threads run),
                ``"spawn"`` (the default elsewhere) or ``"fork"`` (fastest to start; unsafe
                while other threads hold locks).
            sequential: run every stage in the caller's thread, lazily chained, one instance
                each, no threads and no buffers: for debugging (a breakpoint in a stage just
                works). ``monitor``, ``progress`` and ``inactivity_timeout`` do not apply.
            memory_budget: the bytes the auto buffers may fill together: an int, a string
                such as ``"2GiB"``, or a fraction ``0 < f <= 1`` of the memory limit; by
                default ``PIPELINE_EXECUTOR_MEMORY_BUDGET``, else 25% of the memory limit.
            engine: what hosts the stages: ``None``, this machine's threads and worker
                processes; a ``RayEngine(...)``, actors of a Ray cluster (see the README, "On
                a Ray cluster").

        Raises:
            PipelineDefinitionError: a bad option, or ``progress`` without rich installed.
        """
        timeout = _check_timeout(inactivity_timeout)
        method = _check_start_method(start_method)
        stages = _runnable(self._stages, self._item_checks)
        budget = run_budget(memory_budget)
        if sequential:
            from ._sequential import iterate

            return PipelineIterator(iterate(stages))
        items = self._backend.iterate(
            stages,
            inactivity_timeout=timeout,
            monitor=monitor,
            progress=_where(progress),
            start_method=method,
            memory_budget=budget,
            engine=engine,
        )
        return PipelineIterator(items)


def _start(fn: object, args: tuple[object, ...], kwargs: dict[str, object]) -> Pipeline[Any]:
    options = _split(fn, Role.SOURCE, 1, args, kwargs)
    stage = make_stage(fn, Role.SOURCE, 1, kwargs=kwargs, **options)
    return Pipeline[Any]((check_stage(None, stage),))


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
        memory_budget: int | float | str | None = None,
        engine: Engine | None = None,
    ) -> R_co:
        """Run every stage to the end and return the sink's return value.

        Args:
            inactivity_timeout: if no item moves between any two stages for this many
                seconds, stop and raise :class:`InactivityError`.
            monitor: a :class:`Monitor` to read statistics from, during and after the run.
            progress: ``True`` draws a live per-stage display on stderr if it is a terminal;
                a file gets it live if a terminal, else plain lines. Needs
                ``pipeline_executor[progress]`` in every case.
            start_method: how the worker processes of process stages start:
                ``"forkserver"`` (the default where it exists: safe while threads run),
                ``"spawn"`` (the default elsewhere) or ``"fork"`` (fastest to start; unsafe
                while other threads hold locks).
            sequential: run every stage in the caller's thread, lazily chained, one instance
                each, no threads and no buffers: for debugging (a breakpoint in a stage just
                works). ``monitor``, ``progress`` and ``inactivity_timeout`` do not apply.
            memory_budget: the bytes the auto buffers may fill together: an int, a string
                such as ``"2GiB"``, or a fraction ``0 < f <= 1`` of the memory limit; by
                default ``PIPELINE_EXECUTOR_MEMORY_BUDGET``, else 25% of the memory limit.
            engine: what hosts the stages: ``None``, this machine's threads and worker
                processes; a ``RayEngine(...)``, actors of a Ray cluster (see the README, "On
                a Ray cluster").

        Raises:
            PipelineDefinitionError: a bad option, or ``progress`` without rich installed.
            InactivityError: nothing moved for ``inactivity_timeout`` seconds.
            BaseException: whatever a stage raised, as itself, with a note naming the stage;
                a ``KeyboardInterrupt`` while waiting stops the pipeline and is re-raised.
                Each carries a last note saying how every stage ended.
        """
        timeout = _check_timeout(inactivity_timeout)
        method = _check_start_method(start_method)
        stages = _runnable(self._stages, self._item_checks)
        budget = run_budget(memory_budget)
        if sequential:
            from ._sequential import run

            return cast(R_co, run(stages))
        result = self._backend.run(
            stages,
            inactivity_timeout=timeout,
            monitor=monitor,
            progress=_where(progress),
            start_method=method,
            memory_budget=budget,
            engine=engine,
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
    if progress is False:
        return None
    from ._progress import require_rich

    if progress is True:
        require_rich()
        return sys.stderr if sys.stderr.isatty() else None
    if not callable(getattr(progress, "write", None)):
        raise PipelineDefinitionError(
            "pipeline", f"progress must be a bool or a file to draw on, got {progress!r}"
        )
    require_rich()
    return progress


def _runnable(stages: tuple[StageSpec, ...], item_checks: bool) -> tuple[StageSpec, ...]:
    return tuple(map(with_item_checks, stages)) if item_checks else stages
