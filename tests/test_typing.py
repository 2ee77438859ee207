"""The static types: mypy and pyright infer the pass cases and reject each fail case line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "typing_cases"
MYPY_IGNORE = re.compile(r"  # type: ignore\[([\w-]+)\]")
PYRIGHT_IGNORE = re.compile(r"  # pyright: ignore\[(\w+(?:, \w+)*)\]")  # one or more rules


def expected_errors(pattern: re.Pattern[str]) -> set[tuple[int, str]]:
    lines = (CASES / "fail_builder.py").read_text().splitlines()
    return {
        (number, code)
        for number, line in enumerate(lines, start=1)
        if (match := pattern.search(line))
        for code in match.group(1).split(", ")
    }


def stripped_copy(tmp_path: Path) -> Path:
    """fail_builder.py without its ignore comments, so every misuse must be reported."""
    text = (CASES / "fail_builder.py").read_text()
    text = PYRIGHT_IGNORE.sub("", MYPY_IGNORE.sub("", text))
    copy = tmp_path / "fail_builder.py"
    copy.write_text(text)
    config = json.loads((CASES / "pyrightconfig.json").read_text())
    config["extraPaths"] = [str(ROOT)]
    (tmp_path / "pyrightconfig.json").write_text(json.dumps(config))
    return copy


def mypy(*files: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "mypy.ini"),
         "--cache-dir", str(cache), *map(str, files)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip


def pyright(config: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "basedpyright"), "--outputjson", "-p", str(config),
         *map(str, files)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip


def test_mypy_accepts_the_pass_cases_and_every_ignore_is_needed(tmp_path: Path) -> None:
    """mypy --strict with warn_unused_ignores: clean, so every fail line still errors."""
    result = mypy(CASES / "pass_builder.py", CASES / "fail_builder.py", cache=tmp_path / "c")
    assert result.returncode == 0, result.stdout


def test_mypy_reports_each_misuse_with_its_code(tmp_path: Path) -> None:
    """Without the ignores, mypy reports exactly the expected error on each fail line."""
    copy = stripped_copy(tmp_path)
    result = mypy(copy, cache=tmp_path / "c")
    found = {
        (int(m.group(1)), m.group(2))
        for m in re.finditer(r"fail_builder\.py:(\d+): error: .*\[([\w-]+)\]$", result.stdout, re.M)
    }
    assert found == expected_errors(MYPY_IGNORE)


@pytest.mark.skipif(
    not (Path(sys.executable).parent / "basedpyright").exists(),
    reason="basedpyright is not installed (pip install -e '.[dev]'); CI installs it",
)
def test_pyright_accepts_the_pass_cases_and_reports_each_misuse(tmp_path: Path) -> None:
    """pyright strict: the pass cases are clean; each fail line reports its rule."""
    clean = pyright(CASES / "pyrightconfig.json", CASES / "pass_builder.py",
                    CASES / "fail_builder.py")  # fmt: skip
    assert json.loads(clean.stdout)["summary"]["errorCount"] == 0, clean.stdout
    copy = stripped_copy(tmp_path)
    report = json.loads(pyright(tmp_path / "pyrightconfig.json", copy).stdout)
    found = {
        (d["range"]["start"]["line"] + 1, d["rule"])
        for d in report["generalDiagnostics"]
        if d["severity"] == "error"
    }
    assert found == expected_errors(PYRIGHT_IGNORE)
