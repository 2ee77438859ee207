"""What a pipeline is made of: frozen stage descriptions, their validation, and the backend seam.

A :class:`StageSpec` is everything a backend needs to run one stage; a pipeline is a tuple of
them, source first. Backends (threads today; processes and a distributed engine later) take
that tuple and implement :class:`Backend`; the builder never needs to know which one runs it.
"""

from __future__ import annotations

import enum
import reprlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from . import _introspect
from ._budget import DEFAULT_MAX_ITEMS, AutoBuffer, Budget
from ._errors import PipelineDefinitionError
from ._record import Record

if TYPE_CHECKING:
    from ._monitor import Monitor

__all__ = [
    "DEFAULT_BUFFER",
    "OPERATOR_OPTION_NAMES",
    "OPTION_NAMES",
    "START_METHODS",
    "Backend",
    "Role",
    "StageSpec",
    "check_count",
    "make_stage",
    "option_names",
    "returns_none",
    "short_repr",
    "stage_label",
]

DEFAULT_BUFFER = DEFAULT_MAX_ITEMS
"""The most items a stage's buffer holds by default: ``max(DEFAULT_BUFFER, threads)``, fewer
when they are large (``buffer=None`` is ``AutoBuffer()``: see ``_budget`` and ``_bound``)."""

OPTION_NAMES = frozenset({"threads", "buffer", "ordered", "processes"})
"""The names of stage options. The builder takes these keywords out of a call as options and
passes them to :func:`make_stage`; every other keyword is a constant. So no stage parameter may
be passed a constant by one of these names. A new option adds its name here, its typed
parameter to the builder's signatures and its handling to :func:`make_stage`."""

OPERATOR_OPTION_NAMES = OPTION_NAMES | {"on_error", "timeout"}
"""The option names of the per-item operators (``map``, ``filter``, ``flat_map``), which also
take an error policy and a per-item timeout; ``then`` leaves these two names to its constants."""


def option_names(role: Role) -> frozenset[str]:
    """The keywords that are options, not constants, for a stage of ``role``."""
    return OPERATOR_OPTION_NAMES if role.is_operator else OPTION_NAMES


_REPR = reprlib.Repr()
_REPR.maxstring = 40
_REPR.maxother = 40
_REPR.maxlevel = 2


def short_repr(value: object) -> str:
    """``repr(value)``, abbreviated by ``reprlib`` (a few items of each collection, short
    strings), so that a large constant cannot flood a message or a pipeline's repr."""
    return _REPR.repr(value)


START_METHODS = ("fork", "forkserver", "spawn")
"""How worker processes may start (multiprocessing's start methods)."""


class Role(enum.Enum):
    """Where a stage stands in the pipeline; the value is the builder method that adds it."""

    SOURCE = "source"
    STAGE = "then"
    SINK = "sink"
    # The per-item operators: stages like any other (input and output), whose function is a
    # wrapper applying the user's function to each item (``StageSpec.inner``).
    MAP = "map"
    FILTER = "filter"
    FLAT_MAP = "flat_map"
    BATCH = "batch"
    UNBATCH = "unbatch"
    TAKE = "take"

    @property
    def takes_input(self) -> bool:
        """Whether its function receives the previous stage's items (all but a source)."""
        return self is not Role.SOURCE

    @property
    def has_output(self) -> bool:
        """Whether it yields items into a buffer of its own (all but a sink)."""
        return self is not Role.SINK

    @property
    def is_operator(self) -> bool:
        """Whether it is one of the per-item operators (``map``, ``filter``, ...)."""
        return self not in (Role.SOURCE, Role.STAGE, Role.SINK)


class StageSpec(Record):
    """One stage, validated: how to call it and how to run it (``replace`` for a copy with
    changes).

    Attributes:
        fn: the user's function; called ``fn(items, *args, **kwargs)``, a source without items.
        role: source, intermediate stage, or sink.
        position: 1 for the source, then 2, 3, ...
        name: the function's name, for messages and thread names.
        threads: how many instances of ``fn`` run at once, each in its own thread, or each in
            its own worker process when ``processes`` is set.
        processes: whether the instances run in worker processes (``processes=n``).
        buffer: the most output items alive at once (an ``int``), or an auto buffer bounded
            by bytes as well (an :class:`AutoBuffer`); ``None`` for a sink, which has no output.
        args: positional constants; the builder gives none (constants go by keyword).
        kwargs: keyword constants (read-only).
        item_type: the type of the items it yields, as its annotations say (``Any`` when
            they do not; set by the build-time type check).
        length: how many items a source will yield, when known at build time (the
            ``len()`` of the collection given to ``Pipeline.from_iterable``); for progress.
        ordered: on several threads, whether its outputs come out in input order.
        inner: for a per-item operator, the user's function it applies to each item (``fn``
            is then the operator's wrapper; ``None`` for batch, unbatch and take).
        options: the operator's options as they read in ``repr``, e.g. ``("timeout=5.0",)``.
        by_reference: for a process stage, whether its function and constants pickle with
            the standard pickler, naming nothing of the main module (set by the build-time
            check): its workers then need no cloudpickle.
    """

    fn: Callable[..., object]
    role: Role
    position: int
    name: str
    threads: int
    buffer: int | AutoBuffer | None
    args: tuple[object, ...]
    kwargs: Mapping[str, object]
    item_type: object = Any
    length: int | None = None
    ordered: bool = False
    inner: Callable[..., object] | None = None
    options: tuple[str, ...] = ()
    processes: bool = False
    by_reference: bool = False

    @property
    def label(self) -> str:
        """How messages name this stage, e.g. ``stage 2 'parse' (then)``."""
        return f"stage {self.position} {self.name!r} ({self.role.value})"

    def __repr__(self) -> str:
        fixed = self.role.is_operator and self.inner is None  # batch, unbatch, take
        parts = [] if fixed else [self.name]
        if self.processes:
            parts.append(f"processes={self.threads}")
        elif self.role is not Role.SOURCE and not fixed:
            parts.append(f"threads={self.threads}")
        if isinstance(self.buffer, int) or self.buffer not in (None, AutoBuffer()):
            parts.append(f"buffer={self.buffer!r}")
        parts.extend(self.options)
        parts.extend(f"{key}={short_repr(value)}" for key, value in self.kwargs.items())
        return f"{self.role.value}({', '.join(parts)})"


