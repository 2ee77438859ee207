"""What a stage function's signature says: its name, its parameters, its annotations.

It reads stage functions' signatures (through ``_signature``, which reads plain functions
and simple builtins without importing ``inspect``) and resolves their annotations;
``_stages`` and ``_typecheck`` build on it. It is not the only reader of annotations:
``_subtype`` reads a class's ``__iter__`` return annotation itself, to find its item type. It
is the only user of ``typing_inspect``.
"""

from __future__ import annotations

import enum
import functools
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, cast

from . import _signature
from ._errors import PipelineDefinitionError
from ._record import Record
from ._signature import MISSING, Param, ParamKind

__all__ = [
    "MISSING",
    "Hints",
    "Kind",
    "Param",
    "ParamKind",
    "TypeInfo",
    "arguments",
    "callable_name",
    "check_binding",
    "classify",
    "hints",
    "is_async",
    "is_generator_function",
]

_POSITIONAL = (ParamKind.POSITIONAL_ONLY, ParamKind.POSITIONAL_OR_KEYWORD)
_VARIADIC = (ParamKind.VAR_POSITIONAL, ParamKind.VAR_KEYWORD)


def callable_name(fn: object) -> str:
    """The name a stage is known by in messages and thread names."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__name__", None)
    if isinstance(name, str):
        return name
    return type(fn).__name__


def is_generator_function(fn: object) -> bool:
    """Whether calling ``fn`` only creates a generator (partials and ``__call__`` included)."""
    known = _signature.is_generator_function(fn)
    if known is not None:
        return known
    import inspect  # what _signature does not read

    if inspect.isgeneratorfunction(fn):
        return True
    if inspect.isfunction(fn) or inspect.ismethod(fn) or isinstance(fn, functools.partial):
        return False
    return inspect.isgeneratorfunction(type(fn).__call__)


class Hints(Record):
    """A stage function's resolved annotations, as the runner will call it.

    Attributes:
        params: its parameters after ``functools.partial`` binding, in order.
        annotations: every parameter's resolved annotation by name (:data:`MISSING` if none),
            those bound by ``functools.partial`` included, and the return annotation under
            ``"return"`` (a class's is the class).
        bound: the values ``functools.partial`` bound, as (what to call it, parameter name,
            value); each item of a ``*args`` or ``**kwargs`` is one entry.
        unresolved: the annotations that could not be resolved (they count as ``Any``), as
            (parameter name or ``"return"``, the name that failed).
    """

    params: tuple[Param, ...]
    annotations: Mapping[str, object]
    bound: tuple[tuple[str, str, object], ...]
    unresolved: tuple[tuple[str, str], ...] = ()


def _annotated_target(fn: object) -> tuple[object, object]:
    """What carries the annotations of ``fn``, and its return annotation if it is implied."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    if isinstance(fn, type):  # inspect.isclass, isfunction, ismethod and isbuiltin are these
        return cast("type[Any]", fn).__init__, fn
    if isinstance(fn, types.FunctionType | types.MethodType | types.BuiltinFunctionType):
        return fn, None
    return type(fn).__call__, None


def arguments(
    params: tuple[Param, ...], args: tuple[object, ...], kwargs: Mapping[str, object]
) -> list[tuple[str, str, object]]:
    """Which parameter each argument goes to, as (what to call it, parameter name, value)."""
    try:
        bound = _signature.bind_partial(params, args, kwargs)
        if bound is None:
            bound = _bind_by_inspect(params, args, kwargs)
    except TypeError:
        return []
    kinds = {p.name: p.kind for p in params}
    entries: list[tuple[str, str, object]] = []
    for name, value in bound.items():
        if kinds[name] is ParamKind.VAR_POSITIONAL:
            entries.extend(
                (f"{name}[{i}]", name, v) for i, v in enumerate(cast("tuple[object, ...]", value))
            )
        elif kinds[name] is ParamKind.VAR_KEYWORD:
            entries.extend((key, name, v) for key, v in cast("dict[str, object]", value).items())
        else:
            entries.append((name, name, value))
    return entries


def _bind_by_inspect(
    params: tuple[Param, ...], args: tuple[object, ...], kwargs: Mapping[str, object]
) -> dict[str, object]:
    """``inspect.Signature.bind_partial``, for what ``_signature.bind_partial`` leaves to it."""
    import inspect

    empty = inspect.Parameter.empty
    kinds = (  # by ParamKind's value, which is inspect's
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.KEYWORD_ONLY,
        inspect.Parameter.VAR_KEYWORD,
    )
    signature = inspect.Signature(
        [
            inspect.Parameter(
                p.name, kinds[p.kind], default=empty if p.default is MISSING else p.default
            )
            for p in params
        ]
    )
    return dict(signature.bind_partial(*args, **kwargs).arguments)


def _partial_bindings(fn: object) -> tuple[tuple[str, str, object], ...]:
    layers: list[functools.partial[object]] = []
    while isinstance(fn, functools.partial):
        layers.append(fn)  # pyright: ignore[reportUnknownArgumentType]
        fn = fn.func  # pyright: ignore[reportUnknownMemberType]
    if not layers:
        return ()
    args: list[object] = []
    keywords: dict[str, object] = {}
    for layer in reversed(layers):  # the innermost partial's arguments come first
        args.extend(layer.args)
        keywords.update(layer.keywords)
    params = _signature.parameters(fn)  # type: ignore[arg-type]
    if params is None:
        return ()
    return tuple(arguments(params, tuple(args), keywords))


def hints(fn: Callable[..., object]) -> Hints:
    """Resolve the annotations of ``fn`` (strings included) with ``typing.get_type_hints``.

    An annotation that cannot be resolved (``from __future__ import annotations`` with a name
    imported under ``if TYPE_CHECKING:``, or a class local to a function) counts as ``Any``
    and is listed in ``Hints.unresolved``: mypy accepts such code, so the build must too.
    """
    params = _signature.parameters(fn) or ()
    target, implied_return = _annotated_target(fn)
    unresolved: tuple[tuple[str, str], ...] = ()
    try:
        resolved = typing.get_type_hints(target)
    except (NameError, AttributeError, SyntaxError):
        resolved, unresolved = _resolve_each(target)
    except TypeError:  # not annotatable (some builtins): nothing is known
        resolved = {}
    annotations = {**resolved, **{p.name: resolved.get(p.name, MISSING) for p in params}}
    annotations["return"] = (
        implied_return if implied_return is not None else resolved.get("return", MISSING)
    )
    return Hints(
        params=params, annotations=annotations, bound=_partial_bindings(fn), unresolved=unresolved
    )


def _resolve_each(target: object) -> tuple[dict[str, object], tuple[tuple[str, str], ...]]:
    """Resolve annotations one by one; those that fail become ``Any``, and are named."""
    import inspect  # only for annotations that failed to resolve

    raw: Mapping[str, object] = getattr(target, "__annotations__", {})
    namespace = inspect.unwrap(target) if callable(target) else target
    globalns: dict[str, Any] = getattr(namespace, "__globals__", {})
    resolved: dict[str, object] = {}
    failed: list[tuple[str, str]] = []
    for key, annotation in raw.items():
        holder = types.SimpleNamespace(__annotations__={key: annotation})
        try:
            resolved[key] = typing.get_type_hints(holder, globalns)[key]
        except (NameError, AttributeError, SyntaxError) as exc:
            resolved[key] = Any
            failed.append((key, getattr(exc, "name", None) or str(exc)))
    return resolved, tuple(failed)


def is_async(fn: object) -> bool:
    """Whether ``fn`` is an ``async def`` function or async generator (partials included)."""
    target, _ = _annotated_target(fn)
    known = _signature.is_async(target)
    if known is not None:
        return known
    import inspect  # what _signature does not read

    return inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def check_binding(
    fn: Callable[..., object],
    label: str,
    *,
    takes_input: bool,
    kwargs: Mapping[str, object],
    reserved: frozenset[str],
) -> None:
    """Check that ``fn`` can be called as the runner will call it, before anything runs.

    A stage with input is called ``fn(items, **kwargs)``, a source ``fn(**kwargs)``.

    Raises:
        PipelineDefinitionError: a parameter is named like an option, or a constant is
            missing, unknown or positional-only.
    """
    read = _signature.parameters(fn)
    if read is None:
        return
    params = list(read)
    if takes_input:
        if not params or params[0].kind not in (*_POSITIONAL, ParamKind.VAR_POSITIONAL):
            raise PipelineDefinitionError(
                label,
                "takes no positional parameter to receive the previous stage's items; "
                "its first parameter must take them, e.g. def f(items: Iterable[X], ...)",
            )
        if params[0].kind is not ParamKind.VAR_POSITIONAL:
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
    var_keyword = any(p.kind is ParamKind.VAR_KEYWORD for p in params)
    for key in kwargs:
        found = by_name.get(key)
        if found is None and not var_keyword:
            known = [p.name for p in params if p.kind not in _VARIADIC]
            import difflib  # only on this error path: it costs an import otherwise

            hint = difflib.get_close_matches(key, known, n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            accepted = ", ".join(known) if known else "none"
            raise PipelineDefinitionError(
                label,
                f"unknown constant {key!r} (its constants are: {accepted}){suggestion}",
            )
    for param in params:
        given = param.name in kwargs and not var_keyword  # else a keyword goes to **kwargs
        if param.kind is ParamKind.POSITIONAL_ONLY and (given or param.default is MISSING):
            how = (
                f"bind it with functools.partial({name}, ...)"
                if not takes_input
                else "wrap the function in one that takes it by keyword (functools.partial "
                "cannot bind a parameter that follows the items)"
            )
            raise PipelineDefinitionError(
                label,
                f"parameter {param.name!r} is positional-only, so it cannot be given as a "
                f"constant (constants go by keyword); {how}",
            )
    missing = [
        p.name
        for p in params
        if p.default is MISSING and p.kind not in _VARIADIC and p.name not in kwargs
    ]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise PipelineDefinitionError(label, f"missing constant(s) {names}")


class Kind(enum.Enum):
    """What sort of type an annotation is, for the subtype rules."""

    ANY = "any"
    NONE = "none"
    UNION = "union"
    LITERAL = "literal"
    NEWTYPE = "newtype"
    TYPEVAR = "typevar"
    TUPLE = "tuple"
    CALLABLE = "callable"
    TYPE = "type"  # type[X]
    CLASS = "class"  # a class, possibly generic with arguments
    UNKNOWN = "unknown"  # forward references and anything else that cannot be decided


class TypeInfo(Record):
    """An annotation taken apart.

    Attributes:
        kind: what sort of type it is.
        origin: the class (``list`` for ``list[int]``); the supertype of a NewType; the
            TypeVar itself.
        args: type arguments (``()`` when none were given); union members; literal values;
            tuple elements (with ``variadic`` for ``tuple[X, ...]``).
        variadic: ``tuple[X, ...]`` or a bare ``tuple``.
    """

    kind: Kind
    origin: Any = None
    args: tuple[Any, ...] = ()
    variadic: bool = False


_NONE_TYPES: tuple[object, ...] = (None, type(None))
_SPECIAL_ORIGINS: tuple[object, ...] = (tuple, type, Callable, types.UnionType)


def classify(tp: object) -> TypeInfo:
    """Take an annotation apart (``Annotated`` is stripped; NewTypes keep their name)."""
    if tp is Any or tp is MISSING:
        return TypeInfo(Kind.ANY)
    if tp in _NONE_TYPES:
        return TypeInfo(Kind.NONE, type(None))
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return classify(typing.get_args(tp)[0])
    if isinstance(tp, (str, typing.ForwardRef)):
        return TypeInfo(Kind.UNKNOWN)
    # Plain classes and generics of ordinary classes (int, Path, Iterator[int], list[str])
    # are none of the special forms below: decided here, so that a pipeline annotated only
    # with them never imports typing_inspect (which imports typing_extensions).
    if origin is None and isinstance(tp, type) and tp is not tuple and tp is not type:
        return TypeInfo(Kind.CLASS, tp, ())
    if isinstance(origin, type) and origin not in _SPECIAL_ORIGINS:
        return TypeInfo(Kind.CLASS, origin, typing.get_args(tp))
    import typing_inspect

    if typing_inspect.is_union_type(tp):
        return TypeInfo(Kind.UNION, args=typing.get_args(tp))
    if typing_inspect.is_literal_type(tp):
        return TypeInfo(Kind.LITERAL, args=typing.get_args(tp))
    if typing_inspect.is_new_type(tp):
        return TypeInfo(Kind.NEWTYPE, origin=tp, args=(getattr(tp, "__supertype__", Any),))
    if typing_inspect.is_typevar(tp):
        return TypeInfo(Kind.TYPEVAR, origin=tp)
    if tp is tuple or origin is tuple:
        args = typing.get_args(tp)
        if tp is tuple or (len(args) == 0 and origin is tuple and tp is tuple):
            return TypeInfo(Kind.TUPLE, tuple, (Any,), variadic=True)
        if len(args) == 2 and args[1] is Ellipsis:
            return TypeInfo(Kind.TUPLE, tuple, (args[0],), variadic=True)
        if args == ((),):  # typing.Tuple[()]
            args = ()
        return TypeInfo(Kind.TUPLE, tuple, args)
    if typing_inspect.is_callable_type(tp) and origin is not None:
        return TypeInfo(Kind.CALLABLE, origin, typing.get_args(tp))
    if origin is type:
        args = typing.get_args(tp)
        return TypeInfo(Kind.TYPE, type, args or (Any,))
    if isinstance(origin, type):
        return TypeInfo(Kind.CLASS, origin, typing.get_args(tp))
    if tp is type:
        return TypeInfo(Kind.TYPE, type, (Any,))
    if isinstance(tp, type):
        return TypeInfo(Kind.CLASS, tp, ())
    return TypeInfo(Kind.UNKNOWN)
