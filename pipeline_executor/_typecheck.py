"""Build-time type checks of the pipeline graph, and the optional per-item checks.

For every stage, before any thread exists: the function is not async; its first parameter
takes an iterator of items whose type fits what the previous stage yields (binding the
stage's TypeVars from it); a source or stage returns an iterable (not a ``str`` or ``bytes``)
whose item type becomes what the next stage is checked against; and every constant, those
bound by ``functools.partial`` included, is checked against its parameter's annotation
(``_fits``: ``isinstance`` for plain classes, typeguard otherwise, by sample for large
collections). Missing annotations, and those that cannot be resolved, count as ``Any``,
except under the seed's ``execute`` API, which requires them all and only warns about
constants (see :class:`Strictness`).
"""

from __future__ import annotations

import collections.abc as abc
import enum
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

from . import _introspect
from ._errors import PipelineTypeError, PipelineTypeWarning, warn_at_caller
from ._fits import mismatch
from ._introspect import MISSING, Hints, Kind, ParamKind, classify
from ._stages import Role, StageSpec, short_repr
from ._subtype import (
    NOT_ITERABLE,
    BindError,
    bind,
    describe,
    is_subtype,
    item_type,
    substitute,
)

__all__ = ["Strictness", "check_alone", "check_stage", "with_item_checks"]

_INPUT = object()  # stands for the items in a binding of a stage's parameters


class Strictness(enum.Enum):
    """How strictly a stage's annotations are held to."""

    FLUENT = "fluent"
    """The builder: a missing annotation is ``Any``; a constant that does not fit raises."""

    SEED = "seed"
    """``execute()``: every parameter and the return must be annotated, as the seed's README
    says; a constant that does not fit its annotation only warns, as the seed promised not to
    check constants' types."""


def check_stage(
    previous: StageSpec | None, stage: StageSpec, strictness: Strictness = Strictness.FLUENT
) -> StageSpec:
    """Check that ``stage`` can follow ``previous`` (``None`` for a source).

    Returns:
        ``stage`` with ``item_type`` set to the type of the items it yields.

    Raises:
        PipelineTypeError: naming the stage, what was expected and what was found.
    """
    if stage.role.is_operator:
        return _check_operator(previous, stage)
    label = stage.label
    _refuse_async(stage)
    hints = _introspect.hints(stage.fn)
    _warn_unresolved(label, hints)
    if strictness is Strictness.SEED:
        _require_annotations(label, hints, stage.role)
    binding: dict[Any, object] = {}
    if stage.role is not Role.SOURCE and previous is not None:
        _check_input(previous, stage, hints, binding)
    if stage.role is not Role.SINK:
        stage = stage.replace(item_type=_yielded(stage, hints, binding))
    _check_constants(stage, hints, binding, strictness)
    return stage


def check_alone(stage: StageSpec) -> None:
    """Check a task that ``execute()`` runs alone, as a plain call: it is not async, every
    parameter and the return are annotated, and its constants fit (or a warning says not).

    Raises:
        PipelineTypeError: naming the task, what was expected and what was found.
    """
    _refuse_async(stage)
    hints = _introspect.hints(stage.fn)
    _warn_unresolved(stage.label, hints)
    _require_annotations(stage.label, hints, Role.SINK)
    _check_constants(stage, hints, {}, Strictness.SEED)


def _warn_unresolved(label: str, hints: Hints) -> None:
    """Say once per stage which annotations count as ``Any`` because they cannot be resolved."""
    if not hints.unresolved:
        return
    which = ", ".join(
        f"{'the return' if key == 'return' else repr(key)} ({name!r})"
        for key, name in hints.unresolved
    )
    warn_at_caller(
        f"{label} has annotations that cannot be resolved at run time, so they count as Any: "
        f"{which} (a name imported under 'if TYPE_CHECKING:' or a class local to a function?)",
        PipelineTypeWarning,
    )


def _refuse_async(stage: StageSpec) -> None:
    if _introspect.is_async(stage.fn):
        raise PipelineTypeError(
            stage.label,
            "is an async function: async stages are not supported (yet); write a plain "
            "generator, and run any coroutine inside it with asyncio.run()",
        )


