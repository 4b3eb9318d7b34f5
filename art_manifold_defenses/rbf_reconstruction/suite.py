"""The attack suites of RBF-CNN's evaluation (paper Tables I, V, VII) for the package's harness.

- ``paper-rbf-cnn`` (:func:`paper_suite`): white-box attacks at l-inf 0.3 (FGSM, PGD, MI-FGSM, C&W), l1 15
  (PGD, EAD) and l2 2 (PGD, C&W); SPSA; a transfer attack from the ``surrogate_model`` given to ``evaluate``
  (the paper's black-box attacks use an undefended CNN); AutoAttack at l-inf 0.3 and l2 2 (``rand`` for the
  stochastic model); ART APGD-DLR (margin loss, ``pgd_steps`` steps) at l-inf 0.1 and 0.2, l1 15 and l2 2 (and
  l-inf 0.3 without AutoAttack), so that every budget has a cross-entropy and a margin-loss attack (Croce &
  Hein 2020). On an :class:`~art_manifold_defenses.rbf_reconstruction.RBFCNN` every gradient attack *is* the
  paper's BPDA + EoT: the BPDA gradient is inside the model's ``forward`` and the harness adds EoT
  (``eot_samples``, 50 in the paper).
- :func:`static_suite`: the paper's "static" attacks (adversarials crafted on the ``beta2 = 0`` model, i.e.
  ``surrogate_model = model.static_model()``) as transfer specs.

Step counts are not given in the paper; ``pgd_steps``/``cw_steps`` set them (the reproduction script scales
them).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SUITE_NAME", "paper_suite", "register_paper_suite", "static_suite"]

SUITE_NAME = "paper-rbf-cnn"
LINF, L1, L2 = 0.3, 15.0, 2.0


def paper_suite(
    *,
    norm: str | None = None,
    eps: float | None = None,
    pgd_steps: int = 40,
    cw_steps: int = 100,
    spsa_iters: int = 100,
    spsa_samples: int = 128,
    ead_search_steps: int = 5,
    cw_linf: bool = True,
    autoattack: bool = True,
    transfer: bool = True,
    margin: bool = True,
) -> list[Any]:
    """Table I / V attacks, each with its own norm and budget (``norm``/``eps`` are ignored).
    ``cw_linf=False`` drops ART's C&W l-inf (its constant search makes it the slowest attack on a CPU; smoke
    runs only). ``margin`` adds ART APGD-DLR with ``pgd_steps`` steps at every budget AutoAttack does not
    cover."""
    from ..evaluation import AttackSpec

    pgd = {"max_iter": pgd_steps}
    specs = [
        AttackSpec("art", "fgsm", "linf", LINF, name="FGSM linf 0.3"),
        AttackSpec("art", "pgd", "linf", LINF, pgd, name="PGD linf 0.3"),
        AttackSpec("art", "mim", "linf", LINF, {"max_iter": pgd_steps}, name="MI-FGSM linf 0.3"),
        AttackSpec("art", "pgd", "linf", 0.1, pgd, name="PGD linf 0.1"),
        AttackSpec("art", "pgd", "linf", 0.2, pgd, name="PGD linf 0.2"),
        *(
            [AttackSpec("art", "cw", "linf", LINF, {"max_iter": cw_steps}, name="C&W linf 0.3")]
            if cw_linf
            else []
        ),
        AttackSpec("art", "pgd", "l1", L1, pgd, name="PGD l1 15"),
        AttackSpec(
            "art",
            "ead",
            "l1",
            L1,
            {"max_iter": cw_steps, "binary_search_steps": ead_search_steps},
            name="EAD l1 15",
        ),
        AttackSpec("art", "pgd", "l2", L2, pgd, name="PGD l2 2"),
        AttackSpec("cleverhans", "cw", "l2", L2, {"max_iterations": cw_steps}, name="C&W l2 2"),
        AttackSpec(
            "cleverhans",
            "spsa",
            "linf",
            LINF,
            {"nb_iter": spsa_iters, "spsa_samples": spsa_samples},
            name="SPSA linf 0.3",
        ),
    ]
    if transfer:
        specs.append(
            AttackSpec(
                "transfer",
                "transfer",
                "linf",
                LINF,
                {"base": {"library": "art", "attack": "pgd", "params": pgd}},
                name="PGD linf 0.3 (black-box transfer)",
            )
        )
    if autoattack:
        specs += [
            AttackSpec("autoattack", "standard", "linf", LINF, name="AutoAttack linf 0.3"),
            AttackSpec("autoattack", "standard", "l2", L2, name="AutoAttack l2 2"),
        ]
    if margin:
        budgets = [
            ("linf", 0.1),
            ("linf", 0.2),
            *([] if autoattack else [("linf", LINF)]),
            ("l1", L1),
            ("l2", L2),
        ]
        specs += [
            AttackSpec("art", "apgd-dlr", n, e, {"max_iter": pgd_steps}, name=f"APGD-DLR {n} {e:g}")
            for n, e in budgets
        ]
    return specs


def static_suite(
    *, pgd_steps: int = 40, cw_steps: int = 100, ead_search_steps: int = 5, cw_linf: bool = True
) -> list[Any]:
    """The paper's static attacks: crafted on ``surrogate_model`` (pass the ``beta2 = 0`` model), scored on
    the real model."""
    from ..evaluation import AttackSpec

    def static(base: dict[str, Any], norm: str, eps: float, name: str) -> Any:
        return AttackSpec("transfer", "transfer", norm, eps, {"base": base}, name=f"{name} (static)")

    pgd = {"max_iter": pgd_steps}
    specs = [
        static({"library": "art", "attack": "fgsm"}, "linf", LINF, "FGSM linf 0.3"),
        static({"library": "art", "attack": "pgd", "params": pgd}, "linf", LINF, "PGD linf 0.3"),
        static(
            {"library": "art", "attack": "mim", "params": {"max_iter": pgd_steps}},
            "linf",
            LINF,
            "MI-FGSM linf 0.3",
        ),
        static(
            {"library": "art", "attack": "cw", "params": {"max_iter": cw_steps}}, "linf", LINF, "C&W linf 0.3"
        ),
        static({"library": "art", "attack": "pgd", "params": pgd}, "l1", L1, "PGD l1 15"),
        static(
            {
                "library": "art",
                "attack": "ead",
                "params": {"max_iter": cw_steps, "binary_search_steps": ead_search_steps},
            },
            "l1",
            L1,
            "EAD l1 15",
        ),
        static({"library": "art", "attack": "pgd", "params": pgd}, "l2", L2, "PGD l2 2"),
        static(
            {"library": "cleverhans", "attack": "cw", "params": {"max_iterations": cw_steps}},
            "l2",
            L2,
            "C&W l2 2",
        ),
    ]
    return [spec for spec in specs if cw_linf or spec.name != "C&W linf 0.3 (static)"]


def register_paper_suite(*, overwrite: bool = True) -> None:
    """Register :func:`paper_suite` as ``paper-rbf-cnn`` with the evaluation harness."""
    from ..evaluation import register_suite

    register_suite(
        SUITE_NAME,
        paper_suite,
        norms=None,
        description="paper 000 (RBF-CNN) Tables I/V + SPSA, transfer, AutoAttack, APGD-DLR",
        headline={"linf": LINF, "l1": L1, "l2": L2},
        overwrite=overwrite,
    )
