"""The subtype rules: a table of verdicts, checked at run time and against mypy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline_executor import Pipeline, PipelineTypeError
from pipeline_executor._subtype import is_subtype

from . import typecheck_types

ROOT = Path(__file__).resolve().parent.parent

A, R, P = "accept", "reject", "permissive"  # P: we accept what mypy rejects (documented)

# (upstream item type, stage input item type, verdict)
TABLE: list[tuple[str, str, str]] = [
    # plain classes, promotions, Any and object
    ("int", "int", A), ("bool", "int", A), ("int", "bool", R), ("int", "float", A),
    ("int", "complex", A), ("float", "int", R), ("bool", "float", A), ("complex", "float", R),
    ("str", "int", R), ("int", "object", A), ("object", "int", R), ("Any", "int", A),
    ("int", "Any", A), ("Dog", "Animal", A), ("Animal", "Dog", R), ("None", "None", A),
    ("None", "int", R), ("bytes", "str", R), ("bytearray", "bytes", P),
    # unions and Optional
    ("int", "Optional[int]", A), ("Optional[int]", "int", R), ("None", "Optional[int]", A),
    ("Union[int, str]", "Union[int, str, bytes]", A), ("Union[int, str]", "int", R),
    ("Union[int, bool]", "int", A), ("int | str", "str | int", A),
    ("Optional[bool]", "Optional[int]", A), ("Union[int, None]", "Union[float, None]", A),
    # Literal
    ("Literal['a']", "str", A), ("str", "Literal['a']", R),
    ("Literal['a', 'b']", "Literal['a', 'b', 'c']", A),
    ("Literal['a', 'd']", "Literal['a', 'b']", R),
    ("Literal[1]", "int", A), ("Literal[True]", "int", A), ("Literal[1]", "Literal[True]", R),
    ("Literal[1]", "float", A),
    # NewType
    ("UserId", "int", A), ("int", "UserId", R), ("UserId", "float", A), ("UserId", "UserId", A),
    ("UserId", "OrderId", R),
    # Annotated is stripped
    ("Annotated[int, 'meta']", "int", A), ("int", "Annotated[int, 'meta']", A),
    ("Annotated[str, 1]", "int", R),
    # covariant generics, and projection onto a base class's parameters
    ("list[int]", "Iterable[int]", A), ("list[int]", "Sequence[float]", A),
    ("list[bool]", "Sequence[int]", A), ("list[str]", "Sequence[int]", R),
    ("Iterator[int]", "Iterable[float]", A), ("tuple[int, ...]", "Sequence[int]", A),
    ("frozenset[int]", "AbstractSet[float]", A), ("Mapping[str, int]", "Mapping[str, float]", A),
    ("dict[str, int]", "Mapping[str, float]", A), ("dict[str, int]", "Mapping[object, int]", R),
    ("dict[str, int]", "Iterable[str]", A), ("dict[str, int]", "Iterable[int]", R),
    ("Generator[int, None, None]", "Iterator[int]", A),
    ("Generator[int, None, None]", "Iterable[str]", R),
    ("str", "Iterable[str]", A), ("str", "Sequence[int]", R), ("bytes", "Iterable[int]", A),
    ("Counter[str]", "Mapping[str, int]", A), ("Iterable[int]", "Iterator[int]", R),
    ("Sequence[int]", "list[int]", R),
    # invariant generics
    ("list[int]", "list[int]", A), ("list[int]", "list[float]", R), ("list[bool]", "list[int]", R),
    ("dict[str, int]", "dict[str, float]", R), ("set[int]", "set[object]", R),
    ("list[Any]", "list[int]", A), ("list[int]", "list[Any]", A), ("list[int]", "list", A),
    ("list", "list[int]", A),
    # user generics read their TypeVars' variance; subclasses of parametrized builtins
    ("Box[int]", "Box[float]", A), ("Box[str]", "Box[int]", R), ("Cell[int]", "Cell[float]", R),
    ("Cell[int]", "Cell[int]", A), ("Sink[float]", "Sink[int]", A), ("Sink[int]", "Sink[float]", R),
    ("IntList", "Sequence[int]", A), ("IntList", "list[int]", A), ("IntList", "Sequence[str]", R),
    ("Box[Dog]", "Box[Animal]", A),
    # tuples, fixed and variadic
    ("tuple[int, str]", "tuple[int, str]", A), ("tuple[int, str]", "tuple[str, int]", R),
    ("tuple[int, int]", "tuple[int, ...]", A), ("tuple[int, ...]", "tuple[int, int]", R),
    ("tuple[bool, int]", "tuple[int, float]", A), ("tuple[int]", "tuple[int, int]", R),
    ("tuple[int, str]", "Sequence[int | str]", A), ("tuple[int, str]", "Sequence[int]", R),
    ("Point", "tuple[int, int]", A), ("tuple[()]", "tuple[int, ...]", A),
    # protocols
    ("Closer", "SupportsClose", A), ("int", "SupportsClose", R), ("int", "HasName", P),
    ("Named", "HasName", A),
    # callables: parameter lists are not compared
    ("Callable[[int], int]", "Callable[[int], int]", A),
    ("Callable[[int], int]", "Callable[[str], str]", P), ("int", "Callable[[int], int]", R),
    # type[...]
    ("type[bool]", "type[int]", A), ("type[int]", "type[bool]", R),
    # forward references are not resolved by is_subtype: accepted
    ("'Dog'", "Animal", A), ("'Animal'", "Dog", P),
]  # fmt: skip

NAMESPACE = {name: getattr(typecheck_types, name) for name in typecheck_types.__all__}


def runtime(expression: str) -> Any:
    if expression.startswith("'"):
        return expression.strip("'")  # a forward reference stays a string
    return eval(expression, NAMESPACE)


def test_the_table_is_large_enough_and_covers_both_verdicts() -> None:
    """At least 70 pairs, with both verdicts and the documented permissive cases."""
    assert len(TABLE) >= 70
    assert {verdict for _, _, verdict in TABLE} == {A, R, P}


@pytest.mark.parametrize(("sub", "sup", "verdict"), TABLE)
def test_is_subtype_gives_the_tables_verdict(sub: str, sup: str, verdict: str) -> None:
    """is_subtype accepts the A and P rows and rejects the R rows."""
    assert is_subtype(runtime(sub), runtime(sup)) is (verdict != R)


def stages_for(sub: object, sup: object) -> tuple[Any, Any]:
    def source() -> Iterator[Any]:
        yield from ()

    def stage(xs: Iterable[Any]) -> Iterator[int]:
        yield from ()

    source.__annotations__ = {"return": Iterator[sub]}  # type: ignore[valid-type]
    stage.__annotations__ = {"xs": Iterable[sup], "return": Iterator[int]}  # type: ignore[valid-type]
    return source, stage


@pytest.mark.parametrize(
    ("sub", "sup", "verdict"), [row for row in TABLE if not row[0].startswith("'")]
)
def test_building_a_pipeline_follows_the_table(sub: str, sup: str, verdict: str) -> None:
    """A stage whose input type does not fit the previous stage's items fails to build."""
    source, stage = stages_for(runtime(sub), runtime(sup))
    pipeline = Pipeline.source(source)
    if verdict == R:
        with pytest.raises(PipelineTypeError, match=r"^stage 2 'stage' \(then\) expects items of"):
            pipeline.then(stage)
    else:
        pipeline.then(stage)


