"""The parameters read without ``inspect`` are exactly ``inspect``'s, on both paths: plain
functions and simple builtins read directly, everything else through ``inspect.signature``."""

from __future__ import annotations

import builtins
import functools
import inspect
import itertools
import math
import operator
import os
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline_executor import _signature
from pipeline_executor._introspect import arguments, is_async, is_generator_function
from pipeline_executor._signature import MISSING, Param, ParamKind, bind_partial, parameters


def by_inspect(fn: Callable[..., object]) -> tuple[Param, ...] | None:
    """The reference: ``inspect.signature``, as (name, kind, default)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return tuple(
        Param(p.name, ParamKind(int(p.kind)), MISSING if p.default is p.empty else p.default)
        for p in signature.parameters.values()
    )


def same(found: tuple[Param, ...] | None, expected: tuple[Param, ...] | None) -> bool:
    """Equal names and kinds, and defaults of the same type and value (``True`` is not 1)."""
    if found is None or expected is None:
        return found is expected
    return len(found) == len(expected) and all(
        f.name == e.name
        and f.kind is e.kind
        and (
            f.default is e.default
            or (type(f.default) is type(e.default) and f.default == e.default)
        )
        for f, e in zip(found, expected, strict=True)
    )


def no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the ``inspect`` path fail, to show that a reader did not take it."""

    def refuse(fn: Callable[..., object]) -> None:
        raise AssertionError(f"fell back to inspect for {fn!r}")

    monkeypatch.setattr(_signature, "_from_inspect", refuse)


# -- plain functions ---------------------------------------------------------------------


def f_empty() -> None: ...
def f_plain(a: object, b: object, c: object) -> None: ...
def f_defaults(a: int, b: str = "x", c: object = None) -> None: ...
def f_posonly(a: object, b: int = 2, /, c: int = 3) -> None: ...
def f_posonly_all(a: object, b: object, /) -> None: ...
def f_kwonly(a: object, *, b: object, c: int = 1) -> None: ...
def f_var(*args: int, **kwargs: str) -> None: ...
def f_all(
    a: object, b: int = 1, /, c: int = 2, *args: object, d: object, e: int = 3, **kwargs: object
) -> None: ...
def f_star_kw(a: object, *, b: object = None, **kw: object) -> None: ...
def f_gen(items: Iterator[int], k: int = 0) -> Iterator[int]:
    yield from items


async def f_async(a: int) -> int:
    return a


async def f_async_gen(a: int) -> Any:
    yield a


def f_locals(a: int, b: int) -> int:
    x = a + b  # local variables follow the parameters in co_varnames
    y = x * 2
    return x + y


def make_closure() -> Callable[..., object]:
    n = 3

    def inner(a: int, *rest: int, k: int = n) -> int:
        return a + n + k + sum(rest)

    return inner


def with_attribute(a: int) -> int:
    return a


with_attribute.calls = 0  # type: ignore[attr-defined]


@functools.wraps(f_defaults)
def wrapped(*args: Any, **kwargs: Any) -> None:
    return f_defaults(*args, **kwargs)


def with_signature(a: int) -> int:
    return a


with_signature.__signature__ = inspect.signature(f_kwonly)  # type: ignore[attr-defined]


def reassigned(a: object, b: object) -> None: ...


reassigned.__defaults__ = (1, 2, 3)


class Callable_:
    def __call__(self, items: Iterator[int], k: int = 1) -> None: ...

    def method(self, a: int, /, b: int = 2) -> None: ...

    @staticmethod
    def static(a: int) -> None: ...

    @classmethod
    def klass(cls, a: int) -> None: ...


class WithInit:
    def __init__(self, items: Iterator[int], *, size: int) -> None: ...


PLAIN: list[Callable[..., object]] = [
    f_empty,
    f_plain,
    f_defaults,
    f_posonly,
    f_posonly_all,
    f_kwonly,
    f_var,
    f_all,
    f_star_kw,
    f_gen,
    f_async,
    f_async_gen,
    f_locals,
    make_closure(),
    lambda: None,
    Callable_.static,
]

OTHERS: list[Callable[..., object]] = [
    with_attribute,
    wrapped,
    with_signature,
    reassigned,
    functools.partial(f_defaults, 1),
    functools.partial(f_all, 1, d=4),
    functools.partial(functools.partial(f_kwonly, b=1), 2),
    Callable_(),
    Callable_().method,
    Callable_.klass,
    Callable_.method,
    WithInit,
    int,
    dict,
    list[int]().append,
    "".join,
    str.join,
    object.__init__,
]


