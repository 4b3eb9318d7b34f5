"""Named suites: contents, budgets, norms, registration."""

from __future__ import annotations

import pytest

from art_manifold_defenses.evaluation import DEFAULT_EPS, AttackSpec, get_suite, register_suite, suite_names


def test_builtin_suites_exist_and_hold_valid_specs() -> None:
    assert {"quick", "linf", "l2", "l1", "autoattack", "full"} <= set(suite_names())
    for name in ("quick", "linf", "l2", "l1", "autoattack", "full"):
        specs = get_suite(name)
        assert specs and all(isinstance(s, AttackSpec) for s in specs)
        labels = [s.label for s in specs]
        assert len(set(labels)) == len(labels), name  # the runner needs unique labels


def test_quick_has_one_attack_per_library_and_an_audit_baseline() -> None:
    specs = get_suite("quick")
    assert {s.library for s in specs} == {"art", "foolbox", "cleverhans", "autoattack"}
    assert all(s.norm == "linf" and s.eps is not None and s.eps <= 0.3 + 1e-9 for s in specs)
    assert any(s.one_step for s in specs) and any(s.gradient_free for s in specs)
    assert sorted(s.eps for s in specs if s.library == "art" and s.attack == "pgd") == pytest.approx(
        [0.1, 0.2, 0.3]
    )


def test_budgets_and_norms() -> None:
    assert {s.eps for s in get_suite("autoattack")} == {0.3}
    assert all(s.norm == "l2" for s in get_suite("l2"))
    assert max(s.eps for s in get_suite("l2") if s.eps is not None) == DEFAULT_EPS["l2"]
    assert {s.eps for s in get_suite("quick", eps=8 / 255)} >= {8 / 255}
    assert all(s.norm == "l2" for s in get_suite("quick", norm="l2"))
    assert any(s.eps is None for s in get_suite("l1"))  # the unbounded check
    assert any(s.eps is not None and s.eps >= 1.0 for s in get_suite("linf"))  # the large-eps check
    full = get_suite("full", norm="l2", eps=1.5)
    assert {s.norm for s in full} == {"linf", "l2", "l1"}
    l2_budgets = {s.eps for s in full if s.norm == "l2"}
    assert l2_budgets >= {1.5} and DEFAULT_EPS["l2"] not in l2_budgets


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": "nope"}, "unknown suite"),
        ({"name": "l2", "norm": "linf"}, "supports norms"),
        ({"name": "autoattack", "norm": "l1"}, "supports norms"),
        ({"name": "quick", "eps": -1.0}, "eps"),
        ({"name": "full", "eps": 0.1}, "norm="),
    ],
)
def test_bad_requests_raise(kwargs, match) -> None:  # noqa: ANN001
    name = kwargs.pop("name")
    with pytest.raises(ValueError, match=match):
        get_suite(name, **kwargs)


def test_register_suite() -> None:
    def paper(*, norm: str, eps: float) -> list[AttackSpec]:
        return [AttackSpec("art", "pgd", norm, eps, {"max_iter": 7})]

    register_suite("test-paper-suite", paper, norms=("linf", "l2"), overwrite=True)
    assert "test-paper-suite" in suite_names()
    assert get_suite("test-paper-suite")[0].params["max_iter"] == 7
    assert get_suite("test-paper-suite", norm="l2")[0].eps == DEFAULT_EPS["l2"]
    with pytest.raises(ValueError, match="already registered"):
        register_suite("test-paper-suite", paper)
    with pytest.raises(TypeError, match="callable"):
        register_suite("bad", 3)  # type: ignore[arg-type]
    register_suite("test-bad-factory", lambda **kw: ["not a spec"], overwrite=True)
    with pytest.raises(TypeError, match="AttackSpec"):
        get_suite("test-bad-factory")


# ------------------------------------------------------------------------------------------------------------
# every reported epsilon gets a cross-entropy attack and a margin-loss attack (issue 25)
# ------------------------------------------------------------------------------------------------------------
#: (suite, norm passed to get_suite) for every built-in and paper suite and each norm it supports.
_SUITE_NORMS = [
    ("quick", "linf"),
    ("quick", "l2"),
    ("quick", "l1"),
    ("linf", "linf"),
    ("l2", "l2"),
    ("l1", "l1"),
    ("autoattack", "linf"),
    ("autoattack", "l2"),
    ("full", None),
    ("paper-fpd", None),
    ("paper-fpd", "linf"),
    ("paper-fpd", "l2"),
    ("paper-manifold-reg", None),
    ("paper-manifold-reg", "linf"),
    ("paper-manifold-reg", "l2"),
    ("paper-radial-mapping", None),
    ("paper-rbf-cnn", None),
]


def test_the_table_covers_every_suite() -> None:
    from art_manifold_defenses.evaluation.suites import PAPER_SUITES

    builtin = {"quick", "linf", "l2", "l1", "autoattack", "full"}
    assert {name for name, _ in _SUITE_NORMS} == builtin | set(PAPER_SUITES)


@pytest.mark.parametrize(("name", "norm"), _SUITE_NORMS)
def test_every_reported_eps_has_a_margin_loss_and_a_cross_entropy_attack(name: str, norm: str | None) -> None:
    from art_manifold_defenses.evaluation.audit import reported_budgets
    from art_manifold_defenses.evaluation.suites import suite_coverage_gaps, suite_headline

    specs = get_suite(name, norm=norm)
    budgets = reported_budgets(specs)
    assert budgets, name
    headline = suite_headline(name, norm=norm)
    for family, values in budgets.items():
        for eps in values:
            at = [s for s in specs if s.norm == family and s.eps is not None and s.eps == pytest.approx(eps)]
            margin = [s for s in at if s.margin_loss and not s.minimisation]
            assert margin, f"{name}: no margin-loss attack at {family} eps {eps:g}: {[s.label for s in at]}"
            named = [(s.library, s.attack) for s in margin]
            assert ("art", "apgd-dlr") in named or any(library == "autoattack" for library, _ in named)
            assert any(s.cross_entropy for s in at), f"{name}: no cross-entropy attack at {family} {eps:g}"
        if family in ("linf", "l2") and family in headline:
            assert any(
                s.library == "autoattack" and s.norm == family and s.eps == pytest.approx(headline[family])
                for s in specs
            ), f"{name}: no AutoAttack at the {family} headline {headline[family]:g}"
    assert suite_coverage_gaps(specs, headline) == []