def test_mypy_agrees_with_the_table(tmp_path: Path) -> None:
    """mypy rejects exactly the R and P rows: nothing it accepts is rejected at build time."""
    lines = ["from __future__ import annotations", "from tests.typecheck_types import *", ""]
    where: dict[int, int] = {}
    for index, (sub, sup, _) in enumerate(TABLE):
        sub_text = sub.strip("'") if sub.startswith("'") else sub
        lines.append(f"def case_{index}(x: {sub_text}) -> None:")
        lines.append(f"    y: {sup} = x")
        where[len(lines)] = index
        lines.append("    del y")
    snippet = tmp_path / "subtype_cases.py"
    snippet.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "mypy.ini"),
         "--cache-dir", str(tmp_path / "cache"), "--disable-error-code", "type-arg",
         str(snippet)],
        capture_output=True, text=True, cwd=ROOT, check=False,
        env={**os.environ, "MYPYPATH": str(ROOT)},
    )  # fmt: skip
    errors = {int(n) for n in re.findall(r"subtype_cases\.py:(\d+): error", result.stdout)}
    unexpected = errors - set(where)
    assert not unexpected, result.stdout
    rejected_by_mypy = {where[line] for line in errors}
    expected = {i for i, (_, _, verdict) in enumerate(TABLE) if verdict in (R, P)}
    disagreements = [TABLE[i] for i in rejected_by_mypy ^ expected]
    assert disagreements == [], result.stdout