def _check_operator(previous: StageSpec | None, stage: StageSpec) -> StageSpec:
    """The shapes of the per-item operators: ``fn(item, **consts) -> U`` for map, ``-> bool``
    for filter, ``-> Iterable[U]`` for flat_map; batch, unbatch and take have no function."""
    upstream: object = previous.item_type if previous is not None else Any
    role, label, inner = stage.role, stage.label, stage.inner
    if inner is None:
        if role is Role.BATCH:
            produced: object = list[upstream]  # type: ignore[valid-type]
        elif role is Role.UNBATCH:
            produced = _unbatched(stage, previous, upstream)
        else:
            produced = upstream
        return stage.replace(item_type=produced)
    if _introspect.is_async(inner):
        raise PipelineTypeError(
            label, f"is an async function: {role.value}() needs a plain function of one item"
        )
    hints = _introspect.hints(inner)
    _warn_unresolved(label, hints)
    binding: dict[Any, object] = {}
    first = hints.params[0] if hints.params else None
    if previous is not None and first is not None and first.kind is not ParamKind.VAR_POSITIONAL:
        accepted = hints.annotations[first.name]
        if accepted is not MISSING:
            _check_item(previous, stage, accepted, binding)
    returns = hints.annotations["return"]
    if role is Role.FILTER:
        if returns is not MISSING and not is_subtype(returns, bool):
            raise PipelineTypeError(
                label,
                f"returns {describe(returns)}, but filter() keeps an item when its predicate "
                "returns True: annotate it '-> bool'",
            )
        produced = upstream
    elif returns is MISSING:
        produced = Any
    elif role is Role.MAP:
        produced = _free_to_any(substitute(returns, binding))
    else:
        produced = _iterated(stage, returns, binding)
    stage = stage.replace(item_type=produced)
    _check_constants(stage, hints, binding, Strictness.FLUENT)
    return stage


def _check_item(
    previous: StageSpec, stage: StageSpec, accepted: object, binding: dict[Any, object]
) -> None:
    upstream = previous.item_type
    try:
        bind(accepted, upstream, binding)
    except BindError as exc:
        raise PipelineTypeError(
            stage.label,
            f"expects items of type {describe(accepted)}, where {describe(exc.var)} must be "
            f"{describe(exc.expected)}, but {previous.label} yields {describe(upstream)}",
        ) from None
    if not is_subtype(upstream, substitute(accepted, binding)):
        raise PipelineTypeError(
            stage.label,
            f"expects items of type {describe(accepted)}, but {previous.label} yields "
            f"{describe(upstream)}",
        )


def _iterated(stage: StageSpec, returns: object, binding: dict[Any, object]) -> object:
    """The item type of what a flat_map function returns, refusing str, bytes and non-iterables."""
    info = classify(returns)
    if info.kind is Kind.CLASS and issubclass(info.origin, (str, bytes)):
        raise PipelineTypeError(
            stage.label,
            f"returns {describe(returns)}: flat_map() would make each character an item; "
            f"use map() for one value per item, or return a list of them",
        )
    item = item_type(returns)
    if item is NOT_ITERABLE:
        raise PipelineTypeError(
            stage.label,
            f"returns {describe(returns)}, which is not iterable; flat_map() needs a function "
            "returning Iterable[...] (use map() for one value per item)",
        )
    return _free_to_any(substitute(item, binding))


def _unbatched(stage: StageSpec, previous: StageSpec | None, upstream: object) -> object:
    info = classify(upstream)
    where = previous.label if previous is not None else "the previous stage"
    if info.kind is Kind.CLASS and issubclass(info.origin, (str, bytes)):
        raise PipelineTypeError(
            stage.label,
            f"is given {describe(upstream)} items by {where}: unbatch() would make each "
            "character an item",
        )
    item = item_type(upstream)
    if item is NOT_ITERABLE:
        raise PipelineTypeError(
            stage.label,
            f"needs iterable items, but {where} yields {describe(upstream)}",
        )
    return _free_to_any(item)


def _require_annotations(label: str, hints: Hints, role: Role) -> None:
    missing = [p.name for p in hints.params if hints.annotations[p.name] is MISSING]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise PipelineTypeError(
            label, f"has no annotation on parameter(s) {names}; execute() needs them all"
        )
    if hints.annotations["return"] is MISSING:
        wanted = "'-> None' or what it returns" if role is Role.SINK else "'-> Iterable[...]'"
        raise PipelineTypeError(
            label, f"has no return annotation; execute() needs one, e.g. {wanted}"
        )


