"""``Record``: frozen record classes, as frozen dataclasses are, without their start-up cost.

Every start-up creates the package's record classes. ``dataclasses`` imports ``inspect``
(with ``ast``, ``dis`` and ``tokenize``) and compiles each class's methods, about a
millisecond a class on the development machine; ``typing.NamedTuple`` compiles each field's
string annotation, 3 ms for our eight. A subclass of :class:`Record` declares its fields as
annotations, with defaults as class attributes, in order, as a frozen dataclass does; its
instances take them positionally or by keyword and have a dataclass's ``repr``, ``==`` and
``hash`` (by the fields, within one class), refuse assignment, and copy themselves with
``replace(**changes)``. Type checkers read a subclass as a frozen dataclass
(``dataclass_transform``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from typing_extensions import Self, dataclass_transform
else:  # only the type checkers need it (and Python 3.10's typing has none)

    def dataclass_transform(**_: object) -> object:
        return lambda cls: cls


__all__ = ["Record"]


@dataclass_transform(frozen_default=True)
class Record:
    """The base of a frozen record class: its annotations are its fields."""

    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, object]] = {}

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        # The class's own annotations (strings: no evaluation), as dataclasses reads them;
        # inspect.get_annotations would import inspect.
        annotations: dict[str, object] = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        own = [name for name, hint in annotations.items() if "ClassVar" not in str(hint)]
        defaults = dict(cls._defaults)
        defaults.update({name: cls.__dict__[name] for name in own if name in cls.__dict__})
        fields = (*cls._fields, *(name for name in own if name not in cls._fields))
        after_default = False
        for name in fields:
            if name in defaults:
                after_default = True
            elif after_default:  # as a dataclass says it
                raise TypeError(f"non-default argument {name!r} follows default argument")
        cls._fields, cls._defaults = fields, defaults

    def __init__(self, *args: object, **kwargs: object) -> None:
        """Each field from ``args`` in order, then ``kwargs`` by name, then its default.

        Raises:
            TypeError: too many, missing, repeated or unknown arguments.
        """
        fields, what = self._fields, f"{type(self).__name__}()"
        if len(args) > len(fields):
            raise TypeError(f"{what} takes {len(fields)} arguments but {len(args)} were given")
        values = dict(zip(fields, args, strict=False))  # args may be fewer
        for name, value in kwargs.items():
            if name not in fields:
                raise TypeError(f"{what} got an unexpected keyword argument {name!r}")
            if name in values:
                raise TypeError(f"{what} got multiple values for argument {name!r}")
            values[name] = value
        for name in fields:
            if name in values:
                object.__setattr__(self, name, values[name])
            elif name in self._defaults:
                object.__setattr__(self, name, self._defaults[name])
            else:
                raise TypeError(f"{what} missing required argument: {name!r}")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def replace(self, **changes: Any) -> Self:  # any field's type
        """A copy with ``changes`` (as ``dataclasses.replace``).

        Raises:
            TypeError: a name that is not a field.
        """
        return type(self)(**{**dict(zip(self._fields, self._values(), strict=True)), **changes})

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Record) and other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: a {type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: a {type(self).__name__} is frozen")
