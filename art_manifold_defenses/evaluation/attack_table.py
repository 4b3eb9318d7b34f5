"""The table of supported attacks (``docs/attacks.md``), generated from the registry
:data:`~.attacks.ATTACKS`.

``python -m art_manifold_defenses.evaluation.attack_table > docs/attacks.md`` rewrites the page; a test checks
that the page in the repository equals what this module generates, so it cannot fall behind the registry.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .attacks import ATTACKS

__all__ = ["attacks_markdown"]

_HEADER = """# Supported attacks

Every `(library, attack)` pair that an `AttackSpec` can name (`AttackSpec(library, attack, norm, eps,
params)`), generated from `art_manifold_defenses.evaluation.attacks.ATTACKS` by `python -m
art_manifold_defenses.evaluation.attack_table > docs/attacks.md` (a test keeps this page equal to the
registry). *Kind*: `gradient` (white-box), `score` (queries logits), `decision` (queries labels), `noise`,
`transfer`, `ensemble` (AutoAttack). *Loss*: what the attack optimises (`margin` and `dlr` count as margin
losses, `ensemble` as both). *Min.*: a minimisation attack (reports per-point perturbation norms; `eps=None`
runs it unbounded). *Defaults*: the library keyword arguments used unless `params` overrides them (`null` =
derived from `eps` or the step count, as the description says); a norm in brackets lists what differs for that
norm.
"""


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), sort_keys=True, default=str).replace("|", "\\|")


def _defaults(defaults: Mapping[str, Mapping[str, Any]]) -> str:
    base = defaults.get("*", {})
    parts = [f"`{_json(base)}`"]
    for norm, values in sorted(defaults.items()):
        if norm == "*":
            continue
        differs = {k: v for k, v in values.items() if base.get(k, object()) != v}
        parts.append(f"[{norm}] `{_json(differs)}`")
    return " ".join(parts)


def attacks_markdown() -> str:
    """The Markdown page listing every registered attack: library, attack, norms, kind, loss, defaults,
    description."""
    lines = [
        _HEADER,
        "| library | attack | norms | kind | loss | min. | defaults | description |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (library, attack), info in sorted(ATTACKS.items()):
        description = info.description.replace("|", "\\|")
        lines.append(
            f"| {library} | `{attack}` | {', '.join(info.norms)} | {info.kind} | {info.loss or '-'} | "
            f"{'yes' if info.minimisation else ''} | {_defaults(info.defaults)} | {description} |"
        )
    lines.append("")
    lines.append(f"{len(ATTACKS)} attacks.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(attacks_markdown(), end="")
