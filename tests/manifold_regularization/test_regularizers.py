"""Intrinsic, Hamming and dense regularizers: hand computations, limits, hooks, functional-ReLU detection, and
the balance of eq. 13's squared Hamming term against the cross-entropy at initialisation."""

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
    fused_hamming_layer_distances,
    hamming_layer_distances,
    hamming_layer_terms,
    hamming_regularizer,
    hamming_relaxation,
    hamming_term_from_distances,
    heat_kernel_weights,
    intrinsic_regularizer,
    paper_schedule,
)
from art_manifold_defenses.models import build_model


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
    assert out.intrinsic.item() == pytest.approx(
        0.5 * 0.08, abs=1e-6
    )  # eq. 11: 1 / (c^2 N) with c = 2 -> 1/2
    # Hamming, one layer of n = 3 ReLUs: d = ||(|t(4.8) - t(3.2)|, |t(3.2) - t(4.8)|, 0)||_2 / (2 * 3), t =
    # tanh; eq. 13 regularizes d^2
    t_high, t_low = math.tanh(8 * 0.6), math.tanh(8 * 0.4)  # 0.999863, 0.996682
    distance = math.sqrt(2 * (t_high - t_low) ** 2) / 6  # = 7.499e-4
    assert distance == pytest.approx(7.4988e-4, rel=1e-3)
    assert out.hamming.item() == pytest.approx(distance**2, rel=1e-4)  # 5.623e-7
    assert out.layer_names == ["1"] and out.layer_sizes == [3]
    assert out.layer_hamming.tolist() == [pytest.approx(distance, rel=1e-5)]
    assert torch.allclose(out.logits, torch.tensor([[0.5, 0.5]]))
    # the readings of earlier versions, as options: d unsquared and no 1/2
    old = ManifoldRegularizer(eps=0.1, clip_values=None, hamming_form="unsquared", intrinsic_scale=1.0)(
        two_layer_toy(), x, perturbation=rho
    )
    assert old.hamming.item() == pytest.approx(distance, rel=1e-5)
    assert old.intrinsic.item() == pytest.approx(0.08, abs=1e-6)


def test_intrinsic_term_averages_over_the_batch() -> None:
    f_plus = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    f_minus = torch.tensor([[0.0, 0.0], [0.0, 3.0]])
    assert intrinsic_regularizer(f_plus, f_minus).item() == pytest.approx(0.5 * (5.0 + 9.0) / 2)
    assert intrinsic_regularizer(f_plus, f_minus, scale=1.0).item() == pytest.approx((5.0 + 9.0) / 2)
    with pytest.raises(ValueError, match="scale"):
        intrinsic_regularizer(f_plus, f_minus, scale=0.0)


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
    values = [
        ManifoldRegularizer(eps=0.01, clip_values=None, alpha=a)(
            two_layer_toy(), x, perturbation=rho
        ).hamming.item()
        for a in (8.0, 32.0, 128.0, float("inf"))
    ]
    assert values[0] > values[1] > values[2] > 0.0
    assert values[2] < 1e-3 * values[0]
    assert values[3] == 0.0  # exact Hamming distance between identical patterns


def test_hamming_grows_with_alpha_towards_the_normalised_hamming_distance() -> None:
    x = torch.tensor([[0.0, 0.5]])
    rho = torch.tensor(
        [[0.1, 0.1]]
    )  # z+ = (0.1, -0.1, 0.3, -0.2), z- = (-0.1, 0.1, 0.3, -0.2): 2 of 4 ReLUs flip
    limit = (math.sqrt(2**2 + 2**2) / (2 * 4)) ** 2  # d_H = sqrt(8) / 8, squared (eq. 13)
    alphas = [0.5, 2.0, 8.0, 32.0, 1000.0]
    values = [
        ManifoldRegularizer(eps=0.1, clip_values=None, alpha=a)(
            flip_toy(), x, perturbation=rho
        ).hamming.item()
        for a in alphas
    ]
    assert all(b > a for a, b in zip(values, values[1:], strict=False))
    assert values[-1] == pytest.approx(limit, rel=1e-6)
    exact = ManifoldRegularizer(eps=0.1, clip_values=None, alpha=float("inf"))(
        flip_toy(), x, perturbation=rho
    )
    assert exact.hamming.item() == pytest.approx(limit, rel=1e-7)
    assert exact.pattern_agreement == [pytest.approx(0.5)]


