"""A structural subtype relation on annotations, as mypy sees them, and type-variable binding.

``is_subtype(sub, sup)`` answers "may a value of type ``sub`` be used where ``sup`` is
expected?". It follows mypy wherever it can decide, and accepts where it cannot (forward
references, Protocols that are not runtime-checkable, Callable parameter lists, TypeVars left
unbound), so that nothing mypy accepts is rejected at build time.

Rules: ``Any`` fits everything both ways and everything fits ``object``; numbers promote
(``bool < int < float < complex``, and ``bytearray``/``memoryview`` to ``bytes``); a union fits
if every member fits, and something fits a union if it fits a member; a ``Literal`` fits its
values' types and a ``Literal`` with more values; a ``NewType`` fits its supertype, never the
other way; ``Annotated`` is stripped; generic classes compare their arguments by the variance
of the type parameters (covariant ``Iterable``, ``Sequence``, ``tuple``, ``frozenset``, the
values of ``Mapping``...; invariant ``list``, ``dict``, ``set``...; a user ``Generic`` reads its
TypeVars' variance), after projecting the subtype's arguments onto the supertype's parameters
(``dict[K, V]`` is an ``Iterable[K]``, ``tuple[A, B]`` a ``Sequence[A | B]``, a user class
through its ``__orig_bases__``); runtime-checkable Protocols are checked with ``issubclass``.
"""

from __future__ import annotations

import collections
import collections.abc as abc
import enum
import typing
from typing import Any

from ._introspect import Kind, TypeInfo, classify

__all__ = [
    "NOT_ITERABLE",
    "BindError",
    "bind",
    "describe",
    "is_subtype",
    "item_type",
    "substitute",
]


class _Variance(enum.Enum):
    CO = "covariant"
    CONTRA = "contravariant"
    IN = "invariant"


_CO, _CONTRA, _IN = _Variance.CO, _Variance.CONTRA, _Variance.IN

# The type parameters of the standard generic classes, by variance.
_PARAMS: dict[type, tuple[_Variance, ...]] = {
    **dict.fromkeys(
        [
            abc.Iterable, abc.Iterator, abc.Reversible, abc.Collection, abc.Container,
            abc.Sequence, abc.Set, frozenset, abc.KeysView, abc.ValuesView, abc.Awaitable,
            abc.AsyncIterable, abc.AsyncIterator, type,
        ],
        (_CO,),
    ),
    **dict.fromkeys(
        [list, set, collections.deque, abc.MutableSequence, abc.MutableSet, collections.Counter],
        (_IN,),
    ),
    abc.Mapping: (_IN, _CO),
    abc.ItemsView: (_CO, _CO),
    **dict.fromkeys(
        [dict, abc.MutableMapping, collections.defaultdict, collections.OrderedDict],
        (_IN, _IN),
    ),
    abc.Generator: (_CO, _CONTRA, _CO),
    abc.AsyncGenerator: (_CO, _CONTRA),
    abc.Coroutine: (_CO, _CONTRA, _CO),
}  # fmt: skip

_MAPPINGS = (abc.Mapping, collections.Counter)
# mypy's promotions (bool gets them through int, its base class).
_PROMOTIONS: dict[type, tuple[type, ...]] = {
    int: (float, complex),
    float: (complex,),
    bytearray: (bytes,),
    memoryview: (bytes,),
}


def _params_of(cls: type) -> tuple[_Variance, ...] | None:
    """The variance of each type parameter of ``cls``, or None if it takes none we know."""
    if cls in _PARAMS:
        return _PARAMS[cls]
    parameters = getattr(cls, "__parameters__", ())
    if not parameters:
        return None
    return tuple(
        _CO if getattr(p, "__covariant__", False)
        else _CONTRA if getattr(p, "__contravariant__", False)
        else _IN
        for p in parameters
    )  # fmt: skip


def _fill(args: tuple[Any, ...], count: int) -> tuple[Any, ...]:
    return args if len(args) == count else (Any,) * count


