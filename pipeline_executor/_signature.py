"""The parameters of a stage function, read without ``inspect`` where that is provably the same.

Importing ``inspect`` costs several milliseconds at start-up (it pulls in ``ast``, ``dis``
and ``tokenize``), more than the whole build of a small pipeline. :func:`parameters` reads

* a plain Python function (no attributes of its own: no ``__wrapped__``, ``__signature__``
  or partial-method marker, which ``inspect`` would follow) from its code object and
  defaults, exactly as ``inspect`` does (``_signature_from_function``);
* a module-level builtin such as ``sum`` from its ``__text_signature__``, when that is
  simple (names, ``/``, ``*``, ``*args``, ``**kwargs``, and defaults that are ``None``,
  ``True``, ``False``, an ``int`` or a plain ``'string'``), as ``inspect`` reads it;

and hands everything else (partials, methods, classes, callable objects, decorated
functions, builtins with another signature) to ``inspect.signature``. :func:`bind_partial`
is ``inspect.Signature.bind_partial``'s algorithm over these parameters.
``tests/test_signature.py`` checks both paths against ``inspect`` on a wide set of functions.
"""

from __future__ import annotations

import enum
import keyword
import types
from collections.abc import Callable, Mapping
from typing import Any

from ._record import Record

__all__ = [
    "MISSING",
    "Param",
    "ParamKind",
    "bind_partial",
    "is_async",
    "is_generator_function",
    "parameters",
]


class _Missing:
    """The type of :data:`MISSING`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""Stands for a default, or an annotation, that is not there."""


class ParamKind(enum.IntEnum):
    """How a parameter takes its argument (the values of ``inspect.Parameter``'s kinds)."""

    POSITIONAL_ONLY = 0
    POSITIONAL_OR_KEYWORD = 1
    VAR_POSITIONAL = 2
    KEYWORD_ONLY = 3
    VAR_KEYWORD = 4


class Param(Record):
    """One parameter: its name, its kind and its default (:data:`MISSING` if none)."""

    name: str
    kind: ParamKind
    default: object = MISSING


_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08
_CO_GENERATOR = 0x20
_CO_COROUTINE = 0x80
_CO_ASYNC_GENERATOR = 0x200


def _plain(fn: object) -> types.FunctionType | None:
    """``fn`` if it is a plain Python function that ``inspect`` reads from its code alone."""
    if type(fn) is types.FunctionType and not fn.__dict__:
        return fn
    return None


def parameters(fn: Callable[..., object]) -> tuple[Param, ...] | None:
    """The parameters of ``fn`` as ``inspect.signature`` gives them; ``None`` where it has
    none (some builtins)."""
    plain = _plain(fn)
    if plain is not None:
        found = _from_code(plain)
        if found is not None:
            return found
    elif type(fn) is types.BuiltinFunctionType and isinstance(
        getattr(fn, "__self__", None), types.ModuleType
    ):
        text: str | None = getattr(fn, "__text_signature__", None)
        if not text:  # inspect: "no signature found for builtin"
            return None
        found = _from_text(text)
        if found is not None:
            return found
    return _from_inspect(fn)


def _from_code(fn: types.FunctionType) -> tuple[Param, ...] | None:
    """As ``inspect._signature_from_function``: positional parameters (the first
    ``co_posonlyargcount`` positional-only), ``*args``, keyword-only ones, ``**kwargs``."""
    code = fn.__code__
    names = code.co_varnames
    n_positional, n_keyword = code.co_argcount, code.co_kwonlyargcount
    defaults = fn.__defaults__ or ()
    if len(defaults) > n_positional:  # assigned by hand: left to inspect's own reading
        return None
    kwdefaults = fn.__kwdefaults__ or {}
    first_default = n_positional - len(defaults)
    params: list[Param] = []
    for i, name in enumerate(names[:n_positional]):
        kind = (
            ParamKind.POSITIONAL_ONLY
            if i < code.co_posonlyargcount
            else ParamKind.POSITIONAL_OR_KEYWORD
        )
        params.append(
            Param(name, kind, defaults[i - first_default] if i >= first_default else MISSING)
        )
    index = n_positional + n_keyword  # where co_varnames has *args, then **kwargs
    if code.co_flags & _CO_VARARGS:
        params.append(Param(names[index], ParamKind.VAR_POSITIONAL))
        index += 1
    params.extend(
        Param(name, ParamKind.KEYWORD_ONLY, kwdefaults.get(name, MISSING))
        for name in names[n_positional : n_positional + n_keyword]
    )
    if code.co_flags & _CO_VARKEYWORDS:
        params.append(Param(names[index], ParamKind.VAR_KEYWORD))
    return tuple(params)


_LITERALS: dict[str, object] = {"None": None, "True": True, "False": False}


def _literal(text: str) -> tuple[bool, object]:
    """A default of a text signature, if it is one of the simple literals read here."""
    if text in _LITERALS:
        return True, _LITERALS[text]
    digits = text.removeprefix("-")
    if digits.isascii() and digits.isdigit() and (digits == "0" or digits[0] != "0"):
        return True, int(text)
    body = text[1:-1]
    if len(text) >= 2 and text[0] == text[-1] == "'" and not set("'\"\\") & set(body):
        return True, body
    return False, None