def _check_input(
    previous: StageSpec, stage: StageSpec, hints: Hints, binding: dict[Any, object]
) -> None:
    first = hints.params[0] if hints.params else None
    if first is None or first.kind is ParamKind.VAR_POSITIONAL:
        return
    annotation = hints.annotations[first.name]
    if annotation is MISSING:
        return
    if not is_subtype(abc.Iterator[Any], annotation):
        raise PipelineTypeError(
            stage.label,
            f"takes its items as {describe(annotation)}, but it is given an iterator: "
            f"annotate its first parameter {first.name!r} as Iterable[...] or Iterator[...]",
        )
    accepted = item_type(annotation)
    upstream = previous.item_type
    try:
        bind(accepted, upstream, binding)
    except BindError as exc:
        raise PipelineTypeError(
            stage.label,
            f"expects items of type {describe(accepted)}, where {describe(exc.var)} must be "
            f"{describe(exc.expected)}, but {previous.label} yields {describe(upstream)}",
        ) from None
    if not is_subtype(upstream, substitute(accepted, binding)):
        raise PipelineTypeError(
            stage.label,
            f"expects items of type {describe(accepted)}, but {previous.label} yields "
            f"{describe(upstream)}",
        )


def _yielded(stage: StageSpec, hints: Hints, binding: dict[Any, object]) -> object:
    returns = hints.annotations["return"]
    if returns is MISSING:
        return Any
    info = classify(returns)
    if info.kind is Kind.CLASS and issubclass(info.origin, (str, bytes)):
        what = "1-character strings" if issubclass(info.origin, str) else "ints"
        raise PipelineTypeError(
            stage.label,
            f"returns {describe(returns)}, which is an iterable of {what}: each would become "
            f"an item; yield whole values and annotate it '-> Iterator[{describe(returns)}]'",
        )
    item = item_type(returns)
    if item is NOT_ITERABLE:
        raise PipelineTypeError(
            stage.label,
            f"returns {describe(returns)}, which is not iterable; a {stage.role.value}() "
            "stage must return Iterable[...], Iterator[...] or Generator[...]",
        )
    return _free_to_any(substitute(item, binding))


def _free_to_any(tp: object) -> object:
    """A TypeVar nothing bound stands for any type."""
    return Any if classify(tp).kind is Kind.TYPEVAR else tp


def _check_constants(
    stage: StageSpec, hints: Hints, binding: dict[Any, object], strictness: Strictness
) -> None:
    call_args = stage.args if stage.role is Role.SOURCE else (_INPUT, *stage.args)
    given = _introspect.arguments(hints.params, call_args, stage.kwargs)
    for key, name, value in (*hints.bound, *given):
        annotation = hints.annotations.get(name, MISSING)
        if value is _INPUT or annotation is MISSING:
            continue
        problem = mismatch(value, substitute(annotation, binding))
        if problem is None:
            continue
        message = (
            f"expects its constant {key!r} to be {describe(annotation)}, but got "
            f"{short_repr(value)} ({type(value).__name__}): {problem}"
        )
        if strictness is Strictness.SEED:
            warn_at_caller(f"{stage.label} {message}", PipelineTypeWarning)
        else:
            raise PipelineTypeError(stage.label, message) from problem


def with_item_checks(stage: StageSpec) -> StageSpec:
    """``stage`` with every item it yields checked against its declared item type.

    A mismatch raises :class:`PipelineTypeError` in the stage, which stops the pipeline like
    any stage failure.
    """
    if stage.role is Role.SINK or stage.item_type is Any:
        return stage
    fn, declared, label = stage.fn, stage.item_type, stage.label

    def checked(*args: object, **kwargs: object) -> Iterator[object]:
        from typeguard import CollectionCheckStrategy, TypeCheckError, check_type

        items: Iterator[object] = iter(cast("Iterable[object]", fn(*args, **kwargs)))
        try:
            for item in items:
                try:
                    check_type(
                        item, declared, collection_check_strategy=CollectionCheckStrategy.ALL_ITEMS
                    )
                except TypeCheckError as exc:
                    raise PipelineTypeError(
                        label,
                        f"yielded an item of type {type(item).__name__}, but its items are "
                        f"declared as {describe(declared)}: {exc}",
                    ) from exc
                yield item
        finally:
            close: Callable[[], object] | None = getattr(items, "close", None)
            if close is not None:
                close()

    # A closure: a process stage's workers get it by cloudpickle, whatever the function was.
    return stage.replace(fn=checked, by_reference=False)