def test_hamming_relaxation_elementwise_and_layer_combination() -> None:
    zp, zm = torch.tensor([[1.0, -2.0]]), torch.tensor([[-1.0, -2.0]])
    assert torch.allclose(hamming_relaxation(zp, zm, alpha=1.0), torch.tensor([[2 * math.tanh(1.0), 0.0]]))
    # two layers: d = mean over layers of ||H||_2 / (2 n), then squared (eq. 13)
    layer2_p, layer2_m = torch.tensor([[1.0, 1.0, 1.0]]), torch.tensor([[-1.0, -1.0, 1.0]])
    value = hamming_regularizer([zp, layer2_p], [zm, layer2_m], alpha=float("inf")).item()
    distance = (2 / 4 + math.sqrt(8) / 6) / 2
    assert value == pytest.approx(distance**2)
    unsquared = hamming_regularizer(
        [zp, layer2_p], [zm, layer2_m], alpha=float("inf"), form="unsquared"
    ).item()
    assert unsquared == pytest.approx(distance)
    with pytest.raises(ValueError, match="form"):
        hamming_regularizer([zp], [zm], form="cubed")
    with pytest.raises(ValueError, match="alpha"):
        hamming_relaxation(zp, zm, alpha=0.0)
    with pytest.raises(ValueError, match="at least one ReLU"):
        hamming_regularizer([], [])


def test_hamming_term_squares_each_sample_after_combining_its_layers() -> None:
    # exact Hamming distances (alpha = inf): |sign(z+) - sign(z-)| is 2 where a ReLU flips, 0 elsewhere sample
    # 0: layer 1 (n = 2) flips 1 ReLU -> ||(2, 0)|| / 4 = 0.5; layer 2 (n = 4) flips 4 -> ||(2, 2, 2, 2)|| / 8
    # = 0.5 sample 1: layer 1 flips none -> 0; layer 2 flips 1 -> ||(2, 0, 0, 0)|| / 8 = 0.25
    layer1_p, layer1_m = torch.tensor([[1.0, 1.0], [1.0, -1.0]]), torch.tensor([[-1.0, 1.0], [1.0, -1.0]])
    layer2_p = torch.tensor([[1.0, 1.0, -1.0, -1.0], [1.0, 1.0, 1.0, 1.0]])
    layer2_m = torch.tensor([[-1.0, -1.0, 1.0, 1.0], [-1.0, 1.0, 1.0, 1.0]])
    inf = float("inf")
    distances = hamming_layer_distances([layer1_p, layer2_p], [layer1_m, layer2_m], alpha=inf)
    assert distances.tolist() == [[0.5, 0.5], [0.0, 0.25]]
    # d_0 = (0.5 + 0.5) / 2 = 0.5, d_1 = (0 + 0.25) / 2 = 0.125
    squared = (0.5**2 + 0.125**2) / 2  # 0.1328125: eq. 13, the batch mean of d_i^2
    assert hamming_regularizer([layer1_p, layer2_p], [layer1_m, layer2_m], alpha=inf).item() == pytest.approx(
        squared
    )
    assert hamming_term_from_distances(distances).item() == pytest.approx(squared)
    assert squared != pytest.approx(((0.5 + 0.125) / 2) ** 2)  # not the square of the batch mean
    assert hamming_term_from_distances(distances, form="unsquared").item() == pytest.approx((0.5 + 0.125) / 2)
    assert hamming_layer_terms([layer1_p, layer2_p], [layer1_m, layer2_m], alpha=inf).tolist() == [
        0.25,
        0.375,
    ]
    with pytest.raises(ValueError, match="distances"):
        hamming_term_from_distances(distances[:, :0])


def test_hamming_gradient_is_below_the_cross_entropy_gradient_at_initialisation(mnist_small: tuple) -> None:
    """Eq. 13 (squared) with the paper's MNIST weights leaves the cross-entropy in charge at initialisation on
    C&W's network; the unsquared reading of earlier versions gave the Hamming term 10-20x the cross-entropy's
    gradient (and training collapsed to a constant network)."""
    x, y = torch.from_numpy(mnist_small[0][:128]), torch.from_numpy(mnist_small[1][:128])
    start = paper_schedule("mnist", epochs=100).at(0.0)
    assert (start["epsilon"], start["gamma_intrinsic"], start["gamma_hamming"]) == (
        pytest.approx(0.075),
        0.8,
        2400.0,
    )

    def gradient_norm(value: Tensor, model: nn.Module) -> float:
        grads = torch.autograd.grad(value, list(model.parameters()), retain_graph=True, allow_unused=True)
        return math.sqrt(sum(float(g.pow(2).sum()) for g in grads if g is not None))

    ratios = {}
    for form in ("squared", "unsquared"):
        torch.manual_seed(0)
        model = build_model("cw_mnist_paper").train()
        torch.manual_seed(1)
        out = ManifoldRegularizer(hamming_form=form)(model, x, eps=start["epsilon"])
        assert out.logits is not None
        cross_entropy = F.cross_entropy(out.logits, y)
        assert cross_entropy.item() == pytest.approx(math.log(10), abs=0.1)
        ratios[form] = gradient_norm(start["gamma_hamming"] * out.hamming, model) / gradient_norm(
            cross_entropy, model
        )
    assert ratios["squared"] < 0.2  # measured: about 1/35
    assert ratios["unsquared"] > 5.0  # measured: about 16


