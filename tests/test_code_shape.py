"""Files and functions short enough to read in one sitting (issue 21): no package file over 500 lines and no
function over 80 code lines (from the first statement after the docstring to the end), except where
:data:`LONG_FILES` / :data:`LONG_FUNCTIONS` state why."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "art_manifold_defenses"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 80

#: ``path relative to the package -> why it stays longer``.
LONG_FILES: dict[str, str] = {}

#: ``"path:qualified name" -> why it stays longer``.
LONG_FUNCTIONS: dict[str, str] = {}


def function_lengths(source: str) -> dict[str, int]:
    """Code lines of every function and method of ``source`` by qualified name (``Class.method``, nested
    functions as ``outer.inner``), docstrings not counted."""
    lengths: dict[str, int] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = child.body
                first = body[0]
                start = first.lineno
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    if isinstance(first.value.value, str):
                        start = body[1].lineno if len(body) > 1 else first.end_lineno or first.lineno
                name = prefix + child.name
                lengths[name] = (child.end_lineno or child.lineno) - start + 1
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source), "")
    return lengths


def _files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_file_is_longer_than_the_limit_without_a_reason() -> None:
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in _files()
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    }
    unexplained = {path: n for path, n in long.items() if path not in LONG_FILES}
    assert not unexplained, f"files over {MAX_FILE_LINES} lines: {unexplained}"
    stale = set(LONG_FILES) - set(long)
    assert not stale, f"LONG_FILES lists files that are no longer long: {stale}"


def test_no_function_is_longer_than_the_limit_without_a_reason() -> None:
    long = {
        f"{p.relative_to(PACKAGE)}:{name}": n
        for p in _files()
        for name, n in function_lengths(p.read_text()).items()
        if n > MAX_FUNCTION_LINES
    }
    unexplained = {key: n for key, n in long.items() if key not in LONG_FUNCTIONS}
    assert not unexplained, f"functions over {MAX_FUNCTION_LINES} code lines: {unexplained}"
    stale = set(LONG_FUNCTIONS) - set(long)
    assert not stale, f"LONG_FUNCTIONS lists functions that are no longer long: {stale}"


def test_function_lengths_count_code_lines_only() -> None:
    source = '''
def short():
    """A docstring
    of three
    lines."""
    return 1


class Holder:
    def method(self):
        x = 1
        y = 2

        return x + y
'''
    assert function_lengths(source) == {"short": 1, "Holder.method": 4}
