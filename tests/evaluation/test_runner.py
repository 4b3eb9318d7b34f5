"""The runner: per-point worst case, threat-model checks, EoT/BPDA wiring, majority vote, resume, errors.

Most tests use a toy "threshold" model and fake attack functions, so the expected outcome of every point is
known exactly; one test runs real adapters end to end on a trained tiny CNN.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.evaluation import (
    BPDA,
    AttackSpec,
    EoT,
    evaluate,
    threat_model_violations,
    worst_case,
)
from art_manifold_defenses.evaluation.runner import DEFAULT_EOT_SAMPLES, DEFAULT_REPEATS, _score
from art_manifold_defenses.fingerprint import FingerprintMismatchError


class Threshold(nn.Module):
    """Two classes: class 1 iff pixel (0, 0, 0) > 0.5. Pixel (0, 1, 1) carries the point's id (i / 100)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x[:, 0, 0, 0]
        return torch.stack([0.5 - v, v - 0.5], dim=1) * 10


def toy_data(n: int = 8, wrong: tuple[int, ...] = (7,)) -> tuple[np.ndarray, np.ndarray]:
    """Points alternate classes (pixel 0.4 or 0.6); labels of ``wrong`` are flipped (misclassified clean)."""
    x = np.zeros((n, 1, 4, 4), dtype=np.float32)
    y = np.arange(n) % 2
    x[:, 0, 0, 0] = np.where(y == 1, 0.6, 0.4)
    x[:, 0, 1, 1] = np.arange(n) / 100
    y = y.copy()
    for i in wrong:
        y[i] = 1 - y[i]
    return x, y.astype(np.int64)


def point_ids(x: np.ndarray) -> np.ndarray:
    return np.rint(x[:, 0, 1, 1] * 100).astype(int)


class FakeAttacks:
    """``attack_fn`` replacement: flips the class of the points listed per attack name by moving pixel 0 by
    ``shift`` (0.2 stays within linf eps 0.3); records every call."""

    def __init__(
        self,
        breaks: dict[str, set[int]],
        shift: float = 0.2,
        violate: dict[str, dict[int, str]] | None = None,
    ):
        self.breaks, self.shift, self.violate = breaks, shift, violate or {}
        self.calls: list[tuple[AttackSpec, nn.Module, np.ndarray, int]] = []

    def __call__(self, spec, model, x, y, *, device, seed, batch_size, surrogate_model, verbose):  # noqa: ANN001
        self.calls.append((spec, model, point_ids(x), seed))
        adv = x.copy()
        ids = point_ids(x)
        for row, pid in enumerate(ids):
            if pid in self.breaks.get(spec.label, set()):
                direction = -1.0 if x[row, 0, 0, 0] > 0.5 else 1.0
                adv[row, 0, 0, 0] += direction * self.shift
            how = self.violate.get(spec.label, {}).get(pid)
            if how == "norm":  # flips the class, but with a 0.5 perturbation > eps
                adv[row, 0, 0, 0] += -0.5 if x[row, 0, 0, 0] > 0.5 else 0.5
            elif how == "box":  # flips the class by leaving [0, 1]
                adv[row, 0, 0, 0] = -0.2 if x[row, 0, 0, 0] > 0.5 else 1.2
        return adv


def spec(name: str, **kw) -> AttackSpec:  # noqa: ANN003
    base = {"library": "art", "attack": "pgd", "norm": "linf", "eps": 0.3}
    base.update(kw)
    return AttackSpec(name=name, **base)


def run(model, x, y, suite, fake, **kw):  # noqa: ANN001, ANN003
    kw.setdefault("verbose", False)
    return evaluate(model, x, y, suite, attack_fn=fake, **kw)


def test_worst_case_helper_is_per_point() -> None:
    clean = np.array([1, 1, 1, 1, 0], dtype=bool)
    a = np.array([0, 1, 1, 1, 0], dtype=bool)
    b = np.array([1, 0, 1, 1, 0], dtype=bool)
    np.testing.assert_array_equal(worst_case(clean, [a, b]), [0, 0, 1, 1, 0])
    with pytest.raises(ValueError, match="shape"):
        worst_case(clean, [a[:3]])


