"""Separate passes (x, x+, x- through the model one after the other, in one graph) equal the one concatenated
pass, and the fast Hamming kernels equal the straightforward autograd computation (values and gradients)."""

from __future__ import annotations

import copy
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from art_manifold_defenses.estimator import to_art_classifier
from art_manifold_defenses.manifold_regularization import (
    ManifoldRegularizationTrainer,
    ManifoldRegularizer,
    ReLURecorder,
    constant_schedule,
    fused_hamming_layer_distances,
    fused_hamming_pair_distances,
    hamming_layer_distances,
    hamming_regularizer,
    intrinsic_regularizer,
    relu_pattern_disagreements,
    uses_batch_statistics,
)
from art_manifold_defenses.manifold_regularization import _fused as regularizers_module


def conv_net(dtype: torch.dtype = torch.float64, *, dropout: float = 0.0) -> nn.Sequential:
    torch.manual_seed(0)
    layers: list[nn.Module] = [
        nn.Conv2d(1, 4, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 12),
        nn.ReLU(),
    ]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3)]
    return nn.Sequential(*layers).to(dtype)


def straightforward_terms(
    model: nn.Module, x: Tensor, x_plus: Tensor, x_minus: Tensor, alpha: float, form: str = "squared"
) -> tuple[Tensor, Tensor, Tensor]:
    """Logits, sparse intrinsic and Hamming terms by three plain passes and autograd on ``tanh`` (eqs. 11,
    13-14)."""
    records: list[Tensor] = []
    handles = [
        m.register_forward_pre_hook(lambda _m, inputs: records.append(inputs[0]))
        for m in model.modules()
        if isinstance(m, nn.ReLU)
    ]
    try:
        logits = model(x)
        records.clear()
        f_plus = model(x_plus)
        z_plus = list(records)
        records.clear()
        f_minus = model(x_minus)
        z_minus = list(records)
    finally:
        for handle in handles:
            handle.remove()
    return (
        logits,
        intrinsic_regularizer(f_plus, f_minus),
        hamming_regularizer(z_plus, z_minus, alpha=alpha, form=form),
    )


def grads(model: nn.Module, value: Tensor) -> list[Tensor]:
    return list(torch.autograd.grad(value, list(model.parameters())))


@pytest.mark.parametrize(("alpha", "form"), [(0.5, "squared"), (8.0, "squared"), (8.0, "unsquared")])
def test_separate_and_concatenated_passes_equal_the_straightforward_computation(
    alpha: float, form: str
) -> None:
    model = conv_net()
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64)
    rho = 0.2 * (torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(1)).double() * 2 - 1)
    x_plus, x_minus = (x + rho).clamp(0, 1), (x - rho).clamp(0, 1)
    logits, intrinsic, hamming = straightforward_terms(model, x, x_plus, x_minus, alpha, form)
    weight = 3000.0 if form == "squared" else 30.0  # both terms matter in the gradient
    reference_grads = grads(
        model, F.cross_entropy(logits, torch.arange(5) % 3) + 0.7 * intrinsic + weight * hamming
    )
    for batching in ("separate", "concatenated"):
        out = ManifoldRegularizer(eps=0.2, alpha=alpha, batching=batching, hamming_form=form)(
            model, x, perturbation=rho
        )
        assert out.logits is not None
        assert torch.allclose(out.logits, logits, atol=1e-12)
        assert out.intrinsic.item() == pytest.approx(intrinsic.item(), rel=1e-12)
        assert out.hamming.item() == pytest.approx(hamming.item(), rel=1e-12)
        assert out.layer_names == ["1", "5", "7"]
        ours = grads(
            model,
            F.cross_entropy(out.logits, torch.arange(5) % 3) + 0.7 * out.intrinsic + weight * out.hamming,
        )
        for a, b in zip(ours, reference_grads, strict=True):
            assert torch.allclose(a, b, atol=1e-12, rtol=1e-10), batching
    separate = ManifoldRegularizer(eps=0.2, alpha=alpha, batching="separate")(model, x, perturbation=rho)
    concatenated = ManifoldRegularizer(eps=0.2, alpha=alpha, batching="concatenated")(
        model, x, perturbation=rho
    )
    assert separate.pattern_agreement == pytest.approx(concatenated.pattern_agreement, abs=1e-12)
    assert separate.layer_sizes == concatenated.layer_sizes == [4 * 6 * 6, 12, 8]


