"""Imports point down the module table only (STYLE, and the README's Design section)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline_executor"

# Each module may import only modules listed before it.
ORDER = [
    "_errors",
    "_verdict",
    "_stats",
    "_monitor",
    "_progress",
    "_introspect",
    "_subtype",
    "_stages",
    "_typecheck",
    "_meter",
    "_channel",
    "_signals",
    "_diagnose",
    "_transport",
    "_worker",
    "_hosting",
    "_observe",
    "_supervise",
    "_process",
    "_threads",
    "_runner",
    "_sequential",
    "_builder",
    "_compat",
    "__init__",
]


def internal_imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module)
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import | ast.ImportFrom) and "pipeline_executor" in ast.dump(
            node
        ):
            found.add("pipeline_executor")
    return found


def test_every_module_is_in_the_table() -> None:
    """A new module takes its place in the table."""
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == sorted(ORDER)


@pytest.mark.parametrize("module", ORDER)
def test_imports_point_down_the_table(module: str) -> None:
    """No module imports one listed after it, nor the package itself."""
    imported = internal_imports(module)
    assert "pipeline_executor" not in imported
    later = set(ORDER[ORDER.index(module) :])
    assert imported & later == set()


def test_the_runner_knows_nothing_of_type_checks_and_the_builder_nothing_of_threads() -> None:
    """Two rules of STYLE's layering, by name."""
    runner = (PACKAGE / "_runner.py").read_text()
    assert "typeguard" not in runner
    assert "_typecheck" not in runner
    assert "import threading" not in (PACKAGE / "_builder.py").read_text()
