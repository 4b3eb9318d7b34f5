"""Docstrings of the defence and verification packages cite their paper where a paper is implemented.

What helps a reader (issue 21): every public class and function of the six packages below has a docstring; a
docstring that points into a paper (an equation, algorithm, section, table, figure, theorem/lemma/proposition
or appendix) also names which paper (an author or the project's id ``paper 00N``); and the functions that
implement the papers' equations (:data:`EQUATIONS`) name their paper and their equation. Helpers with no
paper behind them need no boilerplate saying so.
"""

from __future__ import annotations

import importlib
import inspect
import re

import pytest

#: Paper 000: Nandy, Hsu & Lee 2020 (RBF-CNN).
RBF = r"Nandy|paper 000"
#: Paper 001: Taghanaki et al. 2019 (radial-basis feature mapping); its segmentation attack is Xie et al. 2017
#: (DAG).
RADIAL = r"Taghanaki|paper 001"
#: Paper 002: Li, Ding, Luo & Liu 2020 (Feature Pyramid Decoder).
FPD = r"Li et al\.,? \(?2020|paper 002"
#: Paper 003: Jin & Rinard 2020 (manifold regularization).
MANIFOLD = r"Jin (?:&|and) Rinard|paper 003"
#: Paper 004: Li, Chen, Wang & Carin 2019 (Rényi smoothing / STN) and the baselines Cohen et al. 2019, Lecuyer
#: et al. 2019 (PixelDP).
SMOOTHING = r"Li et al\.,? \(?2019|paper 004|Cohen et al\.|Lecuyer et al\.|PixelDP"
#: Verification: Tjeng, Xiao & Tedrake 2019 (MIPVerify), Xiao et al. 2019, Wong & Kolter 2018, Zhang
#: et al. 2018 (CROWN), Gowal et al. 2018 (IBP), and paper 003 whose verified accuracy it reproduces.
VERIFICATION = (
    r"Tjeng|Xiao et al\.|Wong (?:&|and) Kolter|Wong et al\.|Zhang et al\.|Gowal et al\.|" + MANIFOLD
)

PACKAGES: dict[str, str] = {
    "art_manifold_defenses.rbf_reconstruction": RBF,
    "art_manifold_defenses.radial_mapping": RADIAL,
    "art_manifold_defenses.fpd": FPD,
    "art_manifold_defenses.manifold_regularization": MANIFOLD,
    "art_manifold_defenses.smoothing": SMOOTHING,
    "art_manifold_defenses.verification": VERIFICATION,
}

_NUMBER = r"(?:\d+|[IVX]+\b|[A-H]\b)"
#: Where in the paper: "eq. 2", "eqs. (2)-(5)", "Equation 11", "Algorithm 1", "Section III-b", "Sec. 3.1",
#: "Table 2", "Table IV", "Fig. 2a", "Figure 1", "Theorem 2", "Lemma 1", "Proposition 5.1", "Appendix B".
LOCATION = re.compile(
    r"\b(?:eqn?s?\.?\s*\(?\d|equations?\s*\(?\d|algorithm\s+\d|sections?\s+"
    + _NUMBER
    + r"|sec\.\s*"
    + _NUMBER
    + r"|tables?\s+"
    + _NUMBER
    + r"|fig(?:ure|\.)\s*\d|theorem\s+\d|lemma\s+\d|proposition\s+\d|appendix\s+[A-Z])",
    re.IGNORECASE,
)


def docstring_problems(obj: object, paper: str, *, needs_location: bool = False) -> list[str]:
    """What is missing from ``obj``'s docstring: ``"docstring"``; ``"paper"`` when it points into a paper (or
    ``needs_location``) without naming one of ``paper``; ``"equation"`` when ``needs_location`` and it points
    nowhere."""
    doc = inspect.getdoc(obj)
    if not doc or not doc.strip():
        return ["docstring"]
    located = bool(LOCATION.search(doc))
    problems = []
    if (located or needs_location) and not re.search(paper, doc, re.IGNORECASE):
        problems.append("paper")
    if needs_location and not located:
        problems.append("equation")
    return problems