def _project(info: TypeInfo, target: type) -> tuple[Any, ...] | None:
    """The arguments ``info`` (a subclass of ``target``) gives ``target``'s type parameters.

    None when it cannot be worked out, which the caller takes as "accept".
    """
    params = _params_of(target)
    if params is None:
        return ()
    count = len(params)
    origin: type = info.origin
    if info.kind is Kind.TUPLE:
        if info.variadic:
            return _fill(info.args, count)
        element = typing.Union[info.args] if info.args else typing.NoReturn  # noqa: UP007
        return (element,) * count if count == 1 else None
    if origin is target:
        return _fill(info.args, count)
    if origin is str and count == 1:
        return (str,)
    if origin in (bytes, bytearray, memoryview) and count == 1:
        return (int,)
    if origin is range and count == 1:
        return (int,)
    if origin in _PARAMS or issubclass(origin, _MAPPINGS):
        own = _fill(info.args, len(_PARAMS.get(info.origin, (_IN, _IN))))
        if issubclass(origin, abc.Coroutine):
            return None  # an Awaitable of its third argument: not worth the special case
        if issubclass(origin, (abc.Generator, abc.AsyncGenerator)):
            return own[:1] if count == 1 else None  # what it yields is what it iterates
        if issubclass(origin, collections.Counter):
            own = (own[0], int)
        if issubclass(origin, _MAPPINGS):
            if issubclass(target, _MAPPINGS):
                return own[:count]
            return own[:1] if count == 1 else None  # iterating a mapping gives its keys
        return own[:count] if len(own) >= count else None
    return _project_user(origin, info.args, target)


def _project_user(origin: Any, args: tuple[Any, ...], target: type) -> tuple[Any, ...] | None:
    """Project through a user class's ``__orig_bases__``, substituting its TypeVars."""
    parameters = getattr(origin, "__parameters__", ())
    binding = dict(zip(parameters, _fill(args, len(parameters)), strict=True))
    for base in getattr(origin, "__orig_bases__", ()):
        base_info = classify(base)
        base_origin = base_info.origin
        if base_info.kind not in (Kind.CLASS, Kind.TUPLE) or not isinstance(base_origin, type):
            continue
        if base_origin is typing.Generic or not _issubclass(base_origin, target):
            continue
        base_args = tuple(substitute(a, binding) for a in base_info.args)
        return _project(TypeInfo(base_info.kind, base_origin, base_args, base_info.variadic),
                        target)  # fmt: skip
    return None


def _issubclass(sub: type, sup: type) -> bool:
    if any(sup in _PROMOTIONS.get(k, ()) for k in getattr(sub, "__mro__", ())):
        return True
    if getattr(sup, "_is_protocol", False):
        if not getattr(sup, "_is_runtime_protocol", False):
            return True  # a plain Protocol: cannot decide, accept
        try:
            return issubclass(sub, sup)
        except TypeError:  # a protocol with data members: cannot decide, accept
            return True
    try:
        return issubclass(sub, sup)
    except TypeError:
        return True


def _equivalent(a: object, b: object) -> bool:
    return is_subtype(a, b) and is_subtype(b, a)


def _args_fit(sub_args: tuple[Any, ...], sup_args: tuple[Any, ...],
              variances: tuple[_Variance, ...]) -> bool:  # fmt: skip
    for a, b, variance in zip(sub_args, sup_args, variances, strict=False):
        if variance is _CO and not is_subtype(a, b):
            return False
        if variance is _CONTRA and not is_subtype(b, a):
            return False
        if variance is _IN and not _equivalent(a, b):
            return False
    return True


