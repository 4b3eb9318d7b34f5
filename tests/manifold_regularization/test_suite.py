"""The paper-manifold-reg attack suite."""

from __future__ import annotations

import pytest

from art_manifold_defenses.manifold_regularization.suite import SUITE_NAME, paper_suite, register_paper_suite


def test_paper_suite_has_pgd_20_with_10_restarts_curves_and_autoattack() -> None:
    specs = paper_suite()
    pgd = [s for s in specs if s.attack == "pgd"]
    assert {s.norm for s in pgd} == {"linf", "l2"}
    assert all(s.params["max_iter"] == 20 and s.params["num_random_init"] == 10 for s in pgd)
    assert all(s.params["eps_step"] == pytest.approx(2.5 * s.eps / 20) for s in pgd)
    assert sorted(s.eps for s in pgd if s.norm == "linf") == pytest.approx([0.1, 0.2, 0.3, 0.4])
    auto = [s for s in specs if s.library == "autoattack"]
    assert [(s.norm, s.eps) for s in auto] == [("linf", 0.3), ("l2", 2.0)]
    cifar = paper_suite(dataset="cifar10", norm="linf", curves=False, autoattack=False, restarts=2)
    assert (
        len(cifar) == 2 and cifar[0].eps == pytest.approx(8 / 255) and cifar[0].params["num_random_init"] == 2
    )
    # without AutoAttack the headline gets the margin-loss twin (issue 25); every curve budget always has one
    assert (cifar[1].attack, cifar[1].eps) == ("apgd-dlr", pytest.approx(8 / 255))
    dlr = sorted(s.eps for s in specs if s.attack == "apgd-dlr" and s.norm == "linf")
    assert dlr == pytest.approx([0.1, 0.2, 0.4])  # the headline 0.3 has AutoAttack
    assert len(paper_suite(dataset="cifar10", norm="linf", curves=False, autoattack=False, margin=False)) == 1
    assert paper_suite(norm="l2", eps=1.5, curves=False)[0].eps == 1.5


def test_registration_and_errors() -> None:
    from art_manifold_defenses.evaluation import get_suite

    register_paper_suite()
    assert [s.label for s in get_suite(SUITE_NAME)] == [s.label for s in paper_suite()]
    with pytest.raises(ValueError, match="dataset"):
        paper_suite(dataset="imagenet")
    with pytest.raises(ValueError, match="norm="):
        paper_suite(eps=0.1)
    with pytest.raises(ValueError, match="restarts"):
        paper_suite(restarts=0)
    with pytest.raises(ValueError, match="norm"):
        paper_suite(norm="l1")
