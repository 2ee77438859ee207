"""How many bytes an item keeps alive, estimated cheaply: never a deep walk, never pickling.

What each kind of item counts as (its function is found once per type, then cached):

* ``bytes``, ``bytearray``: ``len``; ``str``: ``sys.getsizeof`` (which includes its characters).
* ``memoryview``: the size of the object it views, since a slice keeps its whole exporter
  alive; ``array.array``: ``itemsize * len``.
* numpy arrays: ``nbytes`` of the root array a view keeps alive (``.base`` followed to its end),
  so a broadcast array counts what it was broadcast from.
* torch tensors: the bytes of their storage, which a view or an ``expand`` shares.
* PIL images: the decoded size (width x height x bands x bytes per band), even before ``load()``.
* ``list``, ``tuple``, ``set``, ``frozenset``, ``dict``: the container plus at most 8 evenly
  spaced elements (keys and values for a dict), 2 levels deep, scaled to its length.
* a type given to :func:`register_sizeof` (or a subclass): its function.
* anything else: its ``nbytes`` if that is an ``int`` (cupy, jax, xarray, ...), else
  ``sys.getsizeof``.

``array``, numpy, torch and PIL are recognised only once their module is imported:
estimating never imports them. Blind spots, by design: objects that hold buffers in
attributes (register them), buffers shared by several items (each counts them: an
over-count), and a container whose few large elements the sample misses.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    import array

__all__ = ["register_sizeof", "sizeof"]

_T = TypeVar("_T")
_Sizer = Callable[[Any], int]

SAMPLE = 8
"""Elements of a container that are looked at."""

DEPTH = 2
"""Levels of nested containers that are looked into."""

_lock = threading.Lock()  # guards _registered, and clearing _cache
_registered: dict[type, _Sizer] = {}
_cache: dict[type, _Sizer] = {}  # read without the lock: a dict lookup is atomic under the GIL


def register_sizeof(cls: type[_T], fn: Callable[[_T], int]) -> None:
    """Tell auto buffers how many bytes an item of ``cls`` (or of a subclass) keeps alive.

    For your own types whose memory ``sys.getsizeof`` does not see, e.g. a class holding an
    array in an attribute. ``fn`` is called on sampled items, so it should be quick.

    Args:
        cls: the type.
        fn: ``fn(item)`` returns the item's size in bytes, an ``int >= 0``.

    Raises:
        TypeError: ``cls`` is not a type or ``fn`` is not callable.

    Example:
        >>> class Frame:
        ...     def __init__(self, pixels: bytes) -> None:
        ...         self.pixels = pixels
        >>> register_sizeof(Frame, lambda frame: len(frame.pixels))
        >>> sizeof(Frame(bytes(1000)))
        1000
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_sizeof: cls must be a type, got {cls!r}")
    if not callable(fn):
        raise TypeError(f"register_sizeof: fn must be callable, got {fn!r}")
    with _lock:
        _registered[cls] = _checked(cls, fn)
        _cache.clear()


def sizeof(item: object) -> int:
    """The estimated bytes ``item`` keeps alive (see the module notes for each kind of item).

    Raises:
        TypeError: a function given to :func:`register_sizeof` returned something else than
            an ``int >= 0``.
    """
    sizer = _cache.get(type(item))
    if sizer is None:
        sizer = _cache[type(item)] = _resolve(type(item))
    return sizer(item)


def _checked(cls: type, fn: Callable[[Any], object]) -> _Sizer:
    def sizer(item: object) -> int:
        size = fn(item)
        if type(size) is not int or size < 0:
            raise TypeError(
                f"the sizeof function registered for {cls.__qualname__} returned {size!r}; "
                "expected an int >= 0"
            )
        return size

    return sizer


def _resolve(cls: type) -> _Sizer:
    """The function that estimates items of ``cls``."""
    with _lock:
        for base in cls.__mro__:
            if base in _registered:
                return _registered[base]
    if cls in _SCALARS:
        return sys.getsizeof
    if issubclass(cls, bytes | bytearray):
        return len
    if issubclass(cls, memoryview):
        return _memoryview
    arrays = _class_in("array", "array")  # an item can be one only once array is imported
    if arrays is not None and issubclass(cls, arrays):
        return _array
    if issubclass(cls, list | tuple | set | frozenset | dict):
        return _container
    for module, name, sizer in _THIRD_PARTY:
        found = _class_in(module, name)
        if found is not None and issubclass(cls, found):
            return sizer
    return _other


def _class_in(module: str, dotted: str) -> type | None:
    """The class ``module.dotted`` if that module is already imported, else ``None``."""
    obj: object = sys.modules.get(module)
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
    return obj if isinstance(obj, type) else None


def _other(item: object) -> int:
    nbytes = getattr(item, "nbytes", None)
    if type(nbytes) is int:
        return nbytes
    return sys.getsizeof(item)


def _memoryview(view: memoryview) -> int:
    return sizeof(view.obj)  # what a slice keeps alive: all of what it views


def _array(values: array.array[Any]) -> int:
    return values.itemsize * len(values)


def _ndarray(values: Any) -> int:
    ndarray = _class_in("numpy", "ndarray") or type(values)
    root = values
    while isinstance(root.base, ndarray):  # a view keeps its base alive, to the root
        root = root.base
    return int(root.nbytes)


def _tensor(tensor: Any) -> int:
    try:
        return int(tensor.untyped_storage().nbytes())
    except (RuntimeError, NotImplementedError, AttributeError):  # meta, sparse, old torch
        return int(tensor.nelement() * tensor.element_size())


_BAND_BYTES = {"I;16": 2, "I;16B": 2, "I;16L": 2, "I": 4, "F": 4}


def _image(image: Any) -> int:
    bands = len(image.getbands())
    return int(image.width * image.height * bands * _BAND_BYTES.get(image.mode, 1))


_THIRD_PARTY: tuple[tuple[str, str, _Sizer], ...] = (
    ("numpy", "ndarray", _ndarray),
    ("torch", "Tensor", _tensor),
    ("PIL.Image", "Image", _image),
)


def _container(items: Any, depth: int = 0) -> int:
    size = sys.getsizeof(items)
    length = len(items)
    if not length or depth >= DEPTH:
        return size
    taken = min(SAMPLE, length)
    if isinstance(items, dict):
        mapping = cast("dict[object, object]", items)
        keys = list(mapping)
        sample = [keys[i * length // taken] for i in range(taken)]
        sampled = sum(_element(k, depth) + _element(mapping[k], depth) for k in sample)
    elif isinstance(items, list | tuple):
        sequence = cast("list[object]", items)
        sampled = sum(_element(sequence[i * length // taken], depth) for i in range(taken))
    else:  # a set: no positions, so its first elements in iteration order
        iterator = iter(cast("set[object]", items))
        sampled = sum(_element(next(iterator), depth) for _ in range(taken))
    return size + sampled * length // taken


def _element(item: object, depth: int) -> int:
    if type(item) in _CONTAINERS:
        return _container(item, depth + 1)
    return sizeof(item)


_CONTAINERS = frozenset({list, tuple, set, frozenset, dict})
_SCALARS = frozenset({int, float, complex, bool, type(None)})
