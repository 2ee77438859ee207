"""``Record`` behaves as a frozen dataclass does: fields in order, defaults, repr, equality,
hash, immutability, ``replace``, pickling."""

from __future__ import annotations

import copy
import pickle
from dataclasses import FrozenInstanceError, dataclass
from typing import Any

import pytest

from pipeline_executor._record import Record


class Point(Record):
    """A record with a default."""

    x: int
    y: int
    label: str = "p"


class Labelled(Point):
    """A subclass adds fields after its base's."""

    colour: str = "red"


@dataclass(frozen=True)
class DataPoint:
    """The same fields as a frozen dataclass, the reference."""

    x: int
    y: int
    label: str = "p"


def test_fields_are_the_annotations_in_order_with_their_defaults() -> None:
    """Positional, keyword and default values land as a dataclass puts them."""
    assert Point(1, 2)._values() == (1, 2, "p")  # pyright: ignore[reportPrivateUsage]
    assert Point(1, y=2, label="q")._values() == (1, 2, "q")  # pyright: ignore[reportPrivateUsage]
    assert Labelled(1, 2, colour="blue")._values() == (1, 2, "p", "blue")  # pyright: ignore[reportPrivateUsage]


def test_the_repr_is_a_dataclasss() -> None:
    """repr names the class and each field, as a dataclass's repr does."""
    assert repr(Point(1, 2)) == "Point(x=1, y=2, label='p')"
    assert repr(DataPoint(1, 2)) == "Data" + repr(Point(1, 2))


def test_equal_fields_are_equal_records_within_one_class() -> None:
    """Equal fields, equal records and hashes; another class or a tuple is not equal."""
    assert Point(1, 2) == Point(1, 2, "p")
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert Point(1, 2) != Point(1, 3)
    assert Point(1, 2) != Labelled(1, 2)
    assert Point(1, 2) != (1, 2, "p")


def test_a_record_is_frozen() -> None:
    """Assigning or deleting a field raises AttributeError, as a frozen dataclass does."""
    point = Point(1, 2)
    with pytest.raises(AttributeError, match=r"^cannot assign to field 'x': a Point is frozen$"):
        point.x = 3  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(AttributeError, match=r"^cannot delete field 'x': a Point is frozen$"):
        del point.x  # pyright: ignore[reportAttributeAccessIssue]
    with pytest.raises(FrozenInstanceError):  # the reference refuses alike
        DataPoint(1, 2).x = 3  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
    assert point.x == 1


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((1, 2, "p", 4), {}, r"^Point\(\) takes 3 arguments but 4 were given$"),
        ((1,), {}, r"^Point\(\) missing required argument: 'y'$"),
        ((1, 2), {"x": 1}, r"^Point\(\) got multiple values for argument 'x'$"),
        ((1, 2), {"z": 1}, r"^Point\(\) got an unexpected keyword argument 'z'$"),
    ],
)
def test_wrong_arguments_are_a_type_error(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    """Too many, missing, repeated or unknown arguments: TypeError, as from a dataclass."""
    with pytest.raises(TypeError, match=message):
        Point(*args, **kwargs)
    with pytest.raises(TypeError):
        DataPoint(*args, **kwargs)


def test_a_field_without_default_after_one_with_is_refused() -> None:
    """As a dataclass, a record class may not put a required field after a default."""
    with pytest.raises(TypeError, match=r"^non-default argument 'z' follows default argument$"):

        class Wrong(Record):  # pyright: ignore[reportUnusedClass]
            x: int = 0
            z: int  # type: ignore[misc]  # pyright: ignore[reportGeneralTypeIssues]


def test_replace_copies_with_changes() -> None:
    """replace() is dataclasses.replace: the other fields kept, an unknown name refused."""
    assert Labelled(1, 2).replace(y=5, colour="blue") == Labelled(1, 5, "p", "blue")
    with pytest.raises(TypeError, match=r"^Point\(\) got an unexpected keyword argument 'z'$"):
        Point(1, 2).replace(z=1)


def test_a_record_pickles_and_copies_as_itself() -> None:
    """pickle and copy give an equal record, still frozen."""
    point = Labelled(1, 2, colour="blue")
    for again in (pickle.loads(pickle.dumps(point)), copy.copy(point), copy.deepcopy(point)):
        assert again == point
        with pytest.raises(AttributeError):
            again.x = 3  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
