"""Developer entry point: ``python3 dev.py demo | test | bench``. Needs only python3.

Each command creates ``.venv`` beside this file on first use, installs what it needs from
``pyproject.toml`` (and ``constraints.txt``), and reinstalls only when those files change.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"

# What each command installs: the package, with these extras.
EXTRAS = {"demo": "", "bench": "[progress]", "test": "[dev,torch,progress]"}


def _ensure_env(extras: str) -> None:
    if not PYTHON.exists():
        print(f"dev.py: creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    inputs = b"".join((ROOT / name).read_bytes() for name in ("pyproject.toml", "constraints.txt"))
    stamp = VENV / f".installed-{hashlib.sha256(inputs + extras.encode()).hexdigest()[:16]}"
    if stamp.exists():
        return
    print(f"dev.py: installing the package{extras} into {VENV}", flush=True)
    _run(
        [
            str(PYTHON),
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
    return [str(BIN / name), *args]


def demo() -> None:
    """Run the quick-start demo."""
    _run([str(PYTHON), "examples/quickstart.py"])


def test() -> None:
    """Run every check CI runs: ruff, mypy, basedpyright, then the tests with coverage."""
    _run(_tool("ruff", "check", "."))
    _run(_tool("ruff", "format", "--check", "."))
    _run(_tool("mypy"))
    _run(_tool("basedpyright", "--pythonpath", str(PYTHON)))
    _run(_tool("coverage", "run", "-m", "pytest", *sys.argv[2:]))
    _run(_tool("coverage", "report", "--fail-under=90"))


def bench() -> None:
    """Run the benchmarks (never run by CI)."""
    _run([str(PYTHON), "benchmarks/bench.py", *sys.argv[2:]])


COMMANDS = {"demo": demo, "test": test, "bench": bench}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        print("commands: " + ", ".join(f"{name}: {fn.__doc__}" for name, fn in COMMANDS.items()))
        sys.exit(2)
    command = sys.argv[1]
    _ensure_env(EXTRAS[command])
    COMMANDS[command]()


if __name__ == "__main__":
    main()