def test_clean_backward_gives_the_gradient_of_the_whole_loss() -> None:
    model = conv_net()
    x, y = torch.rand(6, 1, 8, 8, dtype=torch.float64), torch.arange(6) % 3
    rho = torch.full_like(x, 0.1)
    reg = ManifoldRegularizer(eps=0.1, batching="separate")
    out = reg(model, x, perturbation=rho)
    assert out.logits is not None
    expected = grads(model, F.cross_entropy(out.logits, y) + 2.0 * out.intrinsic + 50.0 * out.hamming)
    model.zero_grad(set_to_none=True)
    split = reg(model, x, perturbation=rho, clean_backward=lambda logits: F.cross_entropy(logits, y))
    assert split.logits is not None and not split.logits.requires_grad
    assert split.clean_loss is not None and split.clean_loss.item() == pytest.approx(
        F.cross_entropy(out.logits, y).item()
    )
    (2.0 * split.intrinsic + 50.0 * split.hamming).backward()
    for parameter, reference in zip(model.parameters(), expected, strict=True):
        assert parameter.grad is not None and torch.allclose(parameter.grad, reference, atol=1e-12)
    with pytest.raises(ValueError, match="clean_backward"):
        ManifoldRegularizer(eps=0.1, batching="concatenated")(
            model, x, clean_backward=lambda logits: logits.sum()
        )
    with pytest.raises(ValueError, match="scalar"):
        reg(model, x, clean_backward=lambda logits: logits)


def test_auto_batching_follows_device_and_batch_statistics() -> None:
    cpu = torch.device("cpu")
    reg = ManifoldRegularizer(batching="auto")
    assert reg.resolve_batching(conv_net(), cpu) == "separate"
    assert reg.resolve_batching(conv_net(), torch.device("meta")) == "concatenated"  # not CPU: one big batch
    batchnorm = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)
    )
    assert uses_batch_statistics(batchnorm.train()) and reg.resolve_batching(batchnorm, cpu) == "concatenated"
    assert not uses_batch_statistics(batchnorm.eval()) and reg.resolve_batching(batchnorm, cpu) == "separate"
    no_stats = nn.Sequential(nn.BatchNorm1d(3, track_running_stats=False)).eval()
    assert uses_batch_statistics(no_stats)
    assert ManifoldRegularizer().batching == "concatenated"  # the regularizer's default stays one pass
    assert (
        ManifoldRegularizer(batching="separate").resolve_batching(batchnorm.train(), cpu) == "separate"
    )  # explicit wins
    with pytest.raises(ValueError, match="batching"):
        ManifoldRegularizer(batching="chunked")


def test_separate_passes_share_dropout_masks_and_remove_their_hooks() -> None:
    torch.manual_seed(0)
    model = conv_net(torch.float32, dropout=0.5).train()
    x = torch.rand(4, 1, 8, 8)
    shared = ManifoldRegularizer(eps=0.0, batching="separate")(model, x)
    assert shared.intrinsic.item() == 0.0 and shared.hamming.item() == 0.0
    independent = ManifoldRegularizer(eps=0.0, batching="separate", shared_dropout=False)(model, x)
    assert independent.intrinsic.item() > 0.0
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == 0
    assert torch._C._len_torch_function_stack() == 0


