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
    assert sorted(s.eps for s in specs if s.library == "art" and s.attack == "pgd") == pytest.approx([0.1, 0.2, 0.3])


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
