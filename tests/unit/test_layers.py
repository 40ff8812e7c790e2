"""Only the command line writes to the terminal.

The import contracts in pyproject.toml (run by ``lint-imports`` in
scripts/test) keep click and rich out of the core; this catches the ways to
print that need no import: the ``print`` builtin and ``sys.stdout`` /
``sys.stderr``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "reconciler"
ALLOWED = {PACKAGE / "cli.py", PACKAGE / "__main__.py"}


def _terminal_writes(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
        ):
            found.append(f"line {node.lineno}: print()")
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("stdout", "stderr", "__stdout__", "__stderr__")
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            found.append(f"line {node.lineno}: sys.{node.attr}")
    return found


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PACKAGE.rglob("*.py") if p not in ALLOWED),
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_only_the_command_line_writes_to_the_terminal(path: Path) -> None:
    assert _terminal_writes(path.read_text(encoding="utf-8")) == []


def test_the_check_finds_each_way_of_printing() -> None:
    source = "import sys\nprint('x')\nsys.stdout.write('y')\nsys.stderr.flush()\n"
    assert _terminal_writes(source) == [
        "line 2: print()",
        "line 3: sys.stdout",
        "line 4: sys.stderr",
    ]