def test_sanity_checks_are_not_reported_budgets() -> None:
    from art_manifold_defenses.evaluation.audit import reported_budgets

    linf = get_suite("linf")
    assert any(s.eps == 1.0 for s in linf)  # the large-eps PGD check is in the suite ...
    # ... but reports no budget; nor does the unbounded C&W of l2
    assert reported_budgets(linf) == {"linf": pytest.approx([0.075, 0.15, 0.225, 0.3])}
    assert reported_budgets(get_suite("l2")) == {"l2": pytest.approx([0.5, 1.0, 1.5, 2.0])}
    # l2 20 >= 0.5 sqrt(784) = 14 is a large-eps check when the input size is known
    assert reported_budgets([AttackSpec("art", "pgd", "l2", 20.0)], input_dim=784) == {}
    assert reported_budgets([AttackSpec("art", "pgd", "l2", 20.0)]) == {"l2": [20.0]}  # d unknown: reported


def test_quick_runs_a_cheaper_margin_loss_attack_at_its_smaller_eps() -> None:
    for norm, eps in (("linf", 0.3), ("l2", 2.0), ("l1", 15.0)):
        specs = get_suite("quick", norm=norm)
        dlr = [s for s in specs if (s.library, s.attack) == ("art", "apgd-dlr")]
        expected = [eps / 3, 2 * eps / 3] + ([eps] if norm == "l1" else [])  # l1 has no AutoAttack at eps
        assert sorted(s.eps for s in dlr) == pytest.approx(expected)
        # half APGD's default steps: fewer steps at the smaller budgets, not fewer losses
        assert all(s.params["max_iter"] == 50 for s in dlr)
        cross_entropy = sorted(s.eps for s in specs if (s.library, s.attack) == ("art", "pgd"))
        assert cross_entropy == pytest.approx([eps / 3, 2 * eps / 3, eps])
    before = [s.label for s in get_suite("quick") if s.attack != "apgd-dlr"]  # nothing was removed
    assert len(before) == 8 and sum(s.library == "autoattack" for s in get_suite("quick")) == 1


def test_coverage_gaps_of_a_cross_entropy_only_suite() -> None:
    from art_manifold_defenses.evaluation.suites import suite_coverage_gaps

    old_quick = [
        AttackSpec("art", "fgsm", "linf", 0.3),
        AttackSpec("art", "pgd", "linf", 0.3),
        AttackSpec("art", "pgd", "linf", 0.1),
        AttackSpec("art", "pgd", "linf", 0.2),
        AttackSpec("autoattack", "standard", "linf", 0.3),
        AttackSpec("art", "square", "linf", 0.3),
        AttackSpec("transfer", "transfer", "linf", 0.2),  # a transfer attack is no white-box margin attack
        AttackSpec("art", "cw", "linf", 0.3),  # a minimisation margin attack is not a fixed-budget one
    ]
    gaps = suite_coverage_gaps(old_quick, {"linf": 0.3})
    assert gaps == [
        "linf eps 0.1: no fixed-budget margin-loss attack (APGD-DLR, AutoAttack)",
        "linf eps 0.2: no fixed-budget margin-loss attack (APGD-DLR, AutoAttack)",
    ]
    only_margin = [AttackSpec("art", "apgd-dlr", "l2", 1.0), AttackSpec("art", "fgm", "l2", 1.0)]
    assert suite_coverage_gaps(only_margin, {"l2": 1.0}) == [
        "l2 eps 1: no iterative cross-entropy attack (PGD, APGD-CE, AutoAttack)",  # one step does not count
        "l2 headline eps 1: no AutoAttack",
    ]
    # no l1 AutoAttack to ask for
    l1_suite = [AttackSpec("art", "apgd-dlr", "l1", 5.0), AttackSpec("art", "apgd-ce", "l1", 5.0)]
    assert suite_coverage_gaps(l1_suite, {"l1": 5.0}) == []


def test_suite_headline() -> None:
    from art_manifold_defenses.evaluation.suites import suite_headline

    assert suite_headline("quick") == {"linf": 0.3}
    assert suite_headline("quick", norm="l2", eps=0.5) == {"l2": 0.5}
    assert suite_headline("full", norm="l2", eps=1.5) == {"linf": 0.3, "l2": 1.5, "l1": 15.0}
    assert suite_headline("paper-manifold-reg") == {"linf": 0.3, "l2": 2.0}  # not the 0.4 of the curve
    assert suite_headline("paper-fpd", norm="l2") == {"l2": 1.5}
    register_suite(
        "test-headless",
        lambda **kw: [AttackSpec("art", "pgd", "l2", 1.0), AttackSpec("art", "pgd", "l2", 3.0)],
        norms=None,
        overwrite=True,
    )
    # no headline registered: the largest reported budget
    assert suite_headline("test-headless") == {"l2": 3.0}
    with pytest.raises(ValueError, match="headline"):
        register_suite("test-bad-headline", lambda **kw: [], norms=None, headline={"l2": 0.0}, overwrite=True)