@pytest.mark.parametrize("fn", PLAIN + OTHERS, ids=repr)
def test_parameters_are_inspects(fn: Callable[..., object]) -> None:
    """Every kind of callable: the same parameters as inspect.signature."""
    assert same(parameters(fn), by_inspect(fn))


@pytest.mark.parametrize("fn", PLAIN, ids=repr)
def test_a_plain_function_is_read_without_inspect(
    fn: Callable[..., object], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain function's parameters come from its code object, never through inspect."""
    no_fallback(monkeypatch)
    assert same(parameters(fn), by_inspect(fn))


@pytest.mark.parametrize("fn", PLAIN + OTHERS, ids=repr)
def test_generator_and_async_answers_are_inspects(fn: Callable[..., object]) -> None:
    """is_generator_function and is_async answer as the inspect-only versions did."""
    assert is_generator_function(fn) is (
        inspect.isgeneratorfunction(fn)
        or (
            not (
                inspect.isfunction(fn) or inspect.ismethod(fn) or isinstance(fn, functools.partial)
            )
            and inspect.isgeneratorfunction(type(fn).__call__)
        )
    )
    if isinstance(fn, types.FunctionType):
        assert is_async(fn) is (inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn))


# -- generated functions -----------------------------------------------------------------

NAMES = st.lists(st.sampled_from("abcdefgh"), unique=True, max_size=8)


@st.composite
def definitions(draw: st.DrawFn) -> str:
    """The source of a random ``def``: positional-only, ordinary, ``*args``, keyword-only
    and ``**kwargs`` parameters, defaults where Python allows them, some annotated."""
    names = draw(NAMES)
    cut = sorted(draw(st.lists(st.integers(0, len(names)), min_size=3, max_size=3)))
    posonly, ordinary, keyword = names[: cut[0]], names[cut[0] : cut[1]], names[cut[1] : cut[2]]
    extra = names[cut[2] :]
    positional = posonly + ordinary
    n_defaults = draw(st.integers(0, len(positional)))
    parts: list[str] = []
    for i, name in enumerate(positional):
        annotation = ": int" if draw(st.booleans()) else ""
        default = f" = {i}" if i >= len(positional) - n_defaults else ""
        default = default.replace(" = ", "=") if not annotation else default
        parts.append(f"{name}{annotation}{default}")
        if posonly and i == len(posonly) - 1:
            parts.append("/")
    star = draw(st.booleans()) and "args" not in names
    if star:
        parts.append("*args")
    elif keyword:
        parts.append("*")
    defaulted = draw(st.lists(st.booleans(), min_size=len(keyword), max_size=len(keyword)))
    parts.extend(f"{n}=None" if d else n for n, d in zip(keyword, defaulted, strict=True))
    var_keyword = draw(st.booleans())
    if extra and var_keyword:
        parts.append(f"**{extra[0]}")
    return f"def f({', '.join(parts)}): pass"


def compiled(source: str) -> Callable[..., object]:
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # test-generated code
    fn: Callable[..., object] = namespace["f"]
    return fn


@given(definitions())
def test_a_generated_function_reads_as_inspect_reads_it(source: str) -> None:
    """Any mix of parameter kinds, defaults and annotations: the same as inspect."""
    fn = compiled(source)
    assert same(parameters(fn), by_inspect(fn)), source


# -- builtins ----------------------------------------------------------------------------

BUILTIN_MODULES = [builtins, math, operator, itertools, functools, os, sys, time]


def module_builtins() -> list[Callable[..., object]]:
    found: list[Callable[..., object]] = []
    for module in BUILTIN_MODULES:
        for name in sorted(vars(module)):
            value = getattr(module, name)
            if type(value) is types.BuiltinFunctionType and value.__self__ is module:
                found.append(value)
    return found


BUILTINS = module_builtins()


@pytest.mark.parametrize("fn", BUILTINS, ids=lambda fn: f"{fn.__module__}.{fn.__name__}")
def test_a_builtin_reads_as_inspect_reads_it(fn: Callable[..., object]) -> None:
    """Every module-level builtin of several modules: the same as inspect (or both none)."""
    assert same(parameters(fn), by_inspect(fn))