def is_subtype(sub: object, sup: object) -> bool:
    """Whether a value of type ``sub`` may be used where ``sup`` is expected."""
    s, t = classify(sub), classify(sup)
    if Kind.ANY in (s.kind, t.kind) or Kind.UNKNOWN in (s.kind, t.kind):
        return True
    if t.kind is Kind.CLASS and t.origin is object:
        return True
    if s.kind is Kind.UNION:
        return all(is_subtype(member, sup) for member in s.args)
    if t.kind is Kind.UNION:
        return any(is_subtype(sub, member) for member in t.args)
    if Kind.TYPEVAR in (s.kind, t.kind):
        return True  # unbound: binding is done elsewhere; cannot decide here
    if s.kind is Kind.NEWTYPE:
        return s.origin is t.origin or is_subtype(s.args[0], sup)
    if t.kind is Kind.NEWTYPE:
        return False
    if s.kind is Kind.LITERAL:
        values: tuple[object, ...] = s.args
        if t.kind is Kind.LITERAL:
            allowed: set[tuple[type, object]] = {(type(v), v) for v in t.args}
            return all((type(v), v) in allowed for v in values)
        return all(is_subtype(type(v), sup) for v in values)
    if t.kind is Kind.LITERAL:
        return False
    if t.kind is Kind.CALLABLE:
        return s.kind is Kind.CALLABLE or (
            s.kind in (Kind.CLASS, Kind.TYPE)
            and (s.kind is Kind.TYPE or any("__call__" in vars(k) for k in s.origin.__mro__))
        )
    if s.kind is Kind.CALLABLE:
        return t.kind is Kind.CLASS and _issubclass(abc.Callable, t.origin)  # type: ignore[arg-type]
    if t.kind is Kind.TYPE:
        return s.kind is Kind.TYPE and is_subtype(s.args[0], t.args[0])
    if s.kind is Kind.TYPE:
        return t.kind is Kind.CLASS and _issubclass(type, t.origin)
    if t.kind is Kind.NONE:
        return s.kind is Kind.NONE
    if t.kind is Kind.TUPLE:
        return _tuple_fits(s, t)
    # Both are classes (a tuple or None on the left counts as its class).
    if not _issubclass(s.origin, t.origin):
        return False
    if not t.args:
        return True
    projected = _project(s, t.origin)
    if projected is None or not projected:
        return True
    variances = _params_of(t.origin) or ()
    return _args_fit(projected, _fill(t.args, len(variances)), variances)


def _tuple_fits(s: TypeInfo, t: TypeInfo) -> bool:
    if s.kind is not Kind.TUPLE:
        # A NamedTuple or tuple subclass fits (its fields are not compared); nothing else does.
        return s.kind is Kind.CLASS and isinstance(s.origin, type) and issubclass(s.origin, tuple)
    if t.variadic:
        return all(is_subtype(a, t.args[0]) for a in s.args)
    if s.variadic:
        return False
    return len(s.args) == len(t.args) and all(map(is_subtype, s.args, t.args))


NOT_ITERABLE = object()
"""What :func:`item_type` gives for a type that is not iterable."""


def item_type(iterable: object) -> object:
    """The item type of an iterable type (``Iterator[int]`` gives ``int``).

    Returns:
        The item type; ``Any`` if unknown; :data:`NOT_ITERABLE` if it is not iterable.
    """
    info = classify(iterable)
    if info.kind in (Kind.ANY, Kind.UNKNOWN, Kind.TYPEVAR):
        return Any
    if info.kind is Kind.UNION:
        items = [item_type(member) for member in info.args]
        if any(item is NOT_ITERABLE for item in items):
            return NOT_ITERABLE
        return typing.Union[tuple(items)]  # noqa: UP007
    if info.kind is Kind.TUPLE:
        return _project(info, abc.Iterable)[0]  # type: ignore[index]
    if info.kind is Kind.NEWTYPE:
        return item_type(info.args[0])
    if info.kind is not Kind.CLASS or not _issubclass(info.origin, abc.Iterable):
        return NOT_ITERABLE
    if getattr(info.origin, "_is_protocol", False) and info.origin is not abc.Iterable:
        return Any
    projected = _project(info, abc.Iterable)
    if projected:
        return projected[0]
    iter_method: object = getattr(info.origin, "__iter__", None)
    try:  # a class of its own: what does its __iter__ say?
        returns = typing.get_type_hints(iter_method).get("return", Any)
    except Exception:  # unannotated, or not resolvable: nothing is known
        return Any
    return Any if returns is Any else item_type(returns)


def substitute(tp: object, binding: typing.Mapping[Any, object]) -> object:
    """``tp`` with its TypeVars replaced by what ``binding`` says (unbound ones stay)."""
    if not binding:
        return tp
    if classify(tp).kind is Kind.TYPEVAR:
        return binding.get(tp, tp)
    parameters = getattr(tp, "__parameters__", ())
    if not parameters:
        return tp
    try:
        return tp[tuple(binding.get(p, p) for p in parameters)]  # type: ignore[index]
    except TypeError:
        return tp


