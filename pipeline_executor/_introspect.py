"""What a stage function's signature says: its name, its parameters, its annotations.

The only module that reads signatures and annotations; the type checks of the pipeline graph
(``_typecheck``) build on it.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from ._errors import PipelineDefinitionError

__all__ = ["MISSING", "callable_name", "check_binding", "is_generator_function", "return_hint"]

MISSING: Any = inspect.Parameter.empty
"""Stands for an annotation that is not there."""

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def callable_name(fn: object) -> str:
    """The name a stage is known by in messages and thread names."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__name__", None)
    if isinstance(name, str):
        return name
    return type(fn).__name__


def _signature(fn: Callable[..., object]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none: nothing to check
        return None


def is_generator_function(fn: object) -> bool:
    """Whether calling ``fn`` only creates a generator (partials and ``__call__`` included)."""
    if inspect.isgeneratorfunction(fn):
        return True
    if inspect.isfunction(fn) or inspect.ismethod(fn) or isinstance(fn, functools.partial):
        return False
    return inspect.isgeneratorfunction(type(fn).__call__)


def return_hint(fn: Callable[..., object], label: str) -> object:
    """The resolved return annotation of ``fn``, or :data:`MISSING`.

    Raises:
        PipelineDefinitionError: the annotation names something that cannot be resolved.
    """
    try:
        signature = inspect.signature(fn, eval_str=True)
    except (TypeError, ValueError):
        return MISSING
    except Exception as exc:  # a NameError or worse, from evaluating a string annotation
        raise PipelineDefinitionError(
            label, f"cannot resolve its annotations: {type(exc).__name__}: {exc}"
        ) from exc
    return signature.return_annotation


def check_binding(
    fn: Callable[..., object],
    label: str,
    *,
    takes_input: bool,
    args: tuple[object, ...],
    kwargs: Mapping[str, object],
    reserved: frozenset[str],
) -> None:
    """Check that ``fn`` can be called as the runner will call it, before anything runs.

    A stage with input is called ``fn(items, *args, **kwargs)``, a source ``fn(*args, **kwargs)``.

    Raises:
        PipelineDefinitionError: a parameter is named like an option, a constant is missing,
            unknown or positional-only, or there are too many positional constants.
    """
    signature = _signature(fn)
    if signature is None:
        return
    params = list(signature.parameters.values())
    if takes_input:
        if not params or params[0].kind not in (*_POSITIONAL, inspect.Parameter.VAR_POSITIONAL):
            raise PipelineDefinitionError(
                label,
                "takes no positional parameter to receive the previous stage's items; "
                "its first parameter must take them, e.g. def f(items: Iterable[X], ...)",
            )
        if params[0].kind is not inspect.Parameter.VAR_POSITIONAL:
            params = params[1:]
    name = callable_name(fn)
    bound_by_partial: Mapping[str, object] = (
        fn.keywords if isinstance(fn, functools.partial) else {}  # pyright: ignore[reportUnknownMemberType]
    )
    for param in params:
        if param.name in reserved and param.name not in bound_by_partial:
            raise PipelineDefinitionError(
                label,
                f"has a parameter named {param.name!r}, which is also the name of a stage "
                f"option, so it cannot be passed as a constant; bind it first with "
                f"functools.partial({name}, {param.name}=...)",
            )
    by_name = {p.name: p for p in params}
    var_keyword = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    for key in kwargs:
        found = by_name.get(key)
        if found is None and not var_keyword:
            known = [p.name for p in params if p.kind not in _VARIADIC]
            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            accepted = ", ".join(known) if known else "none"
            raise PipelineDefinitionError(
                label,
                f"unknown constant {key!r} (its constants are: {accepted}){suggestion}",
            )
        if (
            found is not None
            and found.kind is inspect.Parameter.POSITIONAL_ONLY
            and not var_keyword
        ):
            raise PipelineDefinitionError(
                label,
                f"parameter {key!r} is positional-only, so it cannot be given as a constant "
                "by keyword; pass it positionally or bind it with functools.partial",
            )
    positional = [p for p in params if p.kind in _POSITIONAL]
    if len(args) > len(positional) and not any(
        p.kind is inspect.Parameter.VAR_POSITIONAL for p in params
    ):
        raise PipelineDefinitionError(
            label,
            f"takes {len(positional)} positional constant(s) but {len(args)} were given",
        )
    given = {p.name for p in positional[: len(args)]} | set(kwargs)
    missing = [
        p.name
        for p in params
        if p.default is inspect.Parameter.empty and p.kind not in _VARIADIC and p.name not in given
    ]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise PipelineDefinitionError(label, f"missing constant(s) {names}")
    for key in kwargs:
        if key in {p.name for p in positional[: len(args)]}:
            raise PipelineDefinitionError(
                label, f"constant {key!r} is given both positionally and by keyword"
            )


_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
