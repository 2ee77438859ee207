"""The README's Python examples run, in order, as one script."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run() -> None:
    """Every ```python block runs; together they print what the README says they do."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3
    namespace: dict[str, object] = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(README), "exec"), namespace)
    assert out.getvalue() == "0\n1\n4\n9\n16\n[0, 1, 4, 9]\n"


def test_readme_starts_with_the_two_commands() -> None:
    """The first section gives exactly two commands: the demo and the tests."""
    first_section = README.read_text().split("\n## ")[0]
    commands = re.findall(r"```bash\n(.*?)```", first_section, re.S)
    lines = [line.split("#")[0].strip() for line in commands[0].splitlines()]
    assert lines == ["python3 dev.py demo", "python3 dev.py test"]
    assert (README.parent / ".ci" / "run").read_text().splitlines()[-1] == "python3 dev.py test"
