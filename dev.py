"""Developer entry point: ``python3 dev.py demo | test | bench``. Needs only python3.

Each command creates ``.venv`` beside this file on first use, installs what it needs from
``pyproject.toml`` (and ``constraints.txt``), and reinstalls only when those files change.
``test`` then runs the suite again on the oldest and newest supported Pythons it can find
(``python3.10``, ``python3.13``), each in a ``.venv-<version>`` of its own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"

# What each command installs: the package, with these extras.
EXTRAS = {"demo": "", "bench": "[progress]", "test": "[dev,torch,progress,ray]"}
# The other Pythons `test` runs the suite on, when the machine has them (torch and ray are for
# 3.11: the Ray tests skip elsewhere, saying ray is not installed there).
OTHER_PYTHONS = {"3.10": "[dev,progress]", "3.13": "[dev,progress]"}


def _bin(venv: Path, name: str) -> str:
    return str(venv / ("Scripts" if os.name == "nt" else "bin") / name)


def _ensure_env(venv: Path, extras: str, python: str = sys.executable) -> None:
    if not Path(_bin(venv, "python")).exists():
        print(f"dev.py: creating {venv}", flush=True)
        _run([python, "-m", "venv", "--clear", str(venv)])
    inputs = b"".join((ROOT / name).read_bytes() for name in ("pyproject.toml", "constraints.txt"))
    stamp = venv / f".installed-{hashlib.sha256(inputs + extras.encode()).hexdigest()[:16]}"
    if stamp.exists():
        return
    print(f"dev.py: installing the package{extras} into {venv}", flush=True)
    _run(
        [
            _bin(venv, "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(ROOT / "constraints.txt"),
            "-e",
            f"{ROOT}{extras}",
        ]
    )
    stamp.touch()


def _run(command: list[str]) -> None:
    result = subprocess.run(command, cwd=ROOT, check=False)
    if result.returncode != 0:
        print(f"dev.py: failed ({result.returncode}): {' '.join(command)}", flush=True)
        sys.exit(result.returncode)


def _tool(name: str, *args: str) -> list[str]:
    return [_bin(VENV, name), *args]


def demo() -> None:
    """Run the quick-start demo."""
    _run([_bin(VENV, "python"), "examples/quickstart.py"])


def test() -> None:
    """Run every check CI runs: ruff, mypy, basedpyright, the tests with coverage, and the
    tests again on the other supported Pythons found on this machine."""
    _run(_tool("ruff", "check", "."))
    _run(_tool("ruff", "format", "--check", "."))
    _run(_tool("mypy"))
    _run(_tool("basedpyright", "--pythonpath", _bin(VENV, "python")))
    _run(_tool("coverage", "erase"))
    _run(_tool("coverage", "run", "-m", "pytest", *sys.argv[2:]))
    _run(_tool("coverage", "combine", "--quiet"))  # the worker processes' data files too
    _run(_tool("coverage", "report", "--fail-under=90"))
    for version, extras in OTHER_PYTHONS.items():
        python = _find_python(version)
        if python is None:
            print(f"dev.py: python{version} is not on this machine; skipped it", flush=True)
            continue
        venv = ROOT / f".venv-{version}"
        _ensure_env(venv, extras, python)
        print(f"dev.py: the tests on Python {version}", flush=True)
        _run([_bin(venv, "python"), "-m", "pytest", "-q", *sys.argv[2:]])


def _find_python(version: str) -> str | None:
    """An interpreter of ``version`` that runs: on PATH, or one pyenv installed."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [shutil.which(f"python{version}")]
    candidates += [str(p) for p in sorted(pyenv.glob(f"versions/{version}.*/bin/python{version}"))]
    for candidate in candidates:
        if candidate is None:
            continue
        check = subprocess.run([candidate, "-c", "import venv"], capture_output=True, check=False)
        if check.returncode == 0:  # a pyenv shim for a version not selected fails here
            return candidate
    return None


def bench() -> None:
    """Run the benchmarks (never run by CI)."""
    _run([_bin(VENV, "python"), "benchmarks/bench.py", *sys.argv[2:]])


COMMANDS = {"demo": demo, "test": test, "bench": bench}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        print("commands: " + ", ".join(f"{name}: {fn.__doc__}" for name, fn in COMMANDS.items()))
        sys.exit(2)
    command = sys.argv[1]
    _ensure_env(VENV, EXTRAS[command])
    COMMANDS[command]()


if __name__ == "__main__":
    main()