def _from_text(text: str) -> tuple[Param, ...] | None:
    """A module-level builtin's ``__text_signature__``, e.g. ``($module, iterable, /,
    start=0)``, read when it is simple; ``None`` hands it to ``inspect``."""
    if not (text.startswith("($") and text.endswith(")")):
        return None
    tokens = [token.strip() for token in text[1:-1].split(",")]
    if not tokens[0][1:].isidentifier():
        return None
    tokens = tokens[1:]  # "$module": the module it is bound to, which inspect drops
    state = ParamKind.POSITIONAL_ONLY if "/" in tokens else ParamKind.POSITIONAL_OR_KEYWORD
    params: list[Param] = []
    bare_star = defaulted = False
    for token in tokens:
        if params and params[-1].kind is ParamKind.VAR_KEYWORD:
            return None  # anything after **kwargs
        if token == "/":
            if state is not ParamKind.POSITIONAL_ONLY:
                return None
            state = ParamKind.POSITIONAL_OR_KEYWORD
            continue
        default: str | None = None
        if token.startswith("**"):
            name, kind = token[2:], ParamKind.VAR_KEYWORD
        elif token.startswith("*"):
            if state in (ParamKind.POSITIONAL_ONLY, ParamKind.KEYWORD_ONLY):
                return None
            state = ParamKind.KEYWORD_ONLY
            if token == "*":
                bare_star = True
                continue
            name, kind = token[1:], ParamKind.VAR_POSITIONAL
        else:
            name, equals, text_default = token.partition("=")
            kind, default = state, (text_default if equals else None)
            bare_star = bare_star and kind is not ParamKind.KEYWORD_ONLY
        if not name.isidentifier() or keyword.iskeyword(name):
            return None
        if kind is ParamKind.VAR_KEYWORD and state is ParamKind.POSITIONAL_ONLY:
            return None
        value: object = MISSING
        if default is not None:
            known, value = _literal(default)
            if not known:
                return None
            defaulted = defaulted or kind is not ParamKind.KEYWORD_ONLY
        elif defaulted and kind in (ParamKind.POSITIONAL_ONLY, ParamKind.POSITIONAL_OR_KEYWORD):
            return None  # a positional parameter without a default after one with
        params.append(Param(name, kind, value))
    if bare_star or len({p.name for p in params}) != len(params):
        return None
    return tuple(params)


def _from_inspect(fn: Callable[..., object]) -> tuple[Param, ...] | None:
    import inspect  # only for what the readers above do not read

    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none: nothing to check
        return None
    empty = inspect.Parameter.empty
    return tuple(
        Param(p.name, ParamKind(int(p.kind)), MISSING if p.default is empty else p.default)
        for p in signature.parameters.values()
    )


def bind_partial(
    params: tuple[Param, ...], args: tuple[object, ...], kwargs: Mapping[str, object]
) -> dict[str, object] | None:
    """Which parameter each argument goes to, as ``inspect.Signature(params)
    .bind_partial(*args, **kwargs).arguments``: a ``*args`` parameter gets a tuple, a
    ``**kwargs`` one a dict. ``None`` when a keyword is named like a positional-only
    parameter: Python 3.13 binds it to ``**kwargs`` where earlier versions refuse it, so
    that case is left to ``inspect``.

    Raises:
        TypeError: the arguments do not fit (where ``bind_partial`` raises).
    """
    if any(p.kind is ParamKind.POSITIONAL_ONLY and p.name in kwargs for p in params):
        return None
    arguments: dict[str, object] = {}
    values = list(args)
    remaining = list(params)
    while values:  # positional arguments, in order
        if not remaining:
            raise TypeError("too many positional arguments")
        param = remaining.pop(0)
        if param.kind in (ParamKind.VAR_KEYWORD, ParamKind.KEYWORD_ONLY):
            raise TypeError("too many positional arguments")
        if param.kind is ParamKind.VAR_POSITIONAL:
            arguments[param.name] = tuple(values)
            break
        if param.name in kwargs:
            raise TypeError(f"multiple values for argument {param.name!r}")
        arguments[param.name] = values.pop(0)
    left = dict(kwargs)  # then keywords, in the parameters' order; the rest to **kwargs
    var_keyword: Param | None = None
    for param in remaining:
        if param.kind is ParamKind.VAR_KEYWORD:
            var_keyword = param
        elif param.kind is not ParamKind.VAR_POSITIONAL and param.name in left:
            arguments[param.name] = left.pop(param.name)
    if left:
        if var_keyword is None:
            raise TypeError(f"got an unexpected keyword argument {next(iter(left))!r}")
        arguments[var_keyword.name] = left
    return arguments


def is_generator_function(fn: object) -> bool | None:
    """Whether calling ``fn`` only creates a generator, for a plain function or a builtin
    (``inspect.isgeneratorfunction``'s answer); ``None``: ask ``inspect``."""
    plain = _plain(fn)
    if plain is not None:
        return bool(plain.__code__.co_flags & _CO_GENERATOR)
    if type(fn) is types.BuiltinFunctionType:
        return False
    return None


def is_async(fn: object) -> bool | None:
    """Whether ``fn`` is an ``async def`` function or async generator, for a plain function
    or a builtin; ``None``: ask ``inspect``."""
    plain = _plain(fn)
    if plain is not None:
        return bool(plain.__code__.co_flags & (_CO_COROUTINE | _CO_ASYNC_GENERATOR))
    if type(fn) is types.BuiltinFunctionType:
        return False
    return None