class BindError(Exception):
    """A TypeVar's bound or constraints do not admit the type it would be bound to."""

    def __init__(self, var: object, found: object, expected: object) -> None:
        super().__init__(var, found, expected)
        self.var = var
        self.found = found
        self.expected = expected


def bind(param: object, actual: object, binding: dict[Any, object]) -> None:
    """Bind the TypeVars in ``param`` so that ``actual`` fits it (mutates ``binding``).

    Raises:
        BindError: the type ``actual`` gives a TypeVar breaks its bound or constraints.
    """
    p, a = classify(param), classify(actual)
    if p.kind is Kind.TYPEVAR:
        _bind_var(p.origin, actual, binding)
    elif p.kind is Kind.UNION and a.kind is not Kind.UNION:
        free = [m for m in p.args if classify(m).kind is Kind.TYPEVAR]
        fixed = [m for m in p.args if classify(m).kind is not Kind.TYPEVAR]
        if len(free) == 1 and not any(is_subtype(actual, m) for m in fixed):
            _bind_var(free[0], actual, binding)
    elif p.kind in (Kind.CLASS, Kind.TUPLE) and p.args and a.kind in (Kind.CLASS, Kind.TUPLE):
        if not isinstance(p.origin, type) or not _issubclass(a.origin, p.origin):
            return
        projected = _project(a, p.origin) if p.kind is Kind.CLASS else (
            a.args if a.kind is Kind.TUPLE and not a.variadic and not p.variadic else
            _project(a, abc.Iterable) if p.variadic else None
        )  # fmt: skip
        if projected:
            for sub_param, sub_actual in zip(p.args, projected, strict=False):
                bind(sub_param, sub_actual, binding)


def _bind_var(var: Any, actual: object, binding: dict[Any, object]) -> None:
    constraints = getattr(var, "__constraints__", ())
    bound = getattr(var, "__bound__", None)
    if constraints:
        for constraint in constraints:
            if is_subtype(actual, constraint):
                actual = constraint  # as mypy does: the variable takes the constraint
                break
        else:
            raise BindError(var, actual, typing.Union[constraints])  # noqa: UP007
    elif bound is not None and not is_subtype(actual, bound):
        raise BindError(var, actual, bound)
    previous = binding.get(var)
    if previous is None or is_subtype(previous, actual):
        binding[var] = actual
    elif not is_subtype(actual, previous):
        binding[var] = typing.Union[previous, actual]  # noqa: UP007


def describe(tp: object) -> str:
    """A short, readable name for a type: ``list[str]``, ``Iterator[int]``, ``int | None``."""
    info = classify(tp)
    if tp is Any or tp is typing.Any:
        return "Any"
    if info.kind is Kind.NONE:
        return "None"
    if info.kind is Kind.UNION:
        return " | ".join(describe(member) for member in info.args)
    if info.kind is Kind.LITERAL:
        return f"Literal[{', '.join(map(repr, info.args))}]"
    if info.kind in (Kind.NEWTYPE, Kind.TYPEVAR):
        return str(getattr(tp, "__name__", tp))
    if info.kind is Kind.TUPLE:
        if info.variadic:
            return f"tuple[{describe(info.args[0])}, ...]"
        return f"tuple[{', '.join(map(describe, info.args)) or '()'}]"
    if info.kind is Kind.CALLABLE and len(info.args) == 2:
        params, result = info.args
        shown = "..." if params is Ellipsis else f"[{', '.join(map(describe, params))}]"
        return f"Callable[{shown}, {describe(result)}]"
    if info.kind in (Kind.CLASS, Kind.TYPE, Kind.CALLABLE) and isinstance(info.origin, type):
        name = info.origin.__qualname__
        if info.args:
            return f"{name}[{', '.join(map(describe, info.args))}]"
        return name
    if isinstance(tp, str):
        return tp
    return repr(tp).replace("typing.", "")
