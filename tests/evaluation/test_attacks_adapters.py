"""Every adapter (library x attack x norm of the registry) on a tiny trained CNN and 8 real MNIST images:
float32, same shape, inside [0, 1], inside the budget; the strong white-box ones lower the accuracy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from art_manifold_defenses.evaluation.adapters_autoattack import _OnDevice, build_ensemble
from art_manifold_defenses.evaluation.attacks import ATTACKS, AttackSpec, perturbation_norms, run_attack

EPS = {"linf": 0.3, "l2": 3.0, "l1": 15.0}

#: Tiny iteration counts so the whole table runs in seconds; keys are (library, attack).
FAST: dict[tuple[str, str], dict[str, Any]] = {
    ("art", "fgsm"): {},
    ("art", "fgm"): {},
    ("art", "bim"): {"max_iter": 5},
    ("art", "pgd"): {"max_iter": 5},
    ("art", "mim"): {"max_iter": 5},
    ("art", "cw"): {"max_iter": 3},
    ("art", "ead"): {"binary_search_steps": 2, "max_iter": 10},
    ("art", "deepfool"): {"max_iter": 5},
    ("art", "apgd-ce"): {"max_iter": 5},
    ("art", "apgd-dlr"): {"max_iter": 5},
    ("art", "square"): {"max_iter": 20},
    ("art", "boundary"): {"max_iter": 3, "num_trial": 3, "sample_size": 3, "init_size": 20},
    ("art", "hsj"): {"max_iter": 1, "max_eval": 30, "init_eval": 10, "init_size": 20},
    ("foolbox", "pgd"): {"steps": 5},
    ("foolbox", "fgsm"): {},
    ("foolbox", "fgm"): {},
    ("foolbox", "mifgsm"): {"steps": 5},
    ("foolbox", "deepfool"): {"steps": 20},
    ("foolbox", "cw"): {"binary_search_steps": 2, "steps": 20},
    ("foolbox", "ead"): {"binary_search_steps": 2, "steps": 20},
    ("foolbox", "boundary"): {"steps": 20},
    ("foolbox", "hsj"): {"steps": 1, "initial_gradient_eval_steps": 10, "max_gradient_eval_steps": 20},
    ("foolbox", "gaussian-noise"): {"repeats": 5},
    ("foolbox", "uniform-noise"): {"repeats": 5},
    ("foolbox", "salt-pepper"): {"steps": 20},
    ("cleverhans", "fgm"): {},
    ("cleverhans", "pgd"): {"nb_iter": 5},
    ("cleverhans", "cw"): {"binary_search_steps": 2, "max_iterations": 20, "lr": 0.1, "initial_const": 1.0},
    ("cleverhans", "spsa"): {"nb_iter": 2, "spsa_samples": 16},
    ("cleverhans", "hsj"): {"num_iterations": 1, "initial_num_evals": 10, "max_num_evals": 20},
    ("cleverhans", "sparse-l1"): {"nb_iter": 5},
    ("autoattack", "standard"): {"steps": 5, "n_queries": 20},
    ("autoattack", "plus"): {"steps": 3, "n_queries": 10},
    ("autoattack", "rand"): {"steps": 5, "eot_iter": 2},
    ("transfer", "transfer"): {"base": {"library": "art", "attack": "pgd", "params": {"max_iter": 5}}},
}
#: (library, attack, norm) triples that must push accuracy down at eps=0.3 linf / 3.0 l2 even with the tiny
#: settings.
STRONG = {
    ("art", "fgsm", "linf"),
    ("art", "bim", "linf"),
    ("art", "pgd", "linf"),
    ("art", "pgd", "l2"),
    ("art", "mim", "linf"),
    ("art", "apgd-ce", "linf"),
    ("art", "apgd-dlr", "linf"),
    ("art", "deepfool", "l2"),
    ("foolbox", "pgd", "linf"),
    ("foolbox", "pgd", "l2"),
    ("foolbox", "fgsm", "linf"),
    ("foolbox", "mifgsm", "linf"),
    ("foolbox", "deepfool", "linf"),
    ("foolbox", "deepfool", "l2"),
    ("cleverhans", "fgm", "linf"),
    ("cleverhans", "pgd", "linf"),
    ("cleverhans", "pgd", "l2"),
    ("cleverhans", "cw", "l2"),
    ("autoattack", "standard", "linf"),
    ("autoattack", "standard", "l2"),
    ("autoattack", "rand", "linf"),
}
CASES = [(lib, attack, norm) for (lib, attack), info in ATTACKS.items() for norm in info.norms]


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


@pytest.fixture(scope="module")
def data(mnist_small: tuple) -> tuple[np.ndarray, np.ndarray]:
    _, _, x_test, y_test = mnist_small
    return x_test[:8], y_test[:8]


def test_every_registered_attack_has_a_test_case() -> None:
    assert set(FAST) == set(ATTACKS)


@pytest.mark.parametrize(("library", "attack", "norm"), CASES, ids=[f"{a}-{b}-{c}" for a, b, c in CASES])
def test_adapter_returns_valid_in_budget_adversarials(
    library: str, attack: str, norm: str, trained_tiny: nn.Module, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = data
    eps = EPS[norm]
    spec = AttackSpec(library, attack, norm, eps, FAST[(library, attack)])
    surrogate = trained_tiny if library == "transfer" else None
    adv = run_attack(spec, trained_tiny, x, y, seed=0, batch_size=8, surrogate_model=surrogate)
    assert adv.dtype == np.float32 and adv.shape == x.shape
    assert np.isfinite(adv).all() and adv.min() >= 0.0 and adv.max() <= 1.0
    assert perturbation_norms(adv, x, norm).max() <= eps + 1e-5
    if (library, attack, norm) in STRONG or (library == "transfer" and norm != "l1"):
        clean = accuracy(trained_tiny, x, y)
        assert accuracy(trained_tiny, adv, y) <= clean - 0.5, spec.label


@pytest.mark.parametrize(
    ("library", "attack", "norm"),
    [("art", "deepfool", "l2"), ("foolbox", "cw", "l2"), ("cleverhans", "hsj", "linf")],
)
def test_unbounded_minimisation_returns_raw_adversarials(
    library: str, attack: str, norm: str, trained_tiny: nn.Module, data: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = data
    spec = AttackSpec(library, attack, norm, None, FAST[(library, attack)])
    adv = run_attack(spec, trained_tiny, x, y, seed=0)
    assert adv.dtype == np.float32 and adv.shape == x.shape and 0.0 <= adv.min() and adv.max() <= 1.0
    norms = perturbation_norms(adv, x, norm)
    assert accuracy(trained_tiny, adv, y) <= 0.25
    # with a budget below most minimal norms, out-of-budget points come back clean
    tight = float(np.median(norms[norms > 0])) * 0.99
    bounded = run_attack(
        AttackSpec(library, attack, norm, tight, FAST[(library, attack)]), trained_tiny, x, y, seed=0
    )
    bounded_norms = perturbation_norms(bounded, x, norm)
    assert bounded_norms.max() <= tight + 1e-5
    assert np.all((bounded_norms == 0) | (np.abs(bounded_norms - norms) < 1e-4))


def test_cleverhans_hsj_leaves_misclassified_points_alone(trained_tiny: nn.Module, data: tuple) -> None:
    x, y = data
    wrong = (y + 1) % 10  # every point "misclassified" w.r.t. these labels
    adv = run_attack(
        AttackSpec("cleverhans", "hsj", "l2", None, FAST[("cleverhans", "hsj")]), trained_tiny, x, wrong
    )
    np.testing.assert_array_equal(adv, x)


def test_autoattack_uses_original_step_counts_and_overrides(trained_tiny: nn.Module) -> None:
    import torchattacks

    def sub_attacks(attack: str, params: dict[str, Any]) -> list[Any]:
        ensemble = build_ensemble(
            attack,
            trained_tiny,
            norm="linf",
            eps=0.3,
            params=params,
            device=torch.device("cpu"),
            nb_classes=10,
            seed=0,
        )
        assert isinstance(ensemble, torchattacks.AutoAttack)
        return list(ensemble._autoattack.attacks)

    standard = sub_attacks("standard", {"steps": 100, "n_queries": 5000})
    assert [type(a).__name__ for a in standard] == ["APGD", "APGDT", "FAB", "Square"]
    assert all(a.steps == 100 for a in standard[:3]) and standard[3].n_queries == 5000
    rand = sub_attacks("rand", {"steps": 7, "eot_iter": 3})
    assert [(a.steps, a.eot_iter, a.loss) for a in rand] == [(7, 3, "ce"), (7, 3, "dlr")]


def test_autoattack_runs_a_model_without_parameters(data: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    x, y = data
    torch.manual_seed(0)
    weight = torch.randn(784, 10) * 0.1

    class Fixed(nn.Module):
        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            return inputs.flatten(1) @ weight

    adv = run_attack(
        AttackSpec("autoattack", "standard", "linf", 0.1, {"steps": 3, "n_queries": 10}), Fixed(), x, y
    )
    assert perturbation_norms(adv, x, "linf").max() <= 0.1 + 1e-5
    assert "Failed to set device" not in capsys.readouterr().out
    assert list(_OnDevice(Fixed(), torch.device("cpu")).parameters())[0].numel() == 0


class SaturationClassifier(nn.Module):
    """Class 1 iff some pixel is exactly 1.0: blending a class-0 image with noise never reaches class 1, so
    Foolbox's default blended-noise initialisation fails for class-0 images."""

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        saturated = (inputs.flatten(1).max(dim=1).values >= 1.0).float()
        return torch.stack([1.0 - saturated, saturated], dim=1) * 5.0


@pytest.mark.parametrize("attack", ["boundary", "hsj"])
def test_foolbox_decision_attacks_survive_failed_initialisation(attack: str) -> None:
    x = np.full((4, 1, 6, 6), 0.4, np.float32)
    x[2:, 0, 0, 0] = 1.0  # images 2 and 3 are class 1
    y = np.array([0, 0, 1, 1])
    model = SaturationClassifier()
    spec = AttackSpec("foolbox", attack, "l2", None, FAST[("foolbox", attack)])
    adv = run_attack(spec, model, x, y)
    assert adv.shape == x.shape and adv.dtype == np.float32
    assert accuracy(model, adv, y) == 0.0  # class-0 images start from the nearest class-1 image of the batch
    only_class0 = run_attack(spec, model, x[:2], y[:2])  # no adversarial starting point exists at all
    np.testing.assert_array_equal(only_class0, x[:2])
