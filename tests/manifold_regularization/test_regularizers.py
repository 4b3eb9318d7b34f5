"""Intrinsic, Hamming and dense regularizers: hand computations, limits, hooks and functional-ReLU detection."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from art_manifold_defenses.manifold_regularization import (
    ManifoldRegularizer,
    ReLURecorder,
    dense_intrinsic_regularizer,
    fused_hamming_layer_term,
    hamming_layer_terms,
    hamming_regularizer,
    hamming_relaxation,
    heat_kernel_weights,
    intrinsic_regularizer,
)


def two_layer_toy() -> nn.Sequential:
    """f(x) = W2 relu(W1 x + b1) with hand-picked weights."""
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
        net[0].bias.copy_(torch.tensor([0.0, 0.0, -1.0]))
        net[2].weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
    return net


def flip_toy() -> nn.Sequential:
    """Four ReLUs: two flip sign between x + rho and x - rho (z = +-x1), two are constant (0.3 and -0.2)."""
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
        net[0].bias.copy_(torch.tensor([0.0, 0.0, 0.3, -0.2]))
    return net


def test_intrinsic_term_matches_hand_computation_on_two_layer_toy() -> None:
    # x = (0.5, 0.5), rho = (0.1, -0.1): x+ = (0.6, 0.4), x- = (0.4, 0.6)
    # z+ = (0.6, 0.4, 0.0), z- = (0.4, 0.6, 0.0); f+ = (0.6, 0.4), f- = (0.4, 0.6); ||f+ - f-||^2 = 0.08
    x = torch.tensor([[0.5, 0.5]])
    rho = torch.tensor([[0.1, -0.1]])
    out = ManifoldRegularizer(eps=0.1, clip_values=None)(two_layer_toy(), x, perturbation=rho)
    assert out.intrinsic.item() == pytest.approx(0.08, abs=1e-6)
    # Hamming, one layer of n = 3 ReLUs: ||(|t(4.8) - t(3.2)|, |t(3.2) - t(4.8)|, 0)||_2 / (2 * 3), t = tanh
    expected = math.sqrt(2) * abs(math.tanh(8 * 0.6) - math.tanh(8 * 0.4)) / 6
    assert out.hamming.item() == pytest.approx(expected, rel=1e-5)
    assert out.layer_names == ["1"] and out.layer_sizes == [3]
    assert torch.allclose(out.logits, torch.tensor([[0.5, 0.5]]))


def test_intrinsic_term_averages_over_the_batch() -> None:
    f_plus = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    f_minus = torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    assert intrinsic_regularizer(f_plus, f_minus).item() == pytest.approx((5.0 + 9.0) / 2)


def test_constant_model_has_zero_regularizers() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 5), nn.ReLU(), nn.Linear(5, 3))
    with torch.no_grad():
        net[1].weight.zero_()  # the output no longer depends on the input
        net[1].bias.copy_(torch.tensor([0.5, -0.5, 0.1, 0.0, 2.0]))
    out = ManifoldRegularizer(eps=0.3)(net, torch.rand(6, 1, 4, 4))
    assert out.intrinsic.item() == 0.0
    assert out.hamming.item() == 0.0
    dense = ManifoldRegularizer(eps=0.3, intrinsic="dense")(net, torch.rand(6, 1, 4, 4))
    assert dense.intrinsic.item() == 0.0


def test_hamming_is_zero_for_identical_pre_activations_and_for_the_same_pattern_in_the_limit() -> None:
    x = torch.tensor([[0.5, 0.5]])
    reg = ManifoldRegularizer(eps=0.0, clip_values=None, alpha=8.0)
    assert reg(flip_toy(), x).hamming.item() == 0.0  # eps = 0: z+ == z-
    # same activation pattern, different values: z+ = (0.06, 0.04, -0.9), z- = (0.04, 0.06, -0.9)
    x, rho = torch.tensor([[0.05, 0.05]]), torch.tensor([[0.01, -0.01]])
    values = [ManifoldRegularizer(eps=0.01, clip_values=None, alpha=a)(two_layer_toy(), x, perturbation=rho).hamming.item()
              for a in (8.0, 32.0, 128.0, float("inf"))]
    assert values[0] > values[1] > values[2] > 0.0
    assert values[2] < 1e-3 * values[0]
    assert values[3] == 0.0  # exact Hamming distance between identical patterns


def test_hamming_grows_with_alpha_towards_the_normalised_hamming_distance() -> None:
    x = torch.tensor([[0.0, 0.5]])
    rho = torch.tensor([[0.1, 0.1]])  # z+ = (0.1, -0.1, 0.3, -0.2), z- = (-0.1, 0.1, 0.3, -0.2): 2 of 4 ReLUs flip
    limit = math.sqrt(2**2 + 2**2) / (2 * 4)
    alphas = [0.5, 2.0, 8.0, 32.0, 1000.0]
    values = [ManifoldRegularizer(eps=0.1, clip_values=None, alpha=a)(flip_toy(), x, perturbation=rho).hamming.item() for a in alphas]
    assert all(b > a for a, b in zip(values, values[1:], strict=False))
    assert values[-1] == pytest.approx(limit, rel=1e-6)
    exact = ManifoldRegularizer(eps=0.1, clip_values=None, alpha=float("inf"))(flip_toy(), x, perturbation=rho)
    assert exact.hamming.item() == pytest.approx(limit, rel=1e-7)
    assert exact.pattern_agreement == [pytest.approx(0.5)]


def test_hamming_relaxation_elementwise_and_layer_combination() -> None:
    zp, zm = torch.tensor([[1.0, -2.0]]), torch.tensor([[-1.0, -2.0]])
    assert torch.allclose(hamming_relaxation(zp, zm, alpha=1.0), torch.tensor([[2 * math.tanh(1.0), 0.0]]))
    # two layers: mean over layers of ||H||_2 / (2 n)
    layer2_p, layer2_m = torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([[-1.0, -1.0, 1.0]])
    value = hamming_regularizer([zp, layer2_p], [zm, layer2_m], alpha=float("inf")).item()
    assert value == pytest.approx((2 / 4 + math.sqrt(8) / 6) / 2)
    with pytest.raises(ValueError, match="alpha"):
        hamming_relaxation(zp, zm, alpha=0.0)
    with pytest.raises(ValueError, match="at least one ReLU"):
        hamming_regularizer([], [])


def test_dense_regularizer_matches_a_double_loop() -> None:
    torch.manual_seed(0)
    outputs, points = torch.randn(5, 3), torch.rand(5, 2, 2)
    expected = 0.0
    for p in range(5):
        for q in range(5):
            weight = math.exp(-float((points[p] - points[q]).pow(2).sum()) / 2.0)
            expected += float((outputs[p] - outputs[q]).pow(2).sum()) * weight
    assert dense_intrinsic_regularizer(outputs, points, scale=2.0).item() == pytest.approx(expected / 25, rel=1e-5)
    weights = heat_kernel_weights(points, scale=2.0)
    assert torch.allclose(weights.diagonal(), torch.ones(5)) and torch.allclose(weights, weights.T)
    with pytest.raises(ValueError, match="scale"):
        heat_kernel_weights(points, scale=0.0)


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


class _Boom(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        raise RuntimeError("boom")


def test_hooks_are_removed_after_use_and_do_not_leak_across_batches() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    reg = ManifoldRegularizer(eps=0.1)
    first = reg(net, torch.rand(4, 1, 4, 4))
    second = reg(net, torch.rand(7, 1, 4, 4))
    assert _hook_count(net) == 0
    assert first.layer_names == second.layer_names == ["2", "5"]
    assert second.layer_hamming.shape == (2,)
    broken = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), _Boom())
    with pytest.raises(RuntimeError, match="boom"):
        reg(broken, torch.rand(2, 1, 4, 4))
    assert _hook_count(broken) == 0
    assert torch._C._len_torch_function_stack() == 0  # the functional-ReLU detector is gone too
    with ReLURecorder(net) as recorder:
        assert _hook_count(net) > 0
        net(torch.rand(3, 1, 4, 4))
    assert _hook_count(net) == 0 and len(recorder.records) == 2


def test_one_forward_pass_over_x_and_both_perturbations() -> None:
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    calls: list[int] = []
    net.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    out = ManifoldRegularizer(eps=0.1)(net, torch.rand(5, 1, 4, 4))
    assert calls == [15]
    assert out.logits is not None and out.logits.shape == (5, 3)


class _FunctionalNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2, self.fc3 = nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.Linear(6, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc3(F.relu(self.fc2(self.act(self.fc1(x)))))


def test_functional_relus_are_detected() -> None:
    x = torch.rand(3, 4)
    with pytest.raises(ValueError, match="functional"):
        ManifoldRegularizer(eps=0.1)(_FunctionalNet(), x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = ManifoldRegularizer(eps=0.1, functional_relus="warn")(_FunctionalNet(), x)
    assert any("functional" in str(w.message) for w in caught)
    assert out.functional_relus == 1 and out.layer_names == ["act"]
    assert ManifoldRegularizer(eps=0.1, functional_relus="ignore")(_FunctionalNet(), x).functional_relus == 0
    # ReLU modules call F.relu internally: those calls are not counted
    module_only = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(inplace=True), nn.Linear(6, 2))
    assert ManifoldRegularizer(eps=0.1)(module_only, x).functional_relus == 0
    with pytest.raises(ValueError, match="no .*ReLU"):
        ManifoldRegularizer(eps=0.1)(nn.Sequential(nn.Linear(4, 2), nn.Tanh()), x)


def test_inplace_relu_records_the_pre_activation() -> None:
    net = nn.Sequential(nn.Linear(4, 32), nn.ReLU(inplace=True), nn.Linear(32, 2))
    with ReLURecorder(net) as recorder:
        net(torch.randn(8, 4))
    assert float(recorder.records[0][1].detach().min()) < 0


def test_shared_dropout_mask_keeps_the_copies_comparable() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 3)).train()
    x = torch.rand(4, 1, 4, 4)
    shared = ManifoldRegularizer(eps=0.0)(net, x)
    independent = ManifoldRegularizer(eps=0.0, shared_dropout=False)(net, x)
    assert shared.intrinsic.item() == 0.0
    assert independent.intrinsic.item() > 0.0


def test_gradients_flow_through_batchnorm_models() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).train()
    out = ManifoldRegularizer(eps=0.2)(net, torch.rand(5, 1, 6, 6))
    (out.intrinsic + 100 * out.hamming).backward()
    assert net[0].weight.grad is not None and float(net[0].weight.grad.abs().sum()) > 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"eps": -1.0}, ValueError, "eps"),
        ({"norm": "l1"}, ValueError, "norm"),
        ({"alpha": 0.0}, ValueError, "alpha"),
        ({"intrinsic": "full"}, ValueError, "intrinsic"),
        ({"intrinsic": None, "hamming": False}, ValueError, "nothing"),
        ({"dense_scale": -2.0}, ValueError, "dense_scale"),
        ({"clip_values": (1.0, 0.0)}, ValueError, "clip_values"),
        ({"functional_relus": "skip"}, ValueError, "functional_relus"),
        ({"hamming": 1}, TypeError, "hamming"),
        ({"activation_types": (int,)}, TypeError, "activation_types"),
    ],
)
def test_bad_parameters_raise_clear_errors(kwargs: dict, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        ManifoldRegularizer(**kwargs)
    with pytest.raises(ValueError, match="unknown parameter"):
        ManifoldRegularizer().set_params(gamma=1.0)


def test_bad_batches_raise_clear_errors() -> None:
    net, reg = two_layer_toy(), ManifoldRegularizer(eps=0.1)
    with pytest.raises(ValueError, match="NaN"):
        reg(net, torch.tensor([[float("nan"), 0.5]]))
    with pytest.raises(ValueError, match=r"\[0.0, 1.0\]"):
        reg(net, torch.tensor([[2.0, 0.5]]))
    with pytest.raises(ValueError, match="non-empty"):
        reg(net, torch.zeros(0, 2))
    with pytest.raises(TypeError, match="floating"):
        reg(net, torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="perturbation"):
        reg(net, torch.rand(2, 2), perturbation=torch.rand(3, 2))


@pytest.mark.parametrize("alpha", [0.7, 8.0])
def test_fused_hamming_term_matches_autograd_on_slices(alpha: float) -> None:
    torch.manual_seed(0)
    batch = 3
    z = torch.randn(3 * batch, 2, 5, dtype=torch.float64, requires_grad=True)
    z.data[2 * batch] = z.data[batch]  # one pair with identical pre-activations (zero norm)
    fused = fused_hamming_layer_term(z, batch=batch, alpha=alpha)
    reference = hamming_layer_terms([z[batch : 2 * batch]], [z[2 * batch :]], alpha=alpha)[0]
    assert fused.item() == pytest.approx(reference.item(), rel=1e-12)
    (grad_fused,) = torch.autograd.grad(fused, z)
    (grad_reference,) = torch.autograd.grad(reference, z)
    assert torch.allclose(grad_fused, grad_reference, atol=1e-12)
    assert torch.all(grad_fused[:batch] == 0)
    z2 = torch.randn(2 * batch, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: fused_hamming_layer_term(t, batch=batch, alpha=alpha), (z2,))
    with pytest.raises(ValueError, match="2 \\* batch"):
        fused_hamming_layer_term(z2, batch=4)


def test_fused_hamming_gradient_stays_finite_when_differences_underflow() -> None:
    batch = 2
    z = torch.zeros(3 * batch, 6)
    z[batch:2 * batch] = 1e-25  # tanh(8e-25) - tanh(0) squares to 0 in float32: the norm underflows to 0
    z.requires_grad_(True)
    value = fused_hamming_layer_term(z, batch=batch, alpha=8.0)
    (grad,) = torch.autograd.grad(value, z)
    assert torch.isfinite(grad).all() and float(grad.abs().max()) <= 8.0 / (2 * 6 * batch)