def test_dense_regularizer_matches_a_double_loop() -> None:
    torch.manual_seed(0)
    outputs, points = torch.randn(5, 3), torch.rand(5, 2, 2)
    expected = 0.0
    for p in range(5):
        for q in range(5):
            weight = math.exp(-float((points[p] - points[q]).pow(2).sum()) / 2.0)
            expected += float((outputs[p] - outputs[q]).pow(2).sum()) * weight
    assert dense_intrinsic_regularizer(outputs, points, scale=2.0).item() == pytest.approx(
        expected / 25, rel=1e-5
    )
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
    net = nn.Sequential(
        nn.Flatten(),
        nn.Linear(16, 8),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(8, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    )
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
    module_only = nn.Sequential(
        nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(inplace=True), nn.Linear(6, 2)
    )
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
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)
    ).train()
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
        ({"hamming_form": "cubed"}, ValueError, "hamming_form"),
        ({"intrinsic_scale": 0.0}, ValueError, "intrinsic_scale"),
        ({"intrinsic_scale": float("nan")}, ValueError, "intrinsic_scale"),
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
def test_fused_hamming_distances_match_autograd_on_slices(alpha: float) -> None:
    torch.manual_seed(0)
    batch = 3
    z = torch.randn(3 * batch, 2, 5, dtype=torch.float64, requires_grad=True)
    z.data[2 * batch] = z.data[batch]  # one pair with identical pre-activations (zero norm)
    fused = fused_hamming_layer_distances(z, batch=batch, alpha=alpha)
    reference = hamming_layer_distances([z[batch : 2 * batch]], [z[2 * batch :]], alpha=alpha)[:, 0]
    assert fused.shape == (batch,) and torch.allclose(fused, reference, rtol=1e-12, atol=0)
    # the squared term (eq. 13) through the fused kernel: each row gets its own backward factor 2 d_i / batch
    squared_fused = hamming_term_from_distances(fused[:, None])
    squared_reference = hamming_regularizer([z[batch : 2 * batch]], [z[2 * batch :]], alpha=alpha)
    assert squared_fused.item() == pytest.approx(squared_reference.item(), rel=1e-12)
    (grad_fused,) = torch.autograd.grad(squared_fused, z)
    (grad_reference,) = torch.autograd.grad(squared_reference, z)
    assert torch.allclose(grad_fused, grad_reference, atol=1e-12)
    assert torch.all(grad_fused[:batch] == 0)
    z2 = torch.randn(2 * batch, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: fused_hamming_layer_distances(t, batch=batch, alpha=alpha), (z2,)
    )
    assert torch.autograd.gradcheck(
        lambda t: hamming_term_from_distances(
            fused_hamming_layer_distances(t, batch=batch, alpha=alpha)[:, None]
        ),
        (z2,),
    )
    with pytest.raises(ValueError, match="2 \\* batch"):
        fused_hamming_layer_distances(z2, batch=4)


def test_fused_hamming_gradient_stays_finite_when_differences_underflow() -> None:
    batch = 2
    z = torch.zeros(3 * batch, 6)
    z[batch : 2 * batch] = 1e-25  # tanh(8e-25) - tanh(0) squares to 0 in float32: the norm underflows to 0
    z.requires_grad_(True)
    value = fused_hamming_layer_distances(z, batch=batch, alpha=8.0).mean()
    (grad,) = torch.autograd.grad(value, z)
    assert torch.isfinite(grad).all() and float(grad.abs().max()) <= 8.0 / (2 * 6 * batch)


class _HiddenReLUNet(nn.Module):
    """A ReLU module, then one more ReLU written another way (chosen by ``form``)."""

    def __init__(self, form: str) -> None:
        super().__init__()
        self.form = form
        self.fc1, self.act, self.fc2, self.fc3 = nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.Linear(6, 2)

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc2(self.act(self.fc1(x)))
        hidden = {
            "clamp": lambda t: t.clamp(min=0),
            "clamp_min": lambda t: torch.clamp_min(t, 0.0),
            "clip": lambda t: torch.clip(t, 0),
            "maximum": lambda t: torch.maximum(t, torch.zeros_like(t)),
            "max": lambda t: torch.max(t, torch.tensor(0.0)),
            "threshold": lambda t: F.threshold(t, 0.0, 0.0),
            "clamp_both": lambda t: t.clamp(0, 1),
            "clamp_shift": lambda t: t.clamp(min=-1),
        }[self.form]
        return self.fc3(hidden(h))


@pytest.mark.parametrize("form", ["clamp", "clamp_min", "clip", "maximum", "max", "threshold"])
def test_relus_written_as_clamp_or_maximum_are_detected(form: str) -> None:
    x = torch.rand(3, 4)
    with pytest.raises(ValueError, match=r"clamp\(min=0\)"):
        ManifoldRegularizer(eps=0.1)(_HiddenReLUNet(form), x)
    assert ManifoldRegularizer(eps=0.1, functional_relus="ignore")(_HiddenReLUNet(form), x).layer_names == [
        "act"
    ]


@pytest.mark.parametrize("form", ["clamp_both", "clamp_shift"])
def test_other_clamps_are_not_relus(form: str) -> None:
    out = ManifoldRegularizer(eps=0.1)(_HiddenReLUNet(form), torch.rand(3, 4))
    assert out.functional_relus == 0 and out.layer_names == ["act"]
