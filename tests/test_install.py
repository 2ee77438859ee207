"""The installed package, as a project that depends on it sees it (README, "Testing")."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

USER_CODE = """\
from collections.abc import Iterator

from typing_extensions import assert_type

from pipeline_executor import Pipeline


def numbers(n: int) -> Iterator[int]:
    yield from range(n)


assert_type(Pipeline.source(numbers, n=3), Pipeline[int])
"""


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A directory outside the repository holding a user's module that uses the package."""
    assert ROOT not in tmp_path.parents
    (tmp_path / "use.py").write_text(USER_CODE)
    (tmp_path / "pyrightconfig.json").write_text(json.dumps({"typeCheckingMode": "strict"}))
    return tmp_path


def test_mypy_run_elsewhere_sees_the_installed_package(elsewhere: Path) -> None:
    """mypy --strict outside the repository finds the (editable) install and its types."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(elsewhere / "cache"),
         "use.py"],
        capture_output=True, text=True, cwd=elsewhere, check=False, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_pyright_run_elsewhere_sees_the_installed_package(elsewhere: Path) -> None:
    """basedpyright strict outside the repository resolves the import and infers the types."""
    pyright = Path(sys.executable).parent / "basedpyright"
    result = subprocess.run(
        [str(pyright), "--outputjson", "--pythonpath", sys.executable, "use.py"],
        capture_output=True, text=True, cwd=elsewhere, check=False, timeout=300,
    )  # fmt: skip
    report = json.loads(result.stdout)
    assert report["summary"]["errorCount"] == 0, report["generalDiagnostics"]
