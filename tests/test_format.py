"""The package is formatted by ``ruff format`` (line length from pyproject.toml) with no ``# fmt: skip``
markers, and no line of the package, tests, benchmarks or examples is longer than that width (ruff's E501,
which ``ruff format`` does not enforce on strings and comments)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "art_manifold_defenses"


def test_the_package_is_ruff_formatted() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", str(PACKAGE)],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_formatter_escape_hatches_in_the_package() -> None:
    marked = [
        f"{p.relative_to(PACKAGE.parent)}:{i}"
        for p in sorted(PACKAGE.rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if line.rstrip().endswith("# fmt: skip")
    ]
    assert not marked, marked


def test_no_line_is_longer_than_the_configured_width() -> None:
    folders = [str(PACKAGE.parent / name) for name in ("art_manifold_defenses", "tests", "bench", "examples")]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--select", "E501", *folders],
        capture_output=True,
        text=True,
        cwd=PACKAGE.parent,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
