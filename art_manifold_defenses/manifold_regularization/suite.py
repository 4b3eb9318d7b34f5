"""The attack suite of paper 003 (``paper-manifold-reg``): PGD-20 with 10 restarts (step 2.5 eps / 20, the
robustness library's setting used by Jin & Rinard), l-inf and l2, the robustness curves of Figure 2, and
AutoAttack ``standard`` (the paper used AutoAttack+ "full"; ``standard`` is the harness's fixed-budget
AutoAttack). Every budget of the curves also gets ART APGD-DLR (100 steps; the headline too when AutoAttack is
off): a cross-entropy PGD alone gives an upper bound that a margin loss can lower (Croce & Hein 2020), so each
point of the curve has both losses.

Budgets: MNIST l-inf 0.3 and l2 2.0 (Figure 2 spans 0-0.4 and 0-6); CIFAR-10 l-inf 8/255 and l2 0.5 (Table 1).
The evaluation harness is imported lazily, so this defence package does not depend on it at import time.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CURVES", "HEADLINE", "SUITE_NAME", "paper_suite", "register_paper_suite"]

SUITE_NAME = "paper-manifold-reg"
#: headline budgets per dataset family and norm
HEADLINE: dict[str, dict[str, float]] = {
    "mnist": {"linf": 0.3, "l2": 2.0},
    "cifar10": {"linf": 8 / 255, "l2": 0.5},
}
#: extra budgets of the Figure 2 robustness curves
CURVES: dict[str, dict[str, tuple[float, ...]]] = {
    "mnist": {"linf": (0.1, 0.2, 0.4), "l2": (1.0, 4.0, 6.0)},
    "cifar10": {"linf": (2 / 255, 4 / 255, 16 / 255), "l2": (0.25, 1.0, 2.0)},
}


def paper_suite(
    *,
    norm: str | None = None,
    eps: float | None = None,
    dataset: str = "mnist",
    restarts: int = 10,
    steps: int = 20,
    curves: bool = True,
    autoattack: bool = True,
    margin: bool = True,
) -> list[Any]:
    """The paper's evaluation as a list of ``AttackSpec``.

    Args:
        norm: ``"linf"`` or ``"l2"`` for one threat model, ``None`` for both.
        eps: replaces the headline budget of ``norm`` (only with ``norm``).
        dataset: ``"mnist"`` or ``"cifar10"`` budgets.
        restarts, steps: PGD restarts (paper: 10) and steps (paper: 20); step size 2.5 eps / steps.
        curves: add PGD at the other budgets of Figure 2.
        autoattack: add AutoAttack ``standard`` at the headline budgets.
        margin: add ART APGD-DLR (margin loss, 100 steps) at every budget that AutoAttack does not cover.
    """
    from ..evaluation import AttackSpec

    if dataset not in HEADLINE:
        raise ValueError(f"dataset must be one of {sorted(HEADLINE)}, got {dataset!r}")
    if eps is not None and norm is None:
        raise ValueError("paper-manifold-reg covers linf and l2: pass norm= together with eps=")
    if isinstance(restarts, bool) or not isinstance(restarts, int) or restarts < 1:
        raise ValueError(f"restarts must be a positive integer, got {restarts!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    norms = ("linf", "l2") if norm is None else (norm,)
    specs = []
    for family in norms:
        if family not in ("linf", "l2"):
            raise ValueError(f"norm must be 'linf', 'l2' or None, got {family!r}")
        budget = HEADLINE[dataset][family] if eps is None else float(eps)
        pgd = {"max_iter": steps, "num_random_init": restarts, "eps_step": 2.5 * budget / steps}
        specs.append(
            AttackSpec(
                "art", "pgd", family, budget, pgd, name=f"PGD-{steps}x{restarts} {family} {budget:.4g}"
            )
        )
        if curves:
            for point in CURVES[dataset][family]:
                params = {"max_iter": steps, "num_random_init": restarts, "eps_step": 2.5 * point / steps}
                specs.append(
                    AttackSpec(
                        "art",
                        "pgd",
                        family,
                        point,
                        params,
                        name=f"PGD-{steps}x{restarts} {family} {point:.4g}",
                    )
                )
        if margin:
            points = [*(CURVES[dataset][family] if curves else ()), *(() if autoattack else (budget,))]
            specs += [
                AttackSpec("art", "apgd-dlr", family, point, name=f"APGD-DLR {family} {point:.4g}")
                for point in sorted(points)
            ]
        if autoattack:
            specs.append(
                AttackSpec("autoattack", "standard", family, budget, name=f"AutoAttack {family} {budget:.4g}")
            )
    return specs


def register_paper_suite(*, overwrite: bool = True) -> None:
    """Register :func:`paper_suite` (MNIST budgets by default) as ``paper-manifold-reg`` with the harness."""
    from ..evaluation import register_suite

    register_suite(
        SUITE_NAME,
        paper_suite,
        norms=None,
        overwrite=overwrite,
        headline=HEADLINE["mnist"],
        description="paper 003: PGD-20x10 linf/l2, Figure 2 curves, APGD-DLR, AutoAttack standard",
    )