#: The papers' equations and the functions that implement them: each must name its paper and this reference.
EQUATIONS: dict[str, dict[str, str]] = {
    "art_manifold_defenses.rbf_reconstruction": {
        "compute_weights": r"eq\. 2",
        "fit_rbf_filters": r"eq\. 3",
        "stitch_patches": r"eq\. 4",
        "match_scores": r"eq\. 2",
    },
    "art_manifold_defenses.radial_mapping": {
        "RadialBasisMapping": r"eqs?\. \(?2",
        "add_radial_mapping": r"eq\. \(?5",
    },
    "art_manifold_defenses.fpd": {"FPDTrainer": r"Algorithm 1", "FeaturePyramidDecoder": r"Algorithm 1"},
    "art_manifold_defenses.manifold_regularization": {
        "intrinsic_regularizer": r"eq\. 11",
        "hamming_relaxation": r"eq\. 14",
        "hamming_regularizer": r"eq\. 13",
        "hamming_term_from_distances": r"eq\. 13",
        "dense_intrinsic_regularizer": r"eq\. 2",
        "ManifoldRegularizationTrainer": r"eq\. 15",
    },
    "art_manifold_defenses.smoothing": {
        "renyi_radius": r"Theorem 2",
        "cohen_radius": r"Theorem 1",
        "pixeldp_radius": r"Proposition 1",
        "certify_from_counts": r"Algorithm 1",
    },
    "art_manifold_defenses.verification": {
        "verify": r"eq\. 5",
        "interval_bounds": r"eq\. 5",
        "solve_margin": r"eq\. 5",
    },
}


def _public_callables(package: str) -> list[tuple[str, object]]:
    module = importlib.import_module(package)
    names = getattr(module, "__all__", None)
    assert names, f"{package} has no __all__"
    return [
        (n, getattr(module, n))
        for n in names
        if inspect.isclass(getattr(module, n)) or inspect.isfunction(getattr(module, n))
    ]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_every_public_name_has_a_docstring_that_names_the_paper_it_points_into(package: str) -> None:
    names = _public_callables(package)
    assert len(names) >= 5, f"{package}: expected public classes/functions in __all__"
    missing = {
        name: problems for name, obj in names if (problems := docstring_problems(obj, PACKAGES[package]))
    }
    assert not missing, (
        f"{package}: these public names lack a docstring, or point into a paper without naming it "
        f"({PACKAGES[package]}): {missing}"
    )


@pytest.mark.parametrize("package", sorted(EQUATIONS))
def test_the_equations_name_their_paper_and_number(package: str) -> None:
    module = importlib.import_module(package)
    for name, reference in EQUATIONS[package].items():
        obj = getattr(module, name)
        assert docstring_problems(obj, PACKAGES[package], needs_location=True) == [], name
        assert re.search(reference, inspect.getdoc(obj) or ""), f"{package}.{name} does not cite {reference}"


def test_checker_rejects_missing_or_vague_docstrings() -> None:
    def undocumented() -> None:
        pass

    def no_reference() -> None:
        """Compute the weights from the match scores."""

    def paper_without_location() -> None:
        """Compute the weights (Nandy, Hsu and Lee 2020)."""

    def location_without_paper() -> None:
        """Compute the weights, eq. 4."""

    def other_paper() -> None:
        """Compute the weights (Taghanaki et al. 2019, eq. 4)."""

    assert docstring_problems(undocumented, RBF) == ["docstring"]
    assert docstring_problems(no_reference, RBF) == []  # a helper: nothing to cite
    assert docstring_problems(no_reference, RBF, needs_location=True) == ["paper", "equation"]
    assert docstring_problems(paper_without_location, RBF, needs_location=True) == ["equation"]
    assert docstring_problems(location_without_paper, RBF) == ["paper"]
    assert docstring_problems(other_paper, RBF) == ["paper"]


@pytest.mark.parametrize(
    "text",
    [
        "Nandy, Hsu and Lee 2020 (paper 000), Section III-a, eq. 2.",
        "Paper: Taghanaki et al. 2019 (paper 001), eqs. (2)-(5).",
        "Li et al. 2020 (paper 002), Algorithm 1.",
        "Jin & Rinard 2020 (paper 003), Appendix B.",
        "Li et al. 2019 (paper 004), Theorem 2.",
        "Cohen et al. 2019, Table 1.",
        "Paper 001, Fig. 2; a helper.",
    ],
)
def test_checker_accepts_real_references(text: str) -> None:
    def documented() -> None:
        pass

    documented.__doc__ = text
    paper = "|".join(PACKAGES.values())
    assert docstring_problems(documented, paper, needs_location=True) == []