def test_robust_accuracy_is_per_point_worst_case_not_best_single_attack() -> None:
    x, y = toy_data()
    fake = FakeAttacks({"A": {0, 1}, "B": {2, 3}})
    result = run(Threshold(), x, y, [spec("A"), spec("B", attack="bim")], fake, run_audit=False)
    assert result.clean_accuracy == pytest.approx(7 / 8)
    assert result.accuracy_per_attack == {"A": pytest.approx(5 / 8), "B": pytest.approx(5 / 8)}
    np.testing.assert_array_equal(result.robust_correct, [0, 0, 0, 0, 1, 1, 1, 0])
    assert result.robust_accuracy == pytest.approx(3 / 8)  # not min(5/8, 5/8)
    # only clean-correct points are attacked
    assert all(7 not in ids for _, _, ids, _ in fake.calls)
    assert result.attacks[0].attacked == 7


def test_threat_model_violations_helper() -> None:
    x = np.full((4, 1, 2, 2), 0.5, dtype=np.float32)
    adv = x.copy()
    adv[0, 0, 0, 0] += 0.3  # exactly eps: fine
    adv[1, 0, 0, 0] += 0.31  # over eps
    adv[2, 0, 0, 0] = 1.01  # over eps and outside the box
    adv[3, 0, 0, 0] = np.nan
    np.testing.assert_array_equal(threat_model_violations(x, adv, "linf", 0.3), [False, True, True, True])
    # unbounded: only the box and finiteness count
    np.testing.assert_array_equal(threat_model_violations(x, adv, "linf", None), [False, False, True, True])
    # l2: 4 pixels moved by 0.2 -> norm 0.4
    adv2 = x + 0.2
    np.testing.assert_array_equal(threat_model_violations(x, adv2, "l2", 0.4), [False] * 4)
    np.testing.assert_array_equal(threat_model_violations(x, adv2, "l2", 0.39), [True] * 4)
    with pytest.raises(ValueError, match="shape"):
        threat_model_violations(x, adv[:2], "linf", 0.3)


def test_violations_are_discarded_scored_clean_and_flagged() -> None:
    x, y = toy_data()
    suite = [spec("bounded"), spec("unbounded", attack="cw", norm="l2", eps=None)]
    fake = FakeAttacks({"bounded": {0}}, violate={"bounded": {1: "norm"}, "unbounded": {2: "box", 3: "norm"}})
    result = run(Threshold(), x, y, suite, fake)
    bounded, unbounded = result.attacks
    assert bounded.violations == 1 and bounded.violation_indices == [1]
    assert bool(bounded.correct[1])  # discarded: scored on the clean input
    assert not bounded.correct[0]  # the honest adversarial still counts
    assert unbounded.violations == 1 and unbounded.violation_indices == [
        2
    ]  # large l2 change is fine when unbounded
    assert not unbounded.correct[3]
    flags = [f for f in result.audit_flags if f.code == "threat_model_violation"]
    assert {f.evidence["attack"] for f in flags} == {"bounded", "unbounded"}


