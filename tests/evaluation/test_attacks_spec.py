"""AttackSpec, the registry, the budget policy and run_attack's validation, seeding and model-state
handling."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.evaluation.attacks import (
    ATTACKS,
    LIBRARIES,
    AttackSpec,
    enforce_budget,
    perturbation_norms,
    run_attack,
)


def small_cnn() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(1, 4, 5, stride=3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))


# -- spec
# ------------------------------------------------------------------------------------------------------------
def test_spec_normalises_fields() -> None:
    spec = AttackSpec("ART", " PGD ", norm=np.inf, eps=np.float32(0.25), params={"max_iter": np.int64(7)})
    assert (spec.library, spec.attack, spec.norm) == ("art", "pgd", "linf")
    assert isinstance(spec.eps, float) and spec.eps == pytest.approx(0.25)
    assert type(spec.params["max_iter"]) is int
    assert AttackSpec("foolbox", "pgd", norm=2, eps=1.0).norm == "l2"
    assert AttackSpec("foolbox", "pgd", norm="L1", eps=1.0).norm == "l1"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"library": "tensorflow", "attack": "pgd"}, r"library must be one of \['art', 'foolbox'"),
        ({"library": "art", "attack": "jsma"}, r"unknown attack 'jsma' for library 'art'; valid: \["),
        ({"library": "art", "attack": "pgd", "norm": "l0"}, r"norm must be one of"),
        ({"library": "art", "attack": "bim", "norm": "l2"}, r"supports norms \['linf'\]"),
        ({"library": "art", "attack": "pgd", "eps": None}, r"eps=None .* only valid for minimisation"),
        ({"library": "art", "attack": "pgd", "eps": -0.1}, r"eps must be a finite number > 0"),
        ({"library": "art", "attack": "pgd", "eps": float("nan")}, r"eps must be a finite number > 0"),
        (
            {"library": "art", "attack": "pgd", "params": {"steps": 3}},
            (
                r"unknown params \['steps'\].*valid "
                r"params"
            ),
        ),
        (
            {"library": "art", "attack": "cw", "norm": "l2", "params": {"out_of_budget": "drop"}},
            r"out_of_budget",
        ),
        ({"library": "transfer", "attack": "pgd"}, r"attack='transfer'"),
        (
            {"library": "transfer", "attack": "transfer", "params": {"base": {"library": "art"}}},
            r"'library' and 'attack'",
        ),
        (
            {
                "library": "transfer",
                "attack": "transfer",
                "params": {"base": {"library": "art", "attack": "pgd", "eps": 0.1}},
            },
            r"differs from the transfer spec",
        ),
    ],
)
def test_spec_rejects_invalid_fields(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        AttackSpec(**kwargs)


def test_spec_rejects_non_json_params() -> None:
    with pytest.raises(TypeError, match="JSON-safe"):
        AttackSpec("art", "pgd", params={"callback": object()})


def test_spec_round_trips_through_json() -> None:
    specs = [
        AttackSpec("art", "pgd", "l2", 2.0, {"max_iter": 10, "eps_step": None}, name="pgd-l2"),
        AttackSpec("foolbox", "cw", "l2", None, {"steps": 20}),
        AttackSpec(
            "transfer",
            "transfer",
            "linf",
            0.3,
            {"base": {"library": "cleverhans", "attack": "pgd", "params": {"nb_iter": 5}}},
        ),
    ]
    for spec in specs:
        again = AttackSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
        assert again == spec and hash(again) == hash(spec) and again.label == spec.label
    with pytest.raises(ValueError, match="unknown AttackSpec fields"):
        AttackSpec.from_dict({"library": "art", "attack": "pgd", "steps": 3})


def test_labels_are_unique_and_readable() -> None:
    a = AttackSpec("art", "pgd", "linf", 0.3)
    b = AttackSpec("art", "pgd", "linf", 0.3, {"max_iter": 100})
    c = AttackSpec("art", "pgd", "linf", 0.1)
    assert len({a.label, b.label, c.label}) == 3
    assert a.label.startswith("art/pgd linf eps=0.3")
    assert AttackSpec("art", "cw", "l2", None).label == "art/cw l2 unbounded"
    assert AttackSpec("art", "pgd", name="my pgd").label == "my pgd"
    assert len({a, b, c, AttackSpec("art", "pgd", "linf", 0.3)}) == 3


def test_audit_properties() -> None:
    assert AttackSpec("art", "fgsm").one_step and not AttackSpec("art", "pgd").one_step
    assert AttackSpec("cleverhans", "fgm").one_step
    for lib, attack, norm in [
        ("art", "square", "linf"),
        ("art", "boundary", "l2"),
        ("foolbox", "hsj", "l2"),
        ("cleverhans", "spsa", "linf"),
        ("foolbox", "gaussian-noise", "l2"),
        ("transfer", "transfer", "linf"),
    ]:
        spec = AttackSpec(lib, attack, norm, 0.3)
        assert spec.gradient_free and spec.black_box, spec.label
    for lib, attack in [
        ("art", "pgd"),
        ("foolbox", "pgd"),
        ("cleverhans", "pgd"),
        ("autoattack", "standard"),
    ]:
        spec = AttackSpec(lib, attack)
        assert not spec.gradient_free and not spec.black_box and not spec.minimisation
    for lib, attack, norm in [
        ("art", "cw", "l2"),
        ("art", "ead", "l1"),
        ("art", "deepfool", "l2"),
        ("foolbox", "boundary", "l2"),
        ("cleverhans", "hsj", "l2"),
        ("foolbox", "salt-pepper", "l2"),
    ]:
        assert AttackSpec(lib, attack, norm, None).minimisation
    transfer = AttackSpec("transfer", "transfer", "l2", 1.0, {"base": {"library": "foolbox", "attack": "cw"}})
    assert transfer.minimisation and transfer.base_spec() == AttackSpec("foolbox", "cw", "l2", 1.0)


def test_registry_covers_every_library_and_norms_are_valid() -> None:
    assert {lib for lib, _ in ATTACKS} == set(LIBRARIES)
    for (lib, attack), info in ATTACKS.items():
        assert info.library == lib and info.attack == attack
        assert info.norms and set(info.norms) <= {"linf", "l2", "l1"}
        assert info.description
        for norm in info.norms:
            info.resolve_params(norm, {})  # defaults are self-consistent


# -- budget
# -----------------------------------------------------------------------------------------------------------
def test_perturbation_norms() -> None:
    x = np.zeros((2, 1, 2, 2), np.float32)
    adv = x.copy()
    adv[0, 0, 0, 0], adv[0, 0, 1, 1] = 0.3, -0.4
    np.testing.assert_allclose(perturbation_norms(adv, x, "linf"), [0.4, 0.0])
    np.testing.assert_allclose(perturbation_norms(adv, x, "l2"), [0.5, 0.0])
    np.testing.assert_allclose(perturbation_norms(adv, x, "l1"), [0.7, 0.0])


def test_minimisation_out_of_budget_points_become_clean_or_projected() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.3, 0.7, (4, 1, 5, 5)).astype(np.float32)
    adv = x.copy()
    adv[0] += 0.01  # l2 = 0.05, inside eps = 0.5
    adv[1] += 0.2  # l2 = 1.0, outside
    clean = enforce_budget(adv, x, norm="l2", eps=0.5, minimisation=True)
    np.testing.assert_array_equal(clean[0], adv[0])
    np.testing.assert_array_equal(clean[1], x[1])
    projected = enforce_budget(adv, x, norm="l2", eps=0.5, minimisation=True, out_of_budget="project")
    norms = perturbation_norms(projected, x, "l2")
    assert norms[1] == pytest.approx(0.5, rel=1e-4) and norms.max() <= 0.5 + 1e-5
    unbounded = enforce_budget(adv, x, norm="l2", eps=None, minimisation=True)
    np.testing.assert_array_equal(unbounded, adv)


def test_fixed_budget_round_off_is_projected_but_real_violations_are_kept() -> None:
    x = np.full((2, 1, 3, 3), 0.5, np.float32)
    adv = x.copy()
    adv[0, 0, 0, 0] += 0.3 * (1 + 1e-5)  # round-off overshoot
    adv[1, 0, 0, 0] += 0.45  # a real violation, left for the runner to flag
    out = enforce_budget(adv, x, norm="linf", eps=0.3, minimisation=False)
    norms = perturbation_norms(out, x, "linf")
    assert norms[0] <= 0.3 + 1e-6
    assert norms[1] == pytest.approx(0.45, abs=1e-6)


def test_budget_replaces_nan_and_clips_to_unit_range() -> None:
    x = np.full((2, 1, 2, 2), 0.5, np.float32)
    adv = x.copy()
    adv[0, 0, 0, 0] = np.nan
    adv[1, 0, 0, 0] = 1.2
    with pytest.warns(RuntimeWarning, match="NaN"):
        out = enforce_budget(adv, x, norm="linf", eps=None, minimisation=True)
    np.testing.assert_array_equal(out[0], x[0])
    assert out.dtype == np.float32 and out.max() == 1.0


# -- run_attack plumbing
# ----------------------------------------------------------------------------------------------
@pytest.fixture
def batch(mnist_small: tuple) -> tuple[np.ndarray, np.ndarray]:
    _, _, x_test, y_test = mnist_small
    return x_test[:6], y_test[:6]


def test_run_attack_validates_inputs(batch: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = batch
    model, spec = small_cnn(), AttackSpec("cleverhans", "fgm", "linf", 0.1)
    with pytest.raises(ValueError, match=r"x must lie in \[0.0, 1.0\]"):
        run_attack(spec, model, x * 3, y)
    with pytest.raises(ValueError, match="x contains NaN"):
        run_attack(spec, model, np.full_like(x, np.nan), y)
    with pytest.raises(ValueError, match="empty batch"):
        run_attack(spec, model, x[:0], y[:0])
    with pytest.raises(ValueError, match="y has 5 labels for 6 inputs"):
        run_attack(spec, model, x, y[:5])
    with pytest.raises(ValueError, match=r"y must lie in \[0, 9\]"):
        run_attack(spec, model, x, y + 10)
    with pytest.raises(ValueError, match="batch_size"):
        run_attack(spec, model, x, y, batch_size=0)
    with pytest.raises(TypeError, match="spec must be an AttackSpec"):
        run_attack({"library": "art"}, model, x, y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="logits of shape"):
        run_attack(spec, nn.Flatten(0), x, y)
    with pytest.raises(ValueError, match="surrogate_model"):
        run_attack(AttackSpec("transfer", "transfer", "linf", 0.1), model, x, y)


def test_run_attack_accepts_one_hot_labels_and_batches(batch: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = batch
    model, spec = small_cnn(), AttackSpec("cleverhans", "fgm", "linf", 0.1)
    full = run_attack(spec, model, x, y, batch_size=6)
    split = run_attack(spec, model, x, np.eye(10, dtype=np.float32)[y], batch_size=4)
    np.testing.assert_allclose(full, split, atol=1e-6)


def test_run_attack_is_reproducible_and_restores_global_rng(batch: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = batch
    model = small_cnn()
    spec = AttackSpec("art", "pgd", "linf", 0.2, {"max_iter": 2})  # random start: uses the seed
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    states = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    a = run_attack(spec, model, x, y, seed=3)
    assert random.getstate() == states[0]
    np.testing.assert_array_equal(np.random.get_state()[1], states[1])
    assert torch.equal(torch.get_rng_state(), states[2])
    b = run_attack(spec, model, x, y, seed=3)
    c = run_attack(spec, model, x, y, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_run_attack_restores_model_mode_and_grad_flags(batch: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = batch
    model = nn.Sequential(nn.Conv2d(1, 2, 5), nn.Dropout(0.5), nn.Flatten(), nn.Linear(2 * 24 * 24, 10))
    model.train()
    model[0].weight.requires_grad_(False)
    run_attack(AttackSpec("foolbox", "fgsm", "linf", 0.1), model, x, y)
    assert model.training and model[1].training
    assert not model[0].weight.requires_grad and model[3].weight.requires_grad


def test_transfer_equals_base_attack_on_surrogate(batch: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = batch
    target, surrogate = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), small_cnn()
    base = {"library": "cleverhans", "attack": "pgd", "params": {"nb_iter": 3}}
    spec = AttackSpec("transfer", "transfer", "linf", 0.2, {"base": base})
    adv = run_attack(spec, target, x, y, surrogate_model=surrogate, seed=1)
    direct = run_attack(AttackSpec("cleverhans", "pgd", "linf", 0.2, {"nb_iter": 3}), surrogate, x, y, seed=1)
    np.testing.assert_array_equal(adv, direct)
    assert perturbation_norms(adv, x, "linf").max() <= 0.2 + 1e-6


def test_spec_is_read_only_picklable_and_copyable() -> None:
    import copy
    import dataclasses
    import pickle

    spec = AttackSpec("art", "pgd", "linf", 0.3, {"max_iter": 5, "eps_step": None}, name="p")
    with pytest.raises(TypeError, match="read-only"):
        spec.params["max_iter"] = 6  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.eps = 0.1  # type: ignore[misc]
    for again in (copy.deepcopy(spec), pickle.loads(pickle.dumps(spec)), dataclasses.replace(spec)):
        assert again == spec and again.params == {"max_iter": 5, "eps_step": None}
    assert dataclasses.asdict(spec)["params"] == {"max_iter": 5, "eps_step": None}
    assert dataclasses.replace(spec, eps=0.1).eps == 0.1


def test_margin_loss_and_cross_entropy_attacks_of_the_registry() -> None:
    from art_manifold_defenses.evaluation.attacks import LOSSES

    margin = {(lib, a) for (lib, a), info in ATTACKS.items() if info.margin_loss}
    assert margin == {
        ("art", "apgd-dlr"),
        ("art", "cw"),
        ("art", "ead"),
        ("foolbox", "cw"),
        ("foolbox", "ead"),
        ("cleverhans", "cw"),
        ("autoattack", "standard"),
        ("autoattack", "plus"),
        ("autoattack", "rand"),  # APGD-DLR / APGD-T inside
    }
    cross_entropy = {(lib, a) for (lib, a), info in ATTACKS.items() if info.cross_entropy}
    assert cross_entropy == {
        ("art", "bim"),
        ("art", "pgd"),
        ("art", "mim"),
        ("art", "apgd-ce"),
        ("foolbox", "pgd"),
        ("foolbox", "mifgsm"),
        ("cleverhans", "pgd"),
        ("cleverhans", "sparse-l1"),
        ("autoattack", "standard"),
        ("autoattack", "plus"),
        ("autoattack", "rand"),  # APGD-CE inside
    }
    assert all(info.loss in (*LOSSES, None) for info in ATTACKS.values())
    square, fgsm = ATTACKS[("art", "square")], ATTACKS[("art", "fgsm")]
    assert square.loss == "margin" and not square.margin_loss  # gradient-free: not a white-box one
    assert fgsm.loss == "cross-entropy" and not fgsm.cross_entropy  # one step
    base = {"library": "art", "attack": "apgd-dlr"}
    transfer = AttackSpec("transfer", "transfer", "linf", 0.3, {"base": base})
    assert not transfer.margin_loss and not transfer.cross_entropy  # crafted on a surrogate: not white-box
    assert AttackSpec("art", "apgd-dlr", "l1", 5.0).margin_loss
    assert AttackSpec("art", "pgd", "l1", 5.0).cross_entropy
