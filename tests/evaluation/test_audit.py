"""The gradient-masking audit: every flag fires on a constructed case and stays quiet on a consistent one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.evaluation import AttackSpec, audit, measure_determinism, measure_gradients
from art_manifold_defenses.evaluation.audit import (
    check_attack_comparisons,
    check_determinism,
    check_gradients,
    check_margin_coverage,
)
from art_manifold_defenses.evaluation.runner import AttackResult

N = 100


def result(
    spec: AttackSpec, accuracy: float, *, error: str | None = None, violations: int = 0
) -> AttackResult:
    """A fake attack result: the first ``accuracy * N`` points are robust."""
    correct = np.arange(N) < round(accuracy * N)
    return AttackResult(
        spec=spec,
        correct=correct,
        seconds=1.0,
        norms=np.full(N, math.nan),
        error=error,
        violations=violations,
        violation_indices=list(range(violations)),
    )


def codes(flags) -> list[str]:  # noqa: ANN001
    return sorted(f.code for f in flags)


PGD = AttackSpec("art", "pgd", "linf", 0.3)
FGSM = AttackSpec("art", "fgsm", "linf", 0.3)
SQUARE = AttackSpec("art", "square", "linf", 0.3)
TRANSFER = AttackSpec("transfer", "transfer", "linf", 0.3, {"base": {"library": "art", "attack": "pgd"}})


def test_consistent_results_raise_no_flag() -> None:
    results = [
        result(FGSM, 0.40),
        result(PGD, 0.05),
        result(AttackSpec("foolbox", "pgd", "linf", 0.3), 0.06),
        result(SQUARE, 0.30),
        result(TRANSFER, 0.50),
        result(AttackSpec("art", "pgd", "linf", 0.1), 0.60),
        result(AttackSpec("art", "pgd", "linf", 0.2), 0.20),
        result(AttackSpec("art", "apgd-dlr", "linf", 0.1), 0.55),  # a margin loss at every reported budget
        result(AttackSpec("art", "apgd-dlr", "linf", 0.2), 0.15),
        result(AttackSpec("art", "apgd-dlr", "linf", 0.3), 0.04),
        result(AttackSpec("art", "pgd", "linf", 1.0), 0.0),
        result(AttackSpec("art", "cw", "l2", None), 0.0),
    ]
    assert audit(results, input_dim=784) == []


def test_one_step_beating_iterative_is_flagged() -> None:
    flags = check_attack_comparisons([result(FGSM, 0.10), result(PGD, 0.50)])
    assert codes(flags) == ["one_step_beats_iterative"]
    ev = flags[0].evidence
    assert ev["one_step_accuracy"] == pytest.approx(0.10) and ev["iterative_accuracy"] == pytest.approx(0.50)
    assert ev["points_only_one_step_breaks"] == 40
    # within the tolerance: quiet
    assert check_attack_comparisons([result(FGSM, 0.50), result(PGD, 0.505)], tolerance=0.01) == []
    # a one-step attack at a larger budget than the iterative one is not comparable
    big_fgsm = AttackSpec("art", "fgsm", "linf", 0.4)
    assert check_attack_comparisons([result(big_fgsm, 0.1), result(PGD, 0.5)]) == []


def test_transfer_beating_white_box_is_flagged() -> None:
    flags = check_attack_comparisons([result(TRANSFER, 0.10), result(PGD, 0.40), result(FGSM, 0.45)])
    assert codes(flags) == ["black_box_beats_white_box"]
    assert flags[0].evidence["best_white_box"] == PGD.label


def test_gradient_free_beating_gradient_based_is_flagged() -> None:
    flags = check_attack_comparisons([result(SQUARE, 0.10), result(PGD, 0.40)])
    assert codes(flags) == ["gradient_free_beats_gradient_based"]
    # beaten by one gradient attack but not by the best one: quiet
    assert check_attack_comparisons([result(SQUARE, 0.10), result(PGD, 0.05), result(FGSM, 0.40)]) == []
    # other norm: not comparable
    l2_pgd = AttackSpec("art", "pgd", "l2", 2.0)
    assert check_attack_comparisons([result(SQUARE, 0.10), result(l2_pgd, 0.40)]) == []


def test_accuracy_not_monotone_in_eps_is_flagged() -> None:
    sweep = [result(AttackSpec("art", "pgd", "linf", e), a) for e, a in ((0.1, 0.2), (0.2, 0.1), (0.3, 0.6))]
    flags = check_attack_comparisons(sweep)
    assert codes(flags) == ["accuracy_not_monotone_in_eps"]
    assert flags[0].evidence["eps"] == [0.2, 0.3]
    # different parameters are different attacks, not a sweep
    other = [result(AttackSpec("art", "pgd", "linf", 0.1, {"max_iter": 5}), 0.2), result(PGD, 0.6)]
    assert check_attack_comparisons(other) == []


def test_unbounded_attack_not_reaching_zero_is_flagged() -> None:
    cw = AttackSpec("art", "cw", "l2", None)
    assert codes(check_attack_comparisons([result(cw, 0.30)])) == ["unbounded_attack_not_zero"]
    assert check_attack_comparisons([result(cw, 0.0)]) == []
    big = AttackSpec("art", "pgd", "linf", 1.0)
    assert codes(check_attack_comparisons([result(big, 0.2)])) == ["unbounded_attack_not_zero"]
    assert (
        check_attack_comparisons([result(AttackSpec("art", "fgsm", "linf", 1.0), 0.2)]) == []
    )  # one step: exempt
    # l2 "large" depends on the input size: 0.5 * sqrt(784) = 14
    l2_big = AttackSpec("art", "pgd", "l2", 20.0)
    assert codes(check_attack_comparisons([result(l2_big, 0.2)], input_dim=784)) == [
        "unbounded_attack_not_zero"
    ]
    assert check_attack_comparisons([result(AttackSpec("art", "pgd", "l2", 2.0), 0.2)], input_dim=784) == []


def test_failed_attacks_and_violations_are_flagged_and_skipped_in_comparisons() -> None:
    flags = audit([result(FGSM, 0.0, error="RuntimeError: boom"), result(PGD, 0.5, violations=3)])
    # the failed FGSM is not compared; only a cross-entropy PGD is left at 0.3
    assert codes(flags) == ["attack_error", "cross_entropy_only_at_eps", "threat_model_violation"]
    violation = next(f for f in flags if f.code == "threat_model_violation")
    assert violation.evidence["violations"] == 3


def test_cross_entropy_only_budgets_are_flagged_per_norm() -> None:
    ce_only = [
        result(PGD, 0.40),
        result(AttackSpec("art", "pgd", "linf", 0.1), 0.85),
        result(AttackSpec("art", "pgd", "linf", 0.2), 0.44),
        result(SQUARE, 0.50),  # gradient-free: its margin loss does not count
        result(TRANSFER, 0.60),  # crafted on a surrogate: does not count
        result(AttackSpec("art", "pgd", "l2", 2.0), 0.30),
        result(AttackSpec("art", "pgd", "linf", 1.0), 0.0),  # the large-eps check is no reported budget
    ]
    flags = check_margin_coverage(ce_only)
    assert codes(flags) == ["cross_entropy_only_at_eps"] * 2
    linf = next(f for f in flags if f.evidence["norm"] == "linf")
    assert linf.evidence["eps"] == pytest.approx([0.1, 0.2, 0.3]) and "Croce & Hein 2020" in linf.reference
    assert set(linf.evidence["attacks_at_eps"]["0.3"]) == {PGD.label, SQUARE.label, TRANSFER.label}
    assert "cross_entropy_only_at_eps" in codes(audit(ce_only))  # part of the full audit
    # APGD-DLR at 0.3 and AutoAttack at 0.2 cover those budgets; 0.1 and l2 2 stay uncovered
    partial = [
        *ce_only,
        result(AttackSpec("art", "apgd-dlr", "linf", 0.3), 0.35),
        result(AttackSpec("autoattack", "rand", "linf", 0.2), 0.35),
    ]
    assert [(f.evidence["norm"], f.evidence["eps"]) for f in check_margin_coverage(partial)] == [
        ("l2", [2.0]),
        ("linf", [0.1]),
    ]


def test_margin_coverage_by_minimisation_attacks_and_failed_attacks() -> None:
    sweep = [result(AttackSpec("art", "pgd", "l2", e), 0.5) for e in (0.5, 1.0, 2.0)]
    unbounded_cw = result(AttackSpec("art", "cw", "l2", None), 0.0)
    assert check_margin_coverage([*sweep, unbounded_cw]) == []  # unbounded C&W covers every l2 budget
    bounded_cw = result(AttackSpec("art", "cw", "l2", 1.0), 0.2)  # covers 0.5 and 1.0, not 2.0
    assert check_margin_coverage([*sweep, bounded_cw])[0].evidence["eps"] == [2.0]
    deepfool = result(AttackSpec("art", "deepfool", "l2", None), 0.0)  # no margin loss of its own
    assert check_margin_coverage([*sweep, deepfool])[0].evidence["eps"] == [0.5, 1.0, 2.0]
    failed = result(AttackSpec("art", "apgd-dlr", "l2", 2.0), 0.0, error="RuntimeError: boom")
    assert check_margin_coverage([*sweep, unbounded_cw, failed]) == []
    # a failed attack did not run
    assert check_margin_coverage([*sweep, failed])[0].evidence["eps"] == [0.5, 1.0, 2.0]
    big = [result(AttackSpec("art", "pgd", "l2", 20.0), 0.0)]
    # 20 >= 0.5 sqrt(784): a sanity check, not a budget; without input_dim it is a budget
    assert check_margin_coverage(big, input_dim=784) == []
    assert codes(check_margin_coverage(big)) == ["cross_entropy_only_at_eps"]


class Quantise(nn.Module):
    """A masked toy defence: quantises the input (zero gradient almost everywhere), then a linear
    classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.round(x * 4).flatten(1) / 4)


class NaNGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):  # noqa: ANN001, ANN205
        return x.clone()

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        return grad * float("nan")


def data(n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.random((n, 1, 4, 4), dtype=np.float32), rng.integers(0, 3, n)


def test_zero_gradients_of_a_quantising_model_are_flagged() -> None:
    x, y = data()
    stats = measure_gradients(Quantise(), x, y)
    assert stats["zero_fraction"] == 1.0 and stats["n"] == len(x)
    assert codes(check_gradients(stats)) == ["zero_gradients"]
    assert "BPDA surrogate" in check_gradients(stats, bpda=True)[0].message
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    healthy = measure_gradients(linear, x, y)
    assert healthy["zero_fraction"] == 0.0 and healthy["median_norm"] > 0
    assert check_gradients(healthy) == []


def test_nonfinite_gradients_are_flagged() -> None:
    x, y = data()

    class Exploding(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(16, 3)

        def forward(self, inp: torch.Tensor) -> torch.Tensor:
            return self.linear(NaNGradient.apply(inp).flatten(1))

    stats = measure_gradients(Exploding(), x, y)
    assert stats["nonfinite_fraction"] == 1.0
    assert "nonfinite_gradients" in codes(check_gradients(stats))


class Noisy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1) + torch.randn_like(x.flatten(1)))


