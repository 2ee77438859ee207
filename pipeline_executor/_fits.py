"""Whether a constant fits its annotation, cheaply: ``isinstance`` where that is exact,
typeguard otherwise, and typeguard on a sample of a large collection.

Plain classes, ``None``, ``Any`` and unions of them (``int``, ``str | None``,
``Optional[Path]``) are checked with ``isinstance``, with typeguard's promotions (an ``int`` is
a ``float`` and a ``complex``; ``bytearray`` and ``memoryview`` are ``bytes``), so building a
pipeline whose constants are annotated that way never imports typeguard, which costs tens of
milliseconds (it imports asyncio). Anything else (generics, protocols, ``TypedDict``,
``Literal``, ``NewType``...) goes to ``typeguard.check_type``, and so does a value that fails
the ``isinstance`` check, so that a mismatch is explained in typeguard's words. typeguard
checks every element of a constant holding at most :data:`SAMPLE_ABOVE` elements (the
``len()`` of the constant and of every list, tuple, set or dict inside it, added up), and
above that the first element of each collection (``CollectionCheckStrategy.FIRST_ITEM``), so
a 10-million-item list costs what a short one does.
"""

from __future__ import annotations

import collections.abc as abc
from typing import Any

from ._introspect import Kind, classify

__all__ = ["SAMPLE_ABOVE", "mismatch"]

SAMPLE_ABOVE = 1000
"""Constants holding more elements than this are checked by sample."""

_PROMOTIONS: dict[type, tuple[type, ...]] = {
    float: (float, int),
    complex: (complex, float, int),
    bytes: (bytes, bytearray, memoryview),
}
_WALKED = (list, tuple, set, frozenset, dict)


def mismatch(value: object, annotation: object) -> Exception | None:
    """Why ``value`` does not fit ``annotation`` (typeguard's ``TypeCheckError``), or None.

    An annotation typeguard cannot check is accepted, as mypy's verdict on the code stands.
    """
    classes = _plain(annotation)
    if classes is not None and (not classes or isinstance(value, classes)):
        return None
    from typeguard import CollectionCheckStrategy, TypeCheckError, check_type

    strategy = (
        CollectionCheckStrategy.ALL_ITEMS
        if _elements_within(value, SAMPLE_ABOVE)
        else CollectionCheckStrategy.FIRST_ITEM
    )
    try:
        check_type(value, annotation, collection_check_strategy=strategy)
    except TypeCheckError as exc:
        return exc
    except Exception:  # an annotation typeguard cannot check: accept, as mypy's verdict stands
        return None
    return None


def _plain(annotation: object) -> tuple[type, ...] | None:
    """The classes ``isinstance`` decides ``annotation`` by (``()``: anything fits), or None
    when it is not that simple."""
    info = classify(annotation)
    if info.kind is Kind.ANY or annotation is object:
        return ()
    if info.kind is Kind.NONE:
        return (type(None),)
    if info.kind is Kind.CLASS and not info.args and _isinstance_is_exact(info.origin):
        cls: type = info.origin
        return _PROMOTIONS.get(cls, (cls,))
    if info.kind is Kind.UNION:
        members: list[type] = []
        for arg in info.args:
            classes = _plain(arg)
            if classes is None:
                return None
            if not classes:
                return ()
            members.extend(classes)
        return tuple(members)
    return None


def _isinstance_is_exact(cls: type) -> bool:
    """Protocols are checked structurally and TypedDicts refuse isinstance: not plain."""
    if getattr(cls, "_is_protocol", False):
        return False
    return not hasattr(cls, "__required_keys__") or not issubclass(cls, dict)


def _elements_within(value: object, budget: int) -> bool:
    """Whether the ``len()`` of ``value`` and of the lists, tuples, sets and dicts (keys and
    values) inside it add up to at most ``budget``; it stops once past ``budget``, so it costs
    at most that many steps."""
    pending: list[object] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, (str, bytes, bytearray)) or not isinstance(item, abc.Sized):
            continue
        try:
            budget -= len(item)
        except Exception:  # a broken __len__: count it as large, typeguard will sample it
            return False
        if budget < 0:
            return False
        if isinstance(item, dict):
            mapping: dict[Any, Any] = item  # pyright: ignore[reportUnknownVariableType]
            pending.extend(mapping.keys())
            pending.extend(mapping.values())
        elif isinstance(item, _WALKED):
            pending.extend(item)  # pyright: ignore[reportUnknownArgumentType]
    return True
