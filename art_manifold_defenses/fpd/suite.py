"""The ``paper-fpd`` attack suite: the attacks of the FPD paper's Table 2 plus the honest additions the tanh
head needs.

The paper (Sec. 4.2, Table 2, MNIST) attacks with ART: FGSM, PGD (100 iterations, step 0.1, no random start)
and C&W in l-inf (eps 0.3) and l2 (eps 1.5), and DeepFool. The tanh classifier bounds the logits in (-1, 1),
which shrinks cross-entropy gradients, so the suite adds margin-loss attacks that do not depend on the softmax
scale (APGD with the DLR loss, AutoAttack standard), and a transfer attack from a plain substitute network
(``surrogate_model`` of ``evaluate``). The per-point worst case over them is the robust accuracy to report.

``budget="paper"`` keeps the paper's and AutoAttack's iteration counts; ``"quick"`` and ``"smoke"`` shrink
them for a CPU (documented in the returned specs' parameters). The evaluation package is imported lazily (a
defence folder does not need it to train).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BUDGETS", "PAPER_EPS", "paper_fpd_suite", "register_paper_fpd_suite"]

#: The paper's budgets on MNIST.
PAPER_EPS = {"linf": 0.3, "l2": 1.5}
BUDGETS = ("paper", "quick", "smoke")

# per budget: PGD iterations, C&W iterations, DeepFool iterations, APGD iterations, AutoAttack steps / Square
# queries
_ITERATIONS: dict[str, dict[str, int]] = {
    "paper": {"pgd": 100, "cw": 50, "deepfool": 50, "apgd": 100, "aa_steps": 100, "aa_queries": 5000},
    "quick": {"pgd": 40, "cw": 20, "deepfool": 20, "apgd": 50, "aa_steps": 50, "aa_queries": 500},
    "smoke": {"pgd": 5, "cw": 3, "deepfool": 3, "apgd": 5, "aa_steps": 5, "aa_queries": 20},
}


def paper_fpd_suite(norm: str | None = None, eps: float | None = None, *, budget: str = "paper") -> list[Any]:
    """The ``AttackSpec`` list of the ``paper-fpd`` suite (both norms, or only ``norm``; ``eps`` overrides its
    budget).

    Paper: Li et al. 2020 (paper 002), Section 4.2 and Table 2 (the attacks), plus margin-loss and transfer
    attacks.
    """
    from ..evaluation import AttackSpec

    if budget not in BUDGETS:
        raise ValueError(f"budget must be one of {BUDGETS}, got {budget!r}")
    if norm is not None and norm not in PAPER_EPS:
        raise ValueError(f"norm must be one of {tuple(PAPER_EPS)} or None, got {norm!r}")
    if eps is not None and norm is None:
        raise ValueError("eps needs a norm: the suite has one budget per norm")
    it = _ITERATIONS[budget]
    specs: list[Any] = []
    for threat in ("linf", "l2") if norm is None else (norm,):
        e = PAPER_EPS[threat] if eps is None else float(eps)
        pgd = {
            "max_iter": it["pgd"],
            "eps_step": 0.1,
            "num_random_init": 0,
        }  # paper Sec. 4.2 / ART 0.10 defaults
        if threat == "linf":
            specs += [
                AttackSpec("art", "fgsm", "linf", e, name=f"FGSM linf {e:g}"),
                AttackSpec("art", "pgd", "linf", e, params=pgd, name=f"PGD linf {e:g}"),
                AttackSpec("art", "cw", "linf", e, params={"max_iter": it["cw"]}, name=f"C&W linf {e:g}"),
            ]
        else:
            specs += [
                AttackSpec("art", "fgm", "l2", e, name=f"FGSM l2 {e:g}"),
                AttackSpec("art", "pgd", "l2", e, params=pgd, name=f"PGD l2 {e:g}"),
                AttackSpec("art", "cw", "l2", e, params={"max_iter": it["cw"]}, name=f"C&W l2 {e:g}"),
                AttackSpec(
                    "art", "deepfool", "l2", e, params={"max_iter": it["deepfool"]}, name=f"DeepFool l2 {e:g}"
                ),
            ]
        specs += [
            AttackSpec(
                "art", "apgd-dlr", threat, e, params={"max_iter": it["apgd"]}, name=f"APGD-DLR {threat} {e:g}"
            ),
            AttackSpec(
                "autoattack",
                "standard",
                threat,
                e,
                params={"steps": it["aa_steps"], "n_queries": it["aa_queries"]},
                name=f"AutoAttack {threat} {e:g}",
            ),
            AttackSpec(
                "transfer",
                "transfer",
                threat,
                e,
                params={"base": {"library": "art", "attack": "pgd", "params": pgd}},
                name=f"transfer PGD {threat} {e:g}",
            ),
        ]
    return specs


def register_paper_fpd_suite(
    *, budget: str = "paper", name: str = "paper-fpd", overwrite: bool = True
) -> str:
    """Register the suite with the evaluation harness under ``name`` (``amd evaluate --suite paper-fpd``).

    Paper: Li et al. 2020 (paper 002), Table 2; registers :func:`paper_fpd_suite` with the
    harness.
    """
    from ..evaluation import register_suite

    def factory(norm: str | None = None, eps: float | None = None) -> list[Any]:
        return paper_fpd_suite(norm, eps, budget=budget)

    register_suite(
        name,
        factory,
        norms=None,
        description="FPD paper Table 2 attacks + APGD-DLR, AutoAttack, transfer",
        headline=PAPER_EPS,
        overwrite=overwrite,
    )
    return name