class Backend(Protocol):
    """What runs a pipeline. The threaded runner is one; process and distributed ones may follow.

    ``monitor`` is fed statistics while the run goes on; ``progress`` is where to draw the
    live display (``None``: nowhere); ``memory_budget`` is what the auto buffers may fill
    (``None``: the default, see ``_budget``); ``engine`` hosts the stages (a
    ``_supervise.Engine``, typed loosely here, below the supervisor; ``None``: the local one).
    """

    def iterate(
        self,
        stages: Sequence[StageSpec],
        *,
        inactivity_timeout: float | None,
        monitor: Monitor | None = None,
        progress: TextIO | None = None,
        start_method: str | None = None,
        memory_budget: Budget | None = None,
        engine: object = None,
    ) -> Iterator[object]:
        """Run ``stages`` (no sink) and yield the last stage's items in the caller's thread."""
        ...

    def run(
        self,
        stages: Sequence[StageSpec],
        *,
        inactivity_timeout: float | None,
        monitor: Monitor | None = None,
        progress: TextIO | None = None,
        start_method: str | None = None,
        memory_budget: Budget | None = None,
        engine: object = None,
    ) -> object:
        """Run ``stages`` (the last is a sink) to the end and return the sink's return value."""
        ...


def check_count(label: str, option: str, value: object, minimum: int) -> int:
    """``value`` if it is an int ``>= minimum``.

    Raises:
        PipelineDefinitionError: naming the stage, the option and the value.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise PipelineDefinitionError(
            label, f"{option} must be an int, got {value!r} ({type(value).__name__})"
        )
    if value < minimum:
        raise PipelineDefinitionError(label, f"{option} must be >= {minimum}, got {value}")
    return value


def returns_none(fn: Callable[..., object]) -> bool:
    """Whether ``fn`` is annotated ``-> None``, as a sink on several threads must be (it has no
    single return value); an annotation that cannot be resolved is not ``None``."""
    returns = _introspect.hints(fn).annotations["return"]
    return returns is None or returns is type(None)


def stage_label(fn: object, role: Role, position: int) -> str:
    """How messages name a stage before it is validated, e.g. ``stage 2 'parse' (then)``."""
    if not callable(fn):
        return f"stage {position} ({role.value})"
    return f"stage {position} {_introspect.callable_name(fn)!r} ({role.value})"


def make_stage(
    fn: object,
    role: Role,
    position: int,
    *,
    threads: object = 1,
    buffer: object = None,
    processes: object = None,
    kwargs: Mapping[str, object] | None = None,
    ordered: object = False,
    inner: object = None,
    options: tuple[str, ...] = (),
) -> StageSpec:
    """Validate a stage's function, options and constants (all by keyword), and describe it.

    For a per-item operator, ``fn`` is its wrapper and ``inner`` the user's function: the
    name, and the constants, are ``inner``'s (it is called ``inner(item, **kwargs)``).

    Raises:
        PipelineDefinitionError: naming the stage and what is wrong with it.
    """
    kwargs = dict(kwargs or {})
    user = fn if inner is None else inner
    label = stage_label(user, role, position)
    if not callable(user):
        raise PipelineDefinitionError(
            label, f"expected a callable, got {user!r} ({type(user).__name__})"
        )
    assert callable(fn)
    name = _introspect.callable_name(user)
    n_threads = check_count(label, "threads", threads, 1)
    if processes is not None:
        if n_threads != 1:
            raise PipelineDefinitionError(
                label,
                f"threads={n_threads} and processes={processes!r} are exclusive: a stage's "
                "instances run either on threads or in worker processes",
            )
        n_threads = check_count(label, "processes", processes, 1)
        if role is Role.SOURCE and n_threads != 1:
            raise PipelineDefinitionError(
                label, f"a source runs in exactly one process, got processes={n_threads}"
            )
        if ordered is True and n_threads > 1:
            raise PipelineDefinitionError(
                label,
                f"ordered output over {n_threads} worker processes is not supported yet: pass "
                "ordered=False (or processes=1, whose output keeps its order)",
            )
    if role is Role.SOURCE and n_threads != 1:
        raise PipelineDefinitionError(
            label, f"a source runs on exactly one thread, got threads={n_threads}"
        )
    n_buffer: int | AutoBuffer | None = None
    if role is Role.SINK and buffer is not None:
        raise PipelineDefinitionError(
            label, f"a sink has no output, so it takes no buffer option, got buffer={buffer!r}"
        )
    if role is not Role.SINK:
        if buffer is None:
            n_buffer = AutoBuffer()
        elif isinstance(buffer, AutoBuffer):
            n_buffer = buffer.checked(label, n_threads)
        else:
            n_buffer = check_count(label, "buffer", buffer, 1)
            if n_buffer < n_threads:
                raise PipelineDefinitionError(
                    label,
                    f"buffer={n_buffer} is smaller than threads={n_threads}: each thread "
                    "needs a slot for the item it is producing; use buffer >= threads",
                )
    if not isinstance(ordered, bool):
        raise PipelineDefinitionError(
            label, f"ordered must be a bool, got {ordered!r} ({type(ordered).__name__})"
        )
    if ordered and not (role.takes_input and role.has_output):
        raise PipelineDefinitionError(
            label, f"a {role.value} has no input and output to keep in order: drop ordered"
        )
    _introspect.check_binding(
        user,
        label,
        takes_input=role is not Role.SOURCE,
        kwargs=kwargs,
        reserved=option_names(role),
    )
    if role is Role.SINK:
        if _introspect.is_generator_function(fn):
            raise PipelineDefinitionError(
                label,
                "is a generator function, so calling it would consume nothing; a sink must "
                "consume its items and return (use then() for a stage that yields)",
            )
        if n_threads > 1 and not returns_none(fn):
            returns = _introspect.hints(fn).annotations["return"]
            found = (
                "no return annotation"
                if returns is _introspect.MISSING
                else f"'-> {getattr(returns, '__name__', returns)}'"
            )
            raise PipelineDefinitionError(
                label,
                f"runs on {n_threads} threads, so it has no single return value: "
                f"annotate it '-> None' (found {found})",
            )
    by_reference = processes is not None and check_picklable(fn, label, kwargs)
    return StageSpec(
        fn=fn,
        role=role,
        position=position,
        name=name,
        threads=n_threads,
        buffer=n_buffer,
        args=(),
        kwargs=MappingProxyType(kwargs),
        ordered=ordered,
        inner=user if inner is not None else None,
        options=options,
        processes=processes is not None,
        by_reference=by_reference,
    )


def check_picklable(fn: object, label: str, kwargs: Mapping[str, object]) -> bool:
    """A process stage's function and constants travel to every worker: check that they pickle
    (with cloudpickle, so lambdas and closures do) before anything runs.

    What the standard pickler takes without naming ``__main__`` (functions and classes of
    importable modules, plain data) cloudpickle pickles alike, by reference, so only the rest
    is tried with cloudpickle: its import (about 11 ms) is then left to the workers' start,
    and a first fork pipeline, which pickles nothing, does without it.

    multiprocessing's own objects (``Lock``, ``Event``, ``Queue``, ``Value``) pickle only while
    a process is being started; they are accepted here and reach each worker as the same
    shared object.

    Returns:
        Whether all of them pickle with the standard pickler, naming nothing of the main
        module (so that the workers need no cloudpickle).

    Raises:
        PipelineDefinitionError: naming the stage and what does not pickle.
    """
    named: list[tuple[str, object]] = [("the stage function", fn)]
    named += [(f"constant {key!r}", value) for key, value in kwargs.items()]
    by_reference = True
    for what, value in named:
        if _pickles_by_reference(value):
            continue
        by_reference = False
        import cloudpickle  # lazily: only what the standard pickler does not take needs it

        try:
            cloudpickle.dumps(value)
        except RuntimeError as exc:
            if "through inheritance" in str(exc):  # a multiprocessing object: fine at start
                continue
            raise _unpicklable(label, what, value, exc) from exc
        except Exception as exc:
            raise _unpicklable(label, what, value, exc) from exc
    return by_reference


def _pickles_by_reference(value: object) -> bool:
    """Whether the standard pickler takes ``value`` without naming the main module (whose
    functions and classes cloudpickle pickles by value instead, globals and all)."""
    import pickle

    try:
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        return False
    return b"__main__" not in data


def _unpicklable(label: str, what: str, value: object, exc: Exception) -> PipelineDefinitionError:
    return PipelineDefinitionError(
        label,
        f"runs in worker processes, so {what} must pickle, but {type(value).__name__} "
        f"{short_repr(value)} does not ({type(exc).__name__}: {exc})",
    )