def test_most_builtins_are_read_without_inspect(monkeypatch: pytest.MonkeyPatch) -> None:
    """sum, sorted, and most builtins with a text signature are read from it directly."""
    texts = [getattr(fn, "__text_signature__", None) or "" for fn in BUILTINS]
    direct = [text for text in texts if _signature._from_text(text)]  # pyright: ignore[reportPrivateUsage]
    assert len(direct) > len(BUILTINS) / 2
    no_fallback(monkeypatch)
    for fn in (sum, sorted, len, abs, isinstance, round):
        assert same(parameters(fn), by_inspect(fn)), fn


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("($module, iterable, /, start=0)", True),
        ("($module, /, *args, sep=' ', file=None, flush=False)", True),
        ("($module, *, a)", True),
        ("($module, x=-1, y='', z=True, w=None)", True),
        ("($module)", True),
        ("($module, end='\\n')", False),
        ("($module, x, y=1.5, /)", False),
        ("($module, a=1, b, /)", False),
        ("($module, *, **kw)", False),
        ("($module, a, /, /)", False),
        ("($module, a, a)", False),
        ("($module, **kw, a)", False),
        ("($module, *a, *b)", False),
        ("($module, a, *, b, /)", False),
        ("($module, class)", False),
        ("($module, x=sys.maxsize)", False),
        ("($module, x=<unrepresentable>)", False),
        ("($module, x='a,b')", False),
        ("($module, v=00)", False),
        ("($module, x = 1)", False),
        ("(a, b)", False),
    ],
)
def test_a_text_signature_is_read_only_when_simple(text: str, read: bool) -> None:
    """Only a simple text signature is read directly, and then as inspect reads it."""
    found = _signature._from_text(text)  # pyright: ignore[reportPrivateUsage]
    assert (found is not None) is read
    if found is not None:
        assert same(found, from_inspect_text(text))


def from_inspect_text(text: str) -> tuple[Param, ...] | None:
    """What inspect reads from ``text`` as the signature of a module-level builtin."""
    try:
        signature = cast(
            "inspect.Signature",
            inspect._signature_fromstr(inspect.Signature, sum, text, True),  # type: ignore[attr-defined]  # pyright: ignore[reportAttributeAccessIssue, reportUnknownMemberType]
        )
    except ValueError:
        return None
    return tuple(
        Param(p.name, ParamKind(int(p.kind)), MISSING if p.default is p.empty else p.default)
        for p in signature.parameters.values()
    )


# -- binding -----------------------------------------------------------------------------


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, tuple[object, ...], dict[str, object]]:
    """A generated function and arguments for it, which may or may not fit."""
    source = draw(definitions())
    names = draw(st.lists(st.sampled_from("abcdefghz"), unique=True, max_size=5))
    n_args = draw(st.integers(0, 4))
    return source, tuple(range(n_args)), {name: name.upper() for name in names}


def inspect_binding(
    fn: Callable[..., object], args: tuple[object, ...], kwargs: dict[str, object]
) -> dict[str, object] | None:
    try:
        return dict(inspect.signature(fn).bind_partial(*args, **kwargs).arguments)
    except TypeError:
        return None


@given(calls())
def test_binding_is_inspects(call: tuple[str, tuple[object, ...], dict[str, object]]) -> None:
    """bind_partial binds as inspect's does, or leaves the call to it; it refuses alike."""
    source, args, kwargs = call
    fn = compiled(source)
    params = parameters(fn)
    assert params is not None
    expected = inspect_binding(fn, args, kwargs)
    try:
        found = bind_partial(params, args, kwargs)
    except TypeError:
        assert expected is None, source
        return
    if found is None:  # left to inspect: a keyword named like a positional-only parameter
        assert any(p.kind is ParamKind.POSITIONAL_ONLY and p.name in kwargs for p in params)
        return
    assert found == expected, source
    assert list(found) == list(expected or {}), source


@given(calls())
def test_arguments_are_what_inspect_binds(
    call: tuple[str, tuple[object, ...], dict[str, object]],
) -> None:
    """_introspect.arguments, either path: each argument goes where inspect puts it."""
    source, args, kwargs = call
    fn = compiled(source)
    params = parameters(fn)
    assert params is not None
    expected = inspect_binding(fn, args, kwargs)
    found = arguments(params, args, kwargs)
    flat: list[tuple[str, str, object]] = []
    kinds = {p.name: p.kind for p in params}
    for name, value in (expected or {}).items():
        if kinds[name] is ParamKind.VAR_POSITIONAL:
            values = cast("tuple[object, ...]", value)
            flat.extend((f"{name}[{i}]", name, v) for i, v in enumerate(values))
        elif kinds[name] is ParamKind.VAR_KEYWORD:
            keywords = cast("dict[str, object]", value)
            flat.extend((k, name, v) for k, v in keywords.items())
        else:
            flat.append((name, name, value))
    assert found == flat, source