def test_recorder_replays_dropout_masks_across_passes() -> None:
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 32), nn.ReLU()).train()
    x = torch.rand(3, 6)
    with ReLURecorder(model, shared_dropout_passes=True) as recorder:
        first = model(x)
        assert [name for name, _ in recorder.records] == ["1", "4"]
        recorder.next_pass()
        assert recorder.records == []
        second = model(x)
        recorder.next_pass()
        with pytest.raises(ValueError, match="equal batches"):
            model(torch.rand(2, 6))
    assert torch.equal(first, second)
    with ReLURecorder(model, shared_dropout_passes=True):
        third = model(x)  # a new block draws new masks
    assert not torch.equal(first, third)
    with pytest.raises(TypeError, match="shared_dropout_passes"):
        ReLURecorder(model, shared_dropout_passes=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("block_bytes", [8, 200, 1 << 20])
def test_blocked_hamming_kernels_match_autograd_on_tanh(
    block_bytes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        regularizers_module, "_HAMMING_BLOCK_BYTES", block_bytes
    )  # 1 row, ragged blocks, one block
    torch.manual_seed(0)
    batch = 5
    z_plus = torch.randn(batch, 3, 4, dtype=torch.float64, requires_grad=True)
    z_minus = torch.randn(batch, 3, 4, dtype=torch.float64, requires_grad=True)
    with torch.no_grad():
        z_minus[1] = z_plus[1]  # a zero-norm row
    reference = hamming_layer_distances([z_plus], [z_minus], alpha=8.0)[:, 0]
    pair = fused_hamming_pair_distances(z_plus, z_minus, alpha=8.0)
    assert pair.shape == (batch,) and torch.allclose(pair, reference, rtol=1e-12, atol=0)
    row_weights = torch.arange(
        1.0, batch + 1, dtype=torch.float64
    )  # a different gradient for every row's distance
    ours_grads = torch.autograd.grad((row_weights * pair).sum(), (z_plus, z_minus))
    for ours, theirs in zip(
        ours_grads, torch.autograd.grad((row_weights * reference).sum(), (z_plus, z_minus)), strict=True
    ):
        assert torch.allclose(ours, theirs, atol=1e-12)
    stacked = torch.cat(
        [torch.randn(batch, 3, 4, dtype=torch.float64), z_plus.detach(), z_minus.detach()]
    ).requires_grad_(True)
    layer = fused_hamming_layer_distances(stacked, batch=batch, alpha=8.0)
    assert torch.allclose(layer, reference, rtol=1e-12, atol=0)
    with torch.no_grad():  # the value-only path
        assert torch.allclose(
            fused_hamming_pair_distances(z_plus, z_minus, alpha=8.0), reference, rtol=1e-12, atol=0
        )
        assert torch.allclose(
            fused_hamming_layer_distances(stacked, batch=batch, alpha=8.0), reference, rtol=1e-12, atol=0
        )
    assert torch.autograd.gradcheck(
        lambda a, b: fused_hamming_pair_distances(a, b, alpha=0.7), (z_plus, z_minus)
    )
    exact = fused_hamming_pair_distances(z_plus, z_minus, alpha=math.inf)
    assert torch.allclose(exact, hamming_layer_distances([z_plus], [z_minus], alpha=math.inf)[:, 0])
    with pytest.raises(ValueError, match="same shape"):
        fused_hamming_pair_distances(z_plus, z_minus[:2])


@pytest.mark.parametrize("block_bytes", [8, 12, 1 << 20])
def test_relu_pattern_disagreements_count_exactly(block_bytes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        regularizers_module, "_HAMMING_BLOCK_BYTES", block_bytes
    )  # 2 or 3 elements per block, or one
    torch.manual_seed(0)
    z_plus, z_minus = torch.randn(6, 7), torch.randn(6, 7)
    z_plus[0, :4] = torch.tensor(
        [0.0, -0.0, 1e-30, 0.0]
    )  # zeros are inactive; a tiny positive value is active
    z_minus[0, :4] = torch.tensor([1e-30, 0.0, -0.0, -1.0])
    expected = int(torch.count_nonzero(torch.ne(z_plus > 0, z_minus > 0)))
    assert expected > 0
    assert int(relu_pattern_disagreements(z_plus, z_minus)) == expected
    assert int(relu_pattern_disagreements(z_plus, z_plus)) == 0
    if block_bytes == 1 << 20:  # half-precision sums of this many ones would round
        many_plus, many_minus = torch.randn(70_000), torch.randn(70_000)
        expected_many = int(torch.count_nonzero(torch.ne(many_plus > 0, many_minus > 0)))
        assert int(relu_pattern_disagreements(many_plus.bfloat16(), many_minus.bfloat16())) == expected_many
    # the count taken inside the Hamming term's blocks: the same number, in both paths
    distances, count = regularizers_module._pair_distances_and_disagreements(
        z_plus.requires_grad_(), z_minus, 8.0
    )
    assert int(count) == expected and not count.requires_grad and distances.requires_grad
    with torch.no_grad():
        assert int(regularizers_module._pair_distances_and_disagreements(z_plus, z_minus, 8.0)[1]) == expected
        assert (
            int(regularizers_module._pair_distances_and_disagreements(z_plus, z_minus, math.inf)[1])
            == expected
        )
    with pytest.raises(ValueError, match="same shape"):
        relu_pattern_disagreements(z_plus, z_minus[:2])


def test_pair_term_gradient_in_place_only_when_the_graph_is_not_kept() -> None:
    torch.manual_seed(1)
    z_plus = torch.randn(4, 10, dtype=torch.float64, requires_grad=True)
    z_minus = torch.randn(4, 10, dtype=torch.float64, requires_grad=True)
    reference = torch.autograd.grad(hamming_regularizer([z_plus], [z_minus], alpha=8.0), (z_plus, z_minus))
    kept = (
        fused_hamming_pair_distances(z_plus, z_minus, alpha=8.0).pow(2).mean()
    )  # the squared term of one layer
    first = torch.autograd.grad(kept, (z_plus, z_minus), retain_graph=True)
    second = torch.autograd.grad(
        kept, (z_plus, z_minus)
    )  # reads the saved products again, then scales them in place
    for a, b, c in zip(first, second, reference, strict=True):
        assert torch.allclose(a, c, atol=1e-12) and torch.allclose(b, c, atol=1e-12)
    seen: list[bool] = []

    class Probe(torch.autograd.Function):
        @staticmethod
        def forward(ctx: object, t: Tensor) -> Tensor:  # type: ignore[override]
            return t.clone()

        @staticmethod
        def backward(ctx: object, g: Tensor) -> Tensor:  # type: ignore[override]
            seen.append(regularizers_module._keeps_graph())
            return g

    leaf = torch.ones(2, requires_grad=True)
    Probe.apply(leaf).sum().backward(retain_graph=True)
    Probe.apply(leaf).sum().backward()
    assert seen == [True, False]


def _regularizer_grads(reg: ManifoldRegularizer, model: nn.Module, x: Tensor, rho: Tensor) -> list[Tensor]:
    out = reg(model, x, perturbation=rho)
    return list(torch.autograd.grad(0.5 * out.intrinsic + 3.0 * out.hamming, list(model.parameters())))


def test_workspace_reuses_buffers_only_once_their_graph_is_gone() -> None:
    model = conv_net()
    x = torch.rand(6, 1, 8, 8, dtype=torch.float64)
    rho = 0.1 * torch.sign(torch.randn_like(x))
    reg = ManifoldRegularizer(eps=0.1, batching="separate")
    reference = _regularizer_grads(ManifoldRegularizer(eps=0.1, batching="concatenated"), model, x, rho)
    first = _regularizer_grads(reg, model, x, rho)
    buffers = [entry[0].data_ptr() for entry in reg._workspace._entries]
    assert len(buffers) == 2 * 3  # a+ and a- of the three ReLU layers
    second = _regularizer_grads(reg, model, x, rho)  # the first graph is gone: the same buffers again
    assert [entry[0].data_ptr() for entry in reg._workspace._entries] == buffers
    for a, b, c in zip(first, second, reference, strict=True):
        assert torch.allclose(a, c, atol=1e-10) and torch.allclose(b, c, atol=1e-10)
    # a graph still alive keeps its buffers: a second call gets new ones, and the first graph's gradients are
    # intact
    alive = reg(model, x, perturbation=rho)
    other = reg(model, x + 0.05 * (x < 0.5), perturbation=rho)
    assert len(reg._workspace) == 2 * 2 * 3
    kept = torch.autograd.grad(0.5 * alive.intrinsic + 3.0 * alive.hamming, list(model.parameters()))
    for a, c in zip(kept, reference, strict=True):
        assert torch.allclose(a, c, atol=1e-10)
    del alive, other
    for _ in range(3):  # buffers left unused by the last two calls are dropped
        reg(model, x[:3], perturbation=rho[:3])
    assert len(reg._workspace) == 2 * 3
    clone = copy.deepcopy(reg)  # copies and pickles start with an empty workspace
    assert len(clone._workspace) == 0 and len(pickle.loads(pickle.dumps(reg))._workspace) == 0


def test_trainer_batching_modes_train_the_same_model() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.random((24, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, 24)
    schedule = constant_schedule(epsilon=0.1, gamma_intrinsic=0.5, gamma_hamming=20.0, learning_rate=0.05)
    trained = {}
    for batching in ("separate", "concatenated"):
        model = conv_net(torch.float32)
        trainer = ManifoldRegularizationTrainer(
            to_art_classifier(model, input_shape=(1, 8, 8), nb_classes=3),
            schedule=schedule,
            batching=batching,
            verbose=False,
            seed=0,
        )
        trainer.fit(
            x, y, batch_size=8, nb_epochs=2, collapse_check=False
        )  # random labels: no collapse warning wanted
        trained[batching] = (model, trainer.history)
        assert trainer.regularizer_params()["batching"] == batching
    (sep_model, sep_history), (cat_model, cat_history) = trained["separate"], trained["concatenated"]
    for p, q in zip(sep_model.parameters(), cat_model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-5)
    for key in ("loss", "cross_entropy", "intrinsic", "hamming", "relu_agreement"):
        assert sep_history[-1][key] == pytest.approx(cat_history[-1][key], rel=1e-4, abs=1e-6)
    with pytest.raises(ValueError, match="batching"):
        ManifoldRegularizationTrainer(
            to_art_classifier(conv_net(torch.float32), input_shape=(1, 8, 8), nb_classes=3), batching="x"
        )
