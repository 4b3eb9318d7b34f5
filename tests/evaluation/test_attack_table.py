"""docs/attacks.md is the registry's table, regenerated: it cannot fall behind ``ATTACKS``."""

from __future__ import annotations

from pathlib import Path

from art_manifold_defenses.evaluation.attack_table import attacks_markdown
from art_manifold_defenses.evaluation.attacks import ATTACKS

PAGE = Path(__file__).resolve().parents[2] / "docs" / "attacks.md"


def test_docs_page_equals_the_generated_table() -> None:
    assert PAGE.read_text() == attacks_markdown(), (
        "docs/attacks.md is stale: run `python -m art_manifold_defenses.evaluation.attack_table > "
        "docs/attacks.md`"
    )


def test_one_row_per_registered_attack_with_its_norms_and_loss() -> None:
    rows = [
        line
        for line in attacks_markdown().splitlines()
        if line.startswith("| ") and "`" in line.split("|")[2]
    ]
    assert len(rows) == len(ATTACKS)
    for (library, attack), info in ATTACKS.items():
        row = next(
            r for r in rows if r.split("|")[1].strip() == library and r.split("|")[2].strip() == f"`{attack}`"
        )
        cells = [c.strip() for c in row.split("|")]
        assert cells[3] == ", ".join(info.norms) and cells[5] == (info.loss or "-")
