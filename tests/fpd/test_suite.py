"""The paper-fpd attack suite: the paper's Table 2 attacks plus margin-loss, AutoAttack and transfer
attacks."""

from __future__ import annotations

import pytest

from art_manifold_defenses.evaluation import get_suite
from art_manifold_defenses.fpd.suite import paper_fpd_suite, register_paper_fpd_suite


def test_suite_has_the_paper_attacks_and_the_honest_additions() -> None:
    specs = paper_fpd_suite()
    by_name = {s.name: s for s in specs}
    for name in (
        "FGSM linf 0.3",
        "PGD linf 0.3",
        "C&W linf 0.3",
        "FGSM l2 1.5",
        "PGD l2 1.5",
        "C&W l2 1.5",
        "DeepFool l2 1.5",
    ):
        assert name in by_name
    pgd = by_name["PGD linf 0.3"]
    assert (pgd.library, pgd.norm, pgd.eps) == ("art", "linf", 0.3)
    assert dict(pgd.params) == {"max_iter": 100, "eps_step": 0.1, "num_random_init": 0}  # paper Sec. 4.2
    for norm, eps in (("linf", 0.3), ("l2", 1.5)):
        kinds = {(s.library, s.attack) for s in specs if s.norm == norm and s.eps == eps}
        assert {("art", "apgd-dlr"), ("autoattack", "standard"), ("transfer", "transfer")} <= kinds
    assert dict(by_name["AutoAttack linf 0.3"].params) == {"steps": 100, "n_queries": 5000}


def test_norm_eps_and_budget_options() -> None:
    l2 = paper_fpd_suite("l2", 0.5, budget="smoke")
    assert {s.norm for s in l2} == {"l2"} and {s.eps for s in l2} == {0.5}
    assert dict(next(s for s in l2 if s.attack == "pgd").params)["max_iter"] == 5
    with pytest.raises(ValueError, match="budget"):
        paper_fpd_suite(budget="huge")
    with pytest.raises(ValueError, match="norm"):
        paper_fpd_suite("l1")
    with pytest.raises(ValueError, match="eps needs a norm"):
        paper_fpd_suite(None, 0.1)


def test_registers_with_the_harness() -> None:
    name = register_paper_fpd_suite(budget="quick")
    specs = get_suite(name)
    assert len(specs) == len(paper_fpd_suite()) and dict(specs[1].params)["max_iter"] == 40