def test_nondeterministic_model_without_eot_is_flagged() -> None:
    x, _ = data()
    stats = measure_determinism(Noisy(), x)
    assert stats["max_logit_difference"] > 0
    flags = check_determinism(stats, eot=False, declared_stochastic=False)
    assert codes(flags) == ["nondeterministic_predictions"] and "stochastic = True" in flags[0].message
    assert "EoT was disabled" in check_determinism(stats, eot=False, declared_stochastic=True)[0].message
    assert check_determinism(stats, eot=True, declared_stochastic=True) == []
    steady = measure_determinism(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), x)
    assert steady["changed_fraction"] == 0 and steady["max_logit_difference"] == 0
    assert check_determinism(steady, eot=False, declared_stochastic=False) == []


def test_flags_serialise_to_json_safe_dicts() -> None:
    flag = check_attack_comparisons([result(AttackSpec("art", "cw", "l2", None), 0.3)])[0]
    d = flag.to_dict()
    assert set(d) == {"code", "message", "evidence", "reference"} and d["evidence"]["eps"] is None
    assert type(flag).from_dict(d).code == flag.code


@pytest.mark.parametrize("bad", [-0.1, 1.5, "x", True])
def test_bad_tolerances_raise(bad) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="tolerance"):
        check_attack_comparisons([result(PGD, 0.1)], tolerance=bad)
    with pytest.raises(ValueError, match="zero_gradient_fraction"):
        audit([], zero_gradient_fraction=bad)
