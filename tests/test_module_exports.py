"""Each private module's ``__all__`` is true: it names only what the module defines, and
covers every name another module (package, tests, benchmarks, examples) imports from it."""

from __future__ import annotations

import ast
import importlib
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "pipeline_executor"
PRIVATE = sorted(p.stem for p in PACKAGE.glob("_*.py") if p.stem != "__init__")


def imported_names() -> dict[str, set[tuple[str, str]]]:
    """For each private module, the (name, importing file) pairs found in the sources."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    sources = [*PACKAGE.glob("*.py"), *ROOT.glob("tests/*.py"), *ROOT.glob("benchmarks/*.py")]
    sources += ROOT.glob("examples/*.py")
    for path in sources:
        tree = ast.parse(path.read_text())
        aliases: dict[str, str] = {}  # `from . import _introspect` (as x): x -> _introspect
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level == 1 and node.module is None:
                aliases.update({a.asname or a.name: a.name for a in node.names})
                continue
            module = node.module or ""
            if node.level == 0 and module.startswith("pipeline_executor."):
                module = module.removeprefix("pipeline_executor.")
            elif node.level != 1:
                continue
            if module.startswith("_"):
                found[module].update((a.name, path.name) for a in node.names)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                found[aliases[node.value.id]].add((node.attr, path.name))
    return found


IMPORTED = imported_names()


@pytest.mark.parametrize("module", PRIVATE)
def test_all_names_only_what_the_module_defines(module: str) -> None:
    """Every name in __all__ exists in the module."""
    loaded = importlib.import_module(f"pipeline_executor.{module}")
    exported: list[str] = loaded.__all__
    assert [name for name in exported if not hasattr(loaded, name)] == []


@pytest.mark.parametrize("module", PRIVATE)
def test_all_covers_what_other_modules_import(module: str) -> None:
    """A name imported from a private module elsewhere is listed in its __all__."""
    loaded = importlib.import_module(f"pipeline_executor.{module}")
    exported = set(loaded.__all__)
    missing = sorted((name, where) for name, where in IMPORTED[module] if name not in exported)
    assert missing == []