def test_attack_error_is_recorded_flagged_and_left_out() -> None:
    x, y = toy_data()

    def broken(spec, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        if spec.label == "bad":
            raise RuntimeError("library exploded")
        return FakeAttacks({"good": {0}})(spec, *args, **kwargs)

    with pytest.warns(UserWarning, match="library exploded"):
        result = evaluate(
            Threshold(), x, y, [spec("good"), spec("bad", attack="bim")], attack_fn=broken, verbose=False
        )
    assert result.attacks[1].error is not None and "library exploded" in result.attacks[1].error
    assert result.robust_accuracy == pytest.approx(6 / 8)
    assert "attack_error" in [f.code for f in result.audit_flags]
    with pytest.raises(RuntimeError, match="library exploded"):
        evaluate(
            Threshold(), x, y, [spec("bad", attack="bim")], attack_fn=broken, verbose=False, raise_errors=True
        )


def test_resume_skips_finished_attacks(tmp_path) -> None:  # noqa: ANN001
    x, y = toy_data()
    suite = [spec("A"), spec("B", attack="bim")]
    first = FakeAttacks({"A": {0}, "B": {1}})
    r1 = run(Threshold(), x, y, suite, first, out_dir=tmp_path, run_audit=False)
    assert len(first.calls) == 2
    assert len(list((tmp_path / "attacks").glob("*.json"))) == 2
    again = FakeAttacks({"A": {0}, "B": {1}})
    r2 = run(Threshold(), x, y, suite, again, out_dir=tmp_path, run_audit=False)
    assert again.calls == []
    assert r2.robust_accuracy == r1.robust_accuracy
    np.testing.assert_array_equal(r2.robust_correct, r1.robust_correct)
    # another seed (or other data, or another model) is a different run: refused, never mixed; overwrite
    # starts afresh
    third = FakeAttacks({"A": {0}, "B": {1}})
    with pytest.raises(FingerprintMismatchError, match=r"another run; what differs .*seed: 0 -> 1"):
        run(Threshold(), x, y, suite, third, out_dir=tmp_path, run_audit=False, seed=1)
    assert third.calls == []
    run(Threshold(), x, y, suite, third, out_dir=tmp_path, run_audit=False, seed=1, overwrite=True)
    assert len(third.calls) == 2


def test_interrupted_run_resumes_with_the_missing_attack(tmp_path) -> None:  # noqa: ANN001
    x, y = toy_data()
    suite = [spec("A"), spec("B", attack="bim")]
    calls: list[str] = []

    def dies_on_b(spec, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        calls.append(spec.label)
        if spec.label == "B":
            raise KeyboardInterrupt
        return FakeAttacks({"A": {0}})(spec, *args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        evaluate(Threshold(), x, y, suite, attack_fn=dies_on_b, out_dir=tmp_path, verbose=False)
    fake = FakeAttacks({"A": {0}, "B": {1}})
    result = run(Threshold(), x, y, suite, fake, out_dir=tmp_path)
    assert [c[0].label for c in fake.calls] == ["B"]
    assert result.robust_accuracy == pytest.approx(5 / 8)
    record = json.loads((tmp_path / "results.json").read_text())
    assert record["robust_accuracy"] == pytest.approx(5 / 8)


def test_seeds_are_reproducible_and_independent_of_suite_order() -> None:
    x, y = toy_data()
    a, b = spec("A"), spec("B", attack="bim")
    f1, f2 = FakeAttacks({}), FakeAttacks({})
    run(Threshold(), x, y, [a, b], f1, run_audit=False)
    run(Threshold(), x, y, [b, a], f2, run_audit=False)
    seeds1 = {s.label: seed for s, _, _, seed in f1.calls}
    seeds2 = {s.label: seed for s, _, _, seed in f2.calls}
    assert seeds1 == seeds2 and seeds1["A"] != seeds1["B"]


class NoisyThreshold(Threshold):
    """A stochastic model: adds Gaussian noise to the decision pixel; declares ``stochastic = True``."""

    stochastic = True

    def __init__(self, sigma: float = 0.05) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noisy = x.clone()
        noisy[:, 0, 0, 0] += self.sigma * torch.randn(len(x), device=x.device)
        return super().forward(noisy)


def test_stochastic_model_gets_eot_repeats_and_rand_autoattack() -> None:
    x, y = toy_data()
    suite = [spec("pgd"), spec("square", attack="square"), AttackSpec("autoattack", "standard", "linf", 0.3)]
    fake = FakeAttacks({})
    result = run(NoisyThreshold(), x, y, suite, fake)
    by_attack: dict[str, list] = {}
    for s, model, _, _ in fake.calls:
        by_attack.setdefault(s.attack, []).append(model)
    assert len(by_attack["pgd"]) == DEFAULT_REPEATS  # worst of R repeats
    assert all(isinstance(m, EoT) and m.samples == DEFAULT_EOT_SAMPLES for m in by_attack["pgd"])
    assert all(not isinstance(m, EoT) for m in by_attack["square"])  # gradient-free: queries the model itself
    assert "standard" not in by_attack and all(not isinstance(m, EoT) for m in by_attack["rand"])  # own EoT
    rand_specs = [s for s, _, _, _ in fake.calls if s.attack == "rand"]
    assert all(
        s.params["eot_iter"] == DEFAULT_EOT_SAMPLES for s in rand_specs
    )  # the run's EoT budget, not AA's 20
    assert result.attacks[2].note and "rand" in result.attacks[2].note
    assert result.settings["stochastic"] and result.settings["votes"] > 1
    seeds = [seed for s, _, _, seed in fake.calls if s.attack == "pgd"]
    assert len(set(seeds)) == DEFAULT_REPEATS


def test_stochastic_model_keeps_autoattack_params_that_rand_accepts() -> None:
    x, y = toy_data()
    suite = [
        AttackSpec("autoattack", "standard", "linf", 0.3, {"steps": 50, "n_queries": 500})
    ]  # the quick suite's
    fake = FakeAttacks({})
    result = run(NoisyThreshold(), x, y, suite, fake, repeats=1)
    called = fake.calls[0][0]
    assert called.attack == "rand" and dict(called.params) == {"steps": 50, "eot_iter": DEFAULT_EOT_SAMPLES}
    assert "n_queries" in (result.attacks[0].note or "")


def test_worst_of_repeats_counts_a_point_broken_in_any_repeat() -> None:
    x, y = toy_data()
    count = {"n": 0}

    def second_repeat_breaks(spec, model, x, y, **kwargs):  # noqa: ANN001, ANN003
        count["n"] += 1
        breaks = {"A": {0}} if count["n"] == 2 else {}
        return FakeAttacks(breaks)(spec, model, x, y, **kwargs)

    result = evaluate(
        NoisyThreshold(sigma=1e-4),
        x,
        y,
        [spec("A")],
        attack_fn=second_repeat_breaks,
        verbose=False,
        repeats=3,
        votes=3,
        run_audit=False,
    )
    assert count["n"] == 3
    assert not result.attacks[0].correct[0] and result.robust_accuracy == pytest.approx(6 / 8)


def test_bpda_surrogate_is_wired_for_gradient_attacks_only() -> None:
    x, y = toy_data()
    model = Threshold()
    model.bpda_surrogate = nn.Identity()  # type: ignore[assignment]
    fake = FakeAttacks({})
    result = run(model, x, y, [spec("pgd"), spec("square", attack="square")], fake)
    models = {s.attack: m for s, m, _, _ in fake.calls}
    assert isinstance(models["pgd"], BPDA) and models["pgd"].surrogate is model.bpda_surrogate
    assert models["square"] is model
    assert result.attacks[0].bpda and not result.attacks[1].bpda


def test_majority_vote_scoring() -> None:
    class Cycle(nn.Module):
        """Predicts class 0 on calls 1 and 3, class 1 on call 2, and so on (period 3)."""

        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            cls = 1 if self.calls % 3 == 2 else 0
            return nn.functional.one_hot(torch.full((len(x),), cls), 2).float()

    x = np.zeros((3, 1, 2, 2), dtype=np.float32)
    y = np.array([0, 1, 0])
    ok = _score(Cycle(), x, y, votes=3, seed=0, device=torch.device("cpu"), batch_size=8, num_classes=2)
    np.testing.assert_array_equal(ok, [True, False, True])  # 2 votes for class 0, 1 for class 1
    # a tie is not a win
    ok = _score(Cycle(), x, y, votes=2, seed=0, device=torch.device("cpu"), batch_size=8, num_classes=2)
    np.testing.assert_array_equal(ok, [False, False, False])


def test_art_classifier_is_accepted_and_attributes_are_read_through_the_wrapper() -> None:
    from art_manifold_defenses.estimator import to_art_classifier

    x, y = toy_data()
    model = NoisyThreshold(sigma=1e-4)
    clf = to_art_classifier(model, input_shape=(1, 4, 4), nb_classes=2)
    fake = FakeAttacks({"A": {0}})
    result = run(clf, x, y, [spec("A")], fake, repeats=1, votes=3, eot_samples=2)
    assert result.settings["stochastic"]
    assert isinstance(fake.calls[0][1], EoT) and fake.calls[0][1].samples == 2
    assert result.robust_accuracy == pytest.approx(6 / 8)


def test_art_classifier_with_a_stochastic_preprocessor_is_treated_as_stochastic() -> None:
    from art.preprocessing import PreprocessorPyTorch

    from art_manifold_defenses.estimator import to_art_classifier

    class NoisePre(PreprocessorPyTorch):
        stochastic = True

        def __init__(self) -> None:
            super().__init__(device_type="cpu", is_fitted=True, apply_fit=False, apply_predict=True)

        def forward(self, x: torch.Tensor, y: object = None) -> tuple[torch.Tensor, object]:
            return x + 1e-4 * torch.randn_like(x), y

    x, y = toy_data()
    deterministic = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    clf = to_art_classifier(
        deterministic, input_shape=(1, 4, 4), nb_classes=2, preprocessing_defences=[NoisePre()]
    )
    fake = FakeAttacks({})
    result = run(clf, x, y, [spec("A")], fake, repeats=1, votes=3, eot_samples=2)
    assert result.settings["stochastic"]
    assert isinstance(fake.calls[0][1], EoT)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": "nan"}, ValueError, "NaN"),
        ({"y": "short"}, ValueError, "labels"),
        ({"suite": []}, ValueError, "empty"),
        ({"suite": "dup"}, ValueError, "duplicate"),
        ({"suite": 3}, TypeError, "suite"),
        ({"eot_samples": 0}, ValueError, "eot_samples"),
        ({"votes": 1.5}, ValueError, "votes"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"model": "not a model"}, TypeError, "model"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match) -> None:  # noqa: ANN001
    x, y = toy_data()
    model: object = Threshold()
    suite: object = [spec("A")]
    if kwargs.pop("x", None) == "nan":
        x = x.copy()
        x[0, 0, 0, 0] = np.nan
    if kwargs.pop("y", None) == "short":
        y = y[:3]
    if "suite" in kwargs:
        suite = kwargs.pop("suite")
        suite = [spec("A"), spec("A", attack="bim")] if suite == "dup" else suite
    if "model" in kwargs:
        model = kwargs.pop("model")
    with pytest.raises(error, match=match):
        evaluate(model, x, y, suite, attack_fn=FakeAttacks({}), verbose=False, **kwargs)


def test_real_adapters_end_to_end(trained_tiny, mnist_small) -> None:  # noqa: ANN001
    _, _, x_test, y_test = mnist_small
    suite = [
        AttackSpec("art", "fgsm", "linf", 0.3),
        AttackSpec("cleverhans", "pgd", "linf", 0.3, {"nb_iter": 5}),
    ]
    result = evaluate(trained_tiny, x_test[:16], y_test[:16], suite, verbose=False, seed=0)
    assert result.clean_accuracy > 0.6
    assert all(a.error is None and a.violations == 0 for a in result.attacks)
    assert result.robust_accuracy <= min(result.accuracy_per_attack.values())
    assert result.robust_accuracy < result.clean_accuracy
    codes = [f.code for f in result.audit_flags]
    assert "zero_gradients" not in codes and "nondeterministic_predictions" not in codes


def test_cost_estimate_is_printed_from_the_probe(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22 item 2: ``evaluate()`` prints, before its first attack, the probe's pass times multiplied by
    each attack's planned passes. The clock is replaced: the probe's forward pass takes 1 s and its forward +
    backward 3 s, so PGD with 10 steps (10 gradient passes + 1 scoring pass) and FGSM (1 + 1) on the 7
    clean-correct points (one batch) come to 10 x 3 + 1 + 3 + 1 = 35 s."""
    from art_manifold_defenses import costs

    ticks = iter([100.0, 101.0, 104.0])
    monkeypatch.setattr(costs, "clock", lambda: next(ticks))
    x, y = toy_data(8, wrong=(7,))
    suite = [spec("A", params={"max_iter": 10}), spec("B", attack="fgsm")]
    run(Threshold(), x, y, suite, FakeAttacks({}), verbose=True)
    printed = capsys.readouterr()
    line = next(text for text in (printed.out + printed.err).splitlines() if text.startswith("estimate:"))
    assert line.startswith(
        "estimate: 2 attacks on 7 points: about 35 s on this machine (a probe: 3 s per "
        "forward+backward and 1 s per forward pass on 7 points"
    )
    run(Threshold(), x, y, suite, FakeAttacks({}), verbose=False)  # quiet: no probe, no line
    printed = capsys.readouterr()
    assert "estimate:" not in printed.out + printed.err


def test_every_suite_attack_has_a_planned_cost() -> None:
    """The estimate covers every attack of every registered suite (a pass count > 0, gradient or forward)."""
    from art_manifold_defenses.evaluation.estimate import planned_passes
    from art_manifold_defenses.evaluation.suites import get_suite, suite_names

    for name in suite_names():
        for norm in ("linf", "l2"):
            try:
                specs = get_suite(name, norm=norm)
            except ValueError:  # a suite for one norm only
                continue
            for attack in specs:
                grads, forwards = planned_passes(attack)
                assert grads >= 0 and forwards >= 0 and grads + forwards > 0, attack.label
    assert planned_passes(AttackSpec("art", "pgd", "linf", 0.3, {"max_iter": 7, "num_random_init": 3})) == (
        21,
        0,
    )
    assert planned_passes(AttackSpec("art", "square", "linf", 0.3, {"max_iter": 50})) == (0, 50)
    # ART's C&W l2: 5 binary-search steps x 20 iterations, each with a line search of up to 5 + 5 forward
    # passes; l-inf: 20 iterations for each constant 0.1 x 2^k below 20 (8 of them)
    assert planned_passes(AttackSpec("art", "cw", "l2", 2.0, {})) == (100, 1000)
    assert planned_passes(AttackSpec("art", "cw", "linf", 0.3, {})) == (160, 0)
