"""Each module imports only what its row of the table allows (README, "Design")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pipeline_executor"

# What each module may import from the package: its dependencies by design, not only today's.
ALLOWED: dict[str, set[str]] = {
    "_errors": set(),
    # the frozen record classes' base (what a frozen dataclass would be)
    "_record": set(),
    "_verdict": set(),
    # how a stage ended (every run), apart from the snapshots (only monitors and reports)
    "_state": set(),
    "_stats": {"_state", "_verdict"},
    "_validate": {"_errors"},
    "_monitor": {"_errors", "_stats", "_validate"},
    "_progress": {"_errors", "_stats"},
    # what buffers may fill: item sizes, the budget (a stage option's value object)
    "_sizeof": set(),
    "_budget": {"_errors", "_record"},
    # the typing tower
    "_signature": {"_record"},
    "_introspect": {"_errors", "_record", "_signature"},
    "_subtype": {"_introspect"},
    "_fits": {"_introspect"},
    "_typecheck": {"_errors", "_fits", "_introspect", "_stages", "_subtype"},
    # what a backend is given (a stage's Monitor is imported for annotations only)
    "_stages": {"_budget", "_errors", "_introspect", "_monitor", "_record", "_validate"},
    # the running tower
    "_meter": {"_errors"},
    "_bound": set(),
    "_channel": {"_bound", "_budget", "_errors", "_meter", "_sizeof", "_stats"},
    "_signals": {"_errors"},
    "_diagnose": set(),
    # the per-item operators' bodies, and ordered output (hosted by any engine)
    "_ops": {"_diagnose", "_meter"},
    "_order": {"_channel", "_meter"},
    # a worker's pipes and fork workers, then what crosses them
    "_pipes": set(),
    "_transport": {"_pipes"},
    "_worker": {"_diagnose", "_errors", "_meter", "_pipes", "_transport"},
    "_preload": {"_pipes"},  # imported by the forkserver as it starts
    "_hosting": {"_channel", "_stages", "_state"},
    "_observe": {
        "_budget",
        "_channel",
        "_diagnose",
        "_errors",
        "_monitor",
        "_order",
        "_progress",
        "_stages",
        "_state",
        "_stats",
    },
    # the supervisor, written once for every engine, and the local engine
    "_supervise": {
        "_budget",
        "_channel",
        "_errors",
        "_monitor",
        "_observe",
        "_progress",
        "_record",
        "_signals",
        "_stages",
        "_state",
        "_stats",
    },
    "_process": {
        "_channel",
        "_errors",
        "_hosting",
        "_pipes",
        "_preload",
        "_stages",
        "_state",
        "_transport",
        "_worker",
    },
    "_threads": {
        "_budget",
        "_channel",
        "_diagnose",
        "_errors",
        "_hosting",
        "_observe",
        "_order",
        "_process",
        "_stages",
        "_state",
        "_stats",
        "_supervise",
    },
    "_runner": {"_budget", "_errors", "_monitor", "_stages", "_supervise", "_threads"},
    # the Ray engine: its actor's side (run in Ray's workers), its hosts, its wiring
    "_ray_actor": {"_diagnose", "_errors"},
    "_ray_host": {
        "_channel",
        "_errors",
        "_ray_actor",
        "_stages",
        "_state",
        "_stats",
        "_supervise",
        "_worker",
    },
    "_ray": {"_channel", "_errors", "_ray_host", "_stages", "_supervise", "_threads"},
    "_sequential": {"_errors", "_stages"},
    # the public layer
    "_builder": {
        "_budget",
        "_errors",
        "_introspect",
        "_monitor",
        "_ops",
        "_progress",
        "_runner",
        "_sequential",
        "_stages",
        "_typecheck",
        "_validate",
    },
    "_compat": {"_builder", "_errors", "_introspect", "_stages", "_typecheck", "_validate"},
    "__init__": {
        "_budget",
        "_builder",
        "_compat",
        "_errors",
        "_monitor",
        "_ray",
        "_sizeof",
        "_state",
        "_stats",
    },
}
TYPING_TOWER = {"_signature", "_introspect", "_subtype", "_fits", "_typecheck"}
RUNNING_TOWER = {
    "_meter",
    "_bound",
    "_channel",
    "_signals",
    "_diagnose",
    "_ops",
    "_order",
    "_pipes",
    "_transport",
    "_worker",
    "_preload",
    "_hosting",
    "_observe",
    "_supervise",
    "_process",
    "_threads",
    "_runner",
    "_sequential",
    "_ray_actor",
    "_ray_host",
    "_ray",
}


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
    """A new module takes its place in the table of allowed imports."""
    assert sorted(p.stem for p in PACKAGE.glob("*.py")) == sorted(ALLOWED)


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_a_module_imports_only_what_it_is_allowed(module: str) -> None:
    """Each module's internal imports are within its row of the table, never the package."""
    imported = internal_imports(module)
    assert "pipeline_executor" not in imported
    assert imported - ALLOWED[module] == set()


def test_the_allowed_imports_have_no_cycle() -> None:
    """The table is a layering: following allowed imports never comes back to a module."""
    done: set[str] = set()
    while len(done) < len(ALLOWED):
        ready = {m for m, deps in ALLOWED.items() if m not in done and deps <= done}
        assert ready, f"a cycle among {sorted(set(ALLOWED) - done)}"
        done |= ready


def test_the_typing_and_running_towers_never_import_each_other() -> None:
    """Type checks and thread plumbing meet only in _stages and the builder."""
    for module in TYPING_TOWER:
        assert ALLOWED[module] & RUNNING_TOWER == set(), module
    for module in RUNNING_TOWER:
        assert ALLOWED[module] & TYPING_TOWER == set(), module


def test_the_runner_knows_nothing_of_type_checks_and_the_builder_nothing_of_threads() -> None:
    """Two rules of STYLE's layering, by name."""
    runner = (PACKAGE / "_runner.py").read_text()
    assert "typeguard" not in runner
    assert "_typecheck" not in runner
    assert "import threading" not in (PACKAGE / "_builder.py").read_text()
